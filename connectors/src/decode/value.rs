//! [`Raw`]: one field's value as a format delivered it, and the typed parsers with the
//! validation that every format shares (addresses, ports, counters).

use crate::error::ParseError;
use serde_json::{Number, Value};
use std::net::IpAddr;

/// One field value before interpretation. Absent, JSON `null`, Zeek-unset and empty CSV
/// values never become a `Raw`: they are `None` where a `Raw` is expected.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw<'a> {
    Text(&'a str),
    Number(&'a Number),
    /// A JSON boolean, array or object: never an acceptable field value.
    Json(&'a Value),
}

/// How many characters of an offending value an error message repeats.
const SHOWN_CHARS: usize = 64;

const IP: &str = "an IPv4 or IPv6 address";
const PORT: &str = "a port number (0 to 65535)";
const COUNT: &str = "a non-negative integer that fits in 64 bits";

impl<'a> Raw<'a> {
    pub(crate) fn from_json(value: &'a Value) -> Option<Raw<'a>> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(Raw::Text(text)),
            Value::Number(number) => Some(Raw::Number(number)),
            other => Some(Raw::Json(other)),
        }
    }

    /// The value as it should appear in an error message, shortened if long.
    pub(crate) fn show(&self) -> String {
        match self {
            Raw::Text(text) => {
                let mut chars = text.chars();
                let shown: String = chars.by_ref().take(SHOWN_CHARS).collect();
                if chars.next().is_some() {
                    format!("{shown:?}…")
                } else {
                    format!("{shown:?}")
                }
            }
            Raw::Number(number) => number.to_string(),
            Raw::Json(Value::Bool(b)) => b.to_string(),
            Raw::Json(Value::Array(_)) => "an array".to_string(),
            Raw::Json(_) => "an object".to_string(),
        }
    }

    /// The error saying this value of `field` is not `expected`.
    pub(crate) fn invalid(&self, field: &'static str, expected: &'static str) -> ParseError {
        ParseError::InvalidField {
            field,
            value: self.show(),
            expected,
        }
    }
}

pub(crate) fn required<'a>(
    field: &'static str,
    raw: Option<Raw<'a>>,
) -> Result<Raw<'a>, ParseError> {
    raw.ok_or(ParseError::MissingField { field })
}

pub(crate) fn ip(field: &'static str, raw: Raw<'_>) -> Result<IpAddr, ParseError> {
    match raw {
        Raw::Text(text) => text.parse().map_err(|_| raw.invalid(field, IP)),
        _ => Err(raw.invalid(field, IP)),
    }
}

pub(crate) fn port(field: &'static str, raw: Raw<'_>) -> Result<u16, ParseError> {
    unsigned(raw)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| raw.invalid(field, PORT))
}

pub(crate) fn count(field: &'static str, raw: Raw<'_>) -> Result<u64, ParseError> {
    unsigned(raw).ok_or_else(|| raw.invalid(field, COUNT))
}

/// A counter that counts as 0 when unknown (Zeek's unset).
pub(crate) fn count_or_zero(field: &'static str, raw: Option<Raw<'_>>) -> Result<u64, ParseError> {
    raw.map_or(Ok(0), |raw| count(field, raw))
}

/// A non-negative integer written as a JSON integer or as decimal digits.
fn unsigned(raw: Raw<'_>) -> Option<u64> {
    match raw {
        Raw::Number(number) => number.as_u64(),
        Raw::Text(text) => digits(text),
        Raw::Json(_) => None,
    }
}

/// Parses a non-empty run of ASCII digits; unlike `u64::from_str` it rejects a sign.
pub(crate) fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_must_fit_u16() {
        assert_eq!(port("p", Raw::Text("65535")), Ok(65535));
        for bad in ["65536", "-1", "+80", "8o", "", " 80"] {
            let err = port("p", Raw::Text(bad)).unwrap_err();
            assert_eq!(err.reason(), "invalid_field", "{bad:?}");
        }
        let float = Number::from_f64(80.0).unwrap();
        assert!(port("p", Raw::Number(&float)).is_err());
        assert!(port("p", Raw::Json(&Value::Bool(true))).is_err());
    }

    #[test]
    fn counts_must_fit_u64() {
        assert_eq!(count("c", Raw::Text("18446744073709551615")), Ok(u64::MAX));
        assert!(count("c", Raw::Text("18446744073709551616")).is_err());
        let negative = Number::from(-3i64);
        assert!(count("c", Raw::Number(&negative)).is_err());
        assert_eq!(count_or_zero("c", None), Ok(0));
    }

    #[test]
    fn messages_name_the_field_and_value() {
        let err = ip("src_ip", Raw::Text("10.0.0.256")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid src_ip: \"10.0.0.256\" is not an IPv4 or IPv6 address"
        );
        let long = "x".repeat(200);
        let shown = Raw::Text(&long).show();
        assert!(shown.len() < 80 && shown.ends_with('…'), "{shown}");
    }

    #[test]
    fn ipv6_addresses_parse() {
        assert_eq!(
            ip("dst_ip", Raw::Text("2606:4700::1111"))
                .unwrap()
                .to_string(),
            "2606:4700::1111"
        );
    }
}
