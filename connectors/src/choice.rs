//! The error for a name that is not one of a fixed set of choices (formats, pacing modes).

use thiserror::Error;

/// A name given for a [`Format`](crate::Format) or [`Pace`](crate::Pace) that is not one
/// of the accepted choices; the message lists them.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown {what} {value:?}: expected one of {choices}")]
pub struct UnknownChoice {
    /// What was being named, e.g. "format".
    pub what: &'static str,
    /// The name as given.
    pub value: String,
    /// The accepted names, comma-separated.
    pub choices: &'static str,
}

/// Finds `value` among `(name, item)` pairs, ignoring ASCII case.
pub(crate) fn parse_choice<T: Copy>(
    what: &'static str,
    choices: &'static str,
    table: &[(&str, T)],
    value: &str,
) -> Result<T, UnknownChoice> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|&(_, item)| item)
        .ok_or_else(|| UnknownChoice {
            what,
            value: value.to_string(),
            choices,
        })
}
