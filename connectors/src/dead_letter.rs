//! [`DeadLetter`] and [`Position`]: a rejected record, where it came from and why.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// At most this many bytes of a rejected record are kept in its dead letter.
pub const MAX_DEAD_LETTER_BYTES: usize = 4096;

/// Where a record came from.
///
/// For files `source` is the path as given, `partition` is 0 and `offset` the 1-based line
/// number; for the generator `source` is `"generator"`, `partition` the generator partition
/// and `offset` the sequence number within it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The file path as given, `"generator"`, or the Kafka topic.
    pub source: String,
    /// The partition within the source: 0 for a file, else the generator's or Kafka's.
    pub partition: u32,
    /// The record's place in its partition: a file's 1-based line number, the generator's
    /// sequence number, or the Kafka message offset.
    pub offset: u64,
}

/// A record that failed to parse or validate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Stable snake_case code, [`ParseError::reason`] (or [`IO_ERROR_REASON`](crate::IO_ERROR_REASON)).
    pub reason: String,
    /// Human-readable message.
    pub error: String,
    /// Where the rejected record came from.
    pub position: Position,
    /// The raw record, lossily decoded as UTF-8 and cut to [`MAX_DEAD_LETTER_BYTES`]; a cut
    /// record ends in `…[truncated N bytes]`.
    pub bytes: String,
    /// The record's bytes exactly, when they must be forwarded whole (to the Kafka
    /// dead-letter topic); not part of the serialised form.
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
}

impl DeadLetter {
    /// The dead letter for `raw`, the whole record that failed with `error`.
    pub fn new(error: &ParseError, position: Position, raw: &[u8]) -> DeadLetter {
        let total = u64::try_from(raw.len()).unwrap_or(u64::MAX);
        DeadLetter::from_prefix(error.reason(), error.to_string(), position, raw, total)
    }

    /// The dead letter for a record of which only `prefix` was kept out of `total_len`
    /// bytes (records too large to hold in memory).
    pub(crate) fn from_prefix(
        reason: &str,
        error: String,
        position: Position,
        prefix: &[u8],
        total_len: u64,
    ) -> DeadLetter {
        DeadLetter {
            reason: reason.to_string(),
            error,
            position,
            bytes: excerpt(prefix, total_len),
            raw: None,
        }
    }

    /// Keeps the record's exact bytes with the letter.
    pub fn with_raw(mut self, raw: Vec<u8>) -> DeadLetter {
        self.raw = Some(raw);
        self
    }
}

/// At most [`MAX_DEAD_LETTER_BYTES`] of `prefix` as text, saying how much of the
/// `total_len`-byte record was left out.
fn excerpt(prefix: &[u8], total_len: u64) -> String {
    let kept = prefix.get(..MAX_DEAD_LETTER_BYTES).unwrap_or(prefix);
    let mut text = String::from_utf8_lossy(kept).into_owned();
    let kept_len = u64::try_from(kept.len()).unwrap_or(u64::MAX);
    let dropped = total_len.saturating_sub(kept_len);
    if dropped > 0 {
        // Writing to a String cannot fail.
        let _ = write!(text, "…[truncated {dropped} bytes]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            source: "conn.log".into(),
            partition: 0,
            offset: 7,
        }
    }

    #[test]
    fn short_records_are_kept_whole() {
        let error = ParseError::MissingField { field: "ts" };
        let letter = DeadLetter::new(&error, position(), b"{\"a\":1}");
        assert_eq!(letter.reason, "missing_field");
        assert_eq!(letter.error, "missing required field `ts`");
        assert_eq!(letter.bytes, "{\"a\":1}");
        assert_eq!(letter.position.offset, 7);
    }

    #[test]
    fn long_records_are_cut_and_say_so() {
        let raw = vec![b'x'; MAX_DEAD_LETTER_BYTES + 10];
        let error = ParseError::InvalidJson {
            message: "bad".into(),
        };
        let letter = DeadLetter::new(&error, position(), &raw);
        let expected = format!("{}…[truncated 10 bytes]", "x".repeat(MAX_DEAD_LETTER_BYTES));
        assert_eq!(letter.bytes, expected);
    }

    #[test]
    fn a_prefix_reports_the_whole_length() {
        let letter = DeadLetter::from_prefix("too_large", "big".into(), position(), b"abc", 5000);
        assert_eq!(letter.bytes, "abc…[truncated 4997 bytes]");
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let error = ParseError::InvalidUtf8 { valid_up_to: 1 };
        let letter = DeadLetter::new(&error, position(), b"a\xffb");
        assert_eq!(letter.bytes, "a\u{fffd}b");
    }
}
