//! [`ParseError`]: why one record could not become an event, with a stable reason code.

use thiserror::Error;

/// Why a record failed to parse or validate. Each variant has a stable snake_case
/// [`reason`](ParseError::reason) under which dead letters are counted; the `Display`
/// message is for people and may change.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("record is not valid UTF-8 (invalid byte sequence at byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },

    #[error("invalid JSON: {message}")]
    InvalidJson { message: String },

    #[error("invalid CSV: {message}")]
    InvalidCsv { message: String },

    /// A required field is absent, null, empty (CSV) or unset (Zeek).
    #[error("missing required field `{field}`")]
    MissingField { field: &'static str },

    /// A field is present but its value is not acceptable; `value` is the offending value
    /// as written (shortened if long).
    #[error("invalid {field}: {value} is not {expected}")]
    InvalidField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("expected {expected} fields as the header says, found {found}")]
    WrongFieldCount { expected: usize, found: usize },

    /// A data record arrived without a usable header (Zeek TSV `#fields`, the CSV header
    /// row), or the header itself lacks a required column.
    #[error("no usable header: {detail}")]
    MissingHeader { detail: String },

    /// A header line is malformed (e.g. a bad `#separator`, duplicate column names).
    #[error("invalid header: {detail}")]
    InvalidHeader { detail: String },

    #[error("record is {len} bytes long, over the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },

    /// A message whose payload is empty or only whitespace: on a message transport every
    /// payload is meant to be one record.
    #[error("message is empty or only whitespace, not a record")]
    EmptyRecord,

    /// A message holding a line that describes records rather than being one (a Zeek `#`
    /// header or comment line, a CSV header row). Messages are decoded independently, so
    /// such a line cannot change how later ones are read.
    #[error("message is a {what}, not a record; a message must hold exactly one record")]
    NotARecord { what: &'static str },
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
