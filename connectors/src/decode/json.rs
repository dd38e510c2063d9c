//! Parsing one JSON line into an object, shared by the native and Zeek JSON formats.

use crate::error::ParseError;
use serde_json::{Map, Value};

/// Parses `text` as exactly one JSON object.
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, ParseError> {
    serde_json::from_str(text).map_err(|err| ParseError::InvalidJson {
        message: err.to_string(),
    })
}
