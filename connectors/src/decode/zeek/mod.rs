//! The Zeek conn log format: JSON lines (a line starting with `{`) and the TSV log with
//! its `#` header lines, accepted side by side in one stream.

mod json;
mod mapping;
mod record;
mod tsv;

use crate::error::ParseError;
use flowsight_events::Event;
use tsv::TsvDecoder;

#[derive(Debug, Default)]
pub(crate) struct ZeekDecoder {
    tsv: TsvDecoder,
}

impl ZeekDecoder {
    /// Decodes one non-blank line.
    pub(crate) fn decode(&mut self, text: &str) -> Result<Option<Event>, ParseError> {
        if text.trim_start().starts_with('{') {
            json::decode(text).map(Some)
        } else {
            self.tsv.decode(text)
        }
    }
}
