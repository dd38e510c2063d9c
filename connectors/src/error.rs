//! [`ParseError`]: why one record could not become an event, with a stable reason code.

use thiserror::Error;

/// Why a record failed to parse or validate. Each variant has a stable snake_case
/// [`reason`](ParseError::reason) under which dead letters are counted; the `Display`
/// message is for people and may change.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The record's bytes are not UTF-8, which every format requires.
    #[error("record is not valid UTF-8 (invalid byte sequence at byte {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid UTF-8 prefix: the 0-based offset of the first bad byte.
        valid_up_to: usize,
    },

    /// A native or Zeek JSON record is not well-formed JSON, or not an object.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// What the JSON parser objected to.
        message: String,
    },

    /// A CSV line could not be read as exactly one CSV record.
    #[error("invalid CSV: {message}")]
    InvalidCsv {
        /// What the CSV reader objected to.
        message: String,
    },

    /// A required field is absent, null, empty (CSV) or unset (Zeek).
    #[error("missing required field `{field}`")]
    MissingField {
        /// The field's name as the format spells it.
        field: &'static str,
    },

    /// A field is present but its value is not acceptable; `value` is the offending value
    /// as written (shortened if long).
    #[error("invalid {field}: {value} is not {expected}")]
    InvalidField {
        /// The field's name as the format spells it.
        field: &'static str,
        /// The offending value for people to read: quoted if it was text, cut after 64
        /// characters.
        value: String,
        /// What the value should have been, e.g. "an IPv4 or IPv6 address".
        expected: &'static str,
    },

    /// A CSV or Zeek TSV record has a different number of fields than its header names.
    #[error("expected {expected} fields as the header says, found {found}")]
    WrongFieldCount {
        /// How many columns the header names.
        expected: usize,
        /// How many fields the record has.
        found: usize,
    },

    /// A data record arrived without a usable header (Zeek TSV `#fields`, the CSV header
    /// row), or the header itself lacks a required column.
    #[error("no usable header: {detail}")]
    MissingHeader {
        /// Why no header is usable: none came yet, it was rejected, or it lacks required
        /// columns (which it names).
        detail: String,
    },

    /// A header line is malformed (e.g. a bad `#separator`, duplicate column names).
    #[error("invalid header: {detail}")]
    InvalidHeader {
        /// What is wrong with the header line.
        detail: String,
    },

    /// A record is longer than [`MAX_RECORD_BYTES`](crate::MAX_RECORD_BYTES); it is not
    /// decoded at all.
    #[error("record is {len} bytes long, over the limit of {max} bytes")]
    TooLarge {
        /// The record's length in bytes, without its line terminator.
        len: u64,
        /// The limit it exceeded, [`MAX_RECORD_BYTES`](crate::MAX_RECORD_BYTES).
        max: usize,
    },

    /// A message whose payload is empty or only whitespace: on a message transport every
    /// payload is meant to be one record.
    #[error("message is empty or only whitespace, not a record")]
    EmptyRecord,

    /// A message holding a line that describes records rather than being one (a Zeek `#`
    /// header or comment line, a CSV header row). Messages are decoded independently, so
    /// such a line cannot change how later ones are read.
    #[error("message is a {what}, not a record; a message must hold exactly one record")]
    NotARecord {
        /// What the line is instead, e.g. "CSV header row".
        what: &'static str,
    },
}

impl ParseError {
    /// The stable code under which this error is counted, e.g. `"invalid_field"`.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::InvalidJson { .. } => "invalid_json",
            ParseError::InvalidCsv { .. } => "invalid_csv",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::InvalidField { .. } => "invalid_field",
            ParseError::WrongFieldCount { .. } => "wrong_field_count",
            ParseError::MissingHeader { .. } => "missing_header",
            ParseError::InvalidHeader { .. } => "invalid_header",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::EmptyRecord => "empty_record",
            ParseError::NotARecord { .. } => "not_a_record",
        }
    }
}

/// What the records after a rejected header are told: the header's own problem.
pub(crate) fn rejected_header(header: &str, err: &ParseError) -> String {
    match err {
        ParseError::MissingHeader { detail } => detail.clone(),
        other => format!("the {header} was rejected: {other}"),
    }
}
