//! Zeek conn records as JSON lines: flat dotted keys (`"id.orig_h"`) as Zeek's JSON and
//! Kafka writers emit them, or the nested `{"id": {"orig_h": …}}` form.

use super::record::{ZeekField, ZeekFields};
use crate::decode::json::parse_object;
use crate::decode::value::Raw;
use crate::error::ParseError;
use flowsight_events::Event;
use serde_json::Value;

pub(crate) fn decode(text: &str) -> Result<Event, ParseError> {
    let object = parse_object(text)?;
    let nested_id = object.get("id").and_then(Value::as_object);
    let mut fields = ZeekFields::default();
    for field in ZeekField::ALL {
        let name = field.name();
        let value = object.get(name).or_else(|| {
            let inner = name.strip_prefix("id.")?;
            nested_id?.get(inner)
        });
        fields.set(field, value.and_then(Raw::from_json));
    }
    fields.into_event()
}
