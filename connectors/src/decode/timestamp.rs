//! Timestamps and durations: integer milliseconds, Zeek's decimal seconds and RFC 3339,
//! all floored to the millisecond and checked against the valid range.
//!
//! Decimal seconds are converted digit by digit rather than through `f64` arithmetic:
//! `1700000000.123` is not exactly representable, and `f64 * 1000.0` would floor it to
//! `…122`.

use super::value::{digits, Raw};
use crate::error::ParseError;
use crate::time::TS_LIMIT;
use chrono::DateTime;
use flowsight_events::Millis;
use serde_json::Number;

const TS_MILLIS: &str =
    "a timestamp (integer milliseconds since the epoch, or RFC 3339) from 1970 to 9999";
const TS_SECONDS: &str = "a timestamp (seconds since the epoch, or RFC 3339) from 1970 to 9999";
const DURATION_SECONDS: &str = "a non-negative duration in seconds";

/// A native `ts`: integer milliseconds (a JSON integer or digits) or an RFC 3339 string.
pub(crate) fn millis_timestamp(field: &'static str, raw: Raw<'_>) -> Result<Millis, ParseError> {
    let ms = match raw {
        Raw::Number(number) => number.as_u64(),
        Raw::Text(text) => digits(text).or_else(|| rfc3339_millis(text)),
        Raw::Json(_) => None,
    };
    ms.filter(|&ms| ms < TS_LIMIT)
        .ok_or_else(|| raw.invalid(field, TS_MILLIS))
}

/// A Zeek `ts`: seconds since the epoch (a JSON number or its text) or an RFC 3339
/// string, as Zeek's JSON writer emits with `JSON::TS_ISO8601`.
pub(crate) fn seconds_timestamp(field: &'static str, raw: Raw<'_>) -> Result<Millis, ParseError> {
    let ms = match raw {
        Raw::Number(number) => number_seconds_millis(number),
        Raw::Text(text) => text_seconds_millis(text).or_else(|| rfc3339_millis(text)),
        Raw::Json(_) => None,
    };
    ms.filter(|&ms| ms < TS_LIMIT)
        .ok_or_else(|| raw.invalid(field, TS_SECONDS))
}

/// A Zeek interval in seconds, as whole milliseconds.
pub(crate) fn seconds_duration(field: &'static str, raw: Raw<'_>) -> Result<u64, ParseError> {
    let ms = match raw {
        Raw::Number(number) => number_seconds_millis(number),
        Raw::Text(text) => text_seconds_millis(text),
        Raw::Json(_) => None,
    };
    ms.ok_or_else(|| raw.invalid(field, DURATION_SECONDS))
}

fn number_seconds_millis(number: &Number) -> Option<u64> {
    if let Some(secs) = number.as_u64() {
        return secs.checked_mul(1000);
    }
    float_seconds_millis(number.as_f64()?)
}

fn text_seconds_millis(text: &str) -> Option<u64> {
    decimal_seconds_millis(text)
        // Exponent forms such as "1.7e9" are rare but valid numbers.
        .or_else(|| float_seconds_millis(text.parse().ok()?))
}

fn float_seconds_millis(secs: f64) -> Option<u64> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs == 0.0 {
        // Also catches -0.0, whose text would not parse below.
        return Some(0);
    }
    // `Display` for f64 prints the shortest decimal that round-trips, without an
    // exponent, which is the decimal the writer meant.
    decimal_seconds_millis(&secs.to_string())
}

/// `digits[.digits]` seconds to milliseconds, truncating below the millisecond.
fn decimal_seconds_millis(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let secs = if whole.is_empty() { 0 } else { digits(whole)? };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    secs.checked_mul(1000)?.checked_add(millis)
}

fn rfc3339_millis(text: &str) -> Option<u64> {
    let instant = DateTime::parse_from_rfc3339(text).ok()?;
    // `timestamp_millis` floors: the seconds are floored and the sub-second part is
    // never negative.
    u64::try_from(instant.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<Millis> {
        seconds_timestamp("ts", Raw::Text(text)).ok()
    }

    #[test]
    fn decimal_seconds_floor_to_the_millisecond() {
        assert_eq!(secs("1700000000.1239"), Some(1_700_000_000_123));
        assert_eq!(secs("1700000000.123"), Some(1_700_000_000_123));
        assert_eq!(secs("1700000000.9999999"), Some(1_700_000_000_999));
        assert_eq!(secs("1700000000"), Some(1_700_000_000_000));
        assert_eq!(secs("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(secs(".5"), Some(500));
        assert_eq!(secs("1.7e9"), Some(1_700_000_000_000));
    }

    #[test]
    fn json_float_seconds_use_the_written_decimal() {
        let number: Number = serde_json::from_str("1700000000.123").unwrap();
        assert_eq!(
            seconds_timestamp("ts", Raw::Number(&number)),
            Ok(1_700_000_000_123)
        );
        let number: Number = serde_json::from_str("1700000000.1239").unwrap();
        assert_eq!(
            seconds_timestamp("ts", Raw::Number(&number)),
            Ok(1_700_000_000_123)
        );
    }

    #[test]
    fn rejects_negative_non_numeric_and_out_of_range() {
        for bad in [
            "-1.5",
            "",
            ".",
            "1.2.3",
            "abc",
            "NaN",
            "inf",
            "1e300",
            "253402300800",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
        assert_eq!(secs("253402300799.999"), Some(TS_LIMIT - 1));
    }

    #[test]
    fn rfc3339_is_floored_and_offsets_applied() {
        assert_eq!(secs("2023-11-14T22:13:20.1239Z"), Some(1_700_000_000_123));
        assert_eq!(secs("2023-11-14T23:13:20+01:00"), Some(1_700_000_000_000));
        assert_eq!(secs("1969-12-31T23:59:59Z"), None);
        assert_eq!(secs("9999-12-31T23:59:59-01:00"), None, "year 10000 in UTC");
    }

    #[test]
    fn native_timestamps_are_integer_millis_or_rfc3339() {
        let ms = |raw| millis_timestamp("ts", raw).ok();
        assert_eq!(ms(Raw::Text("1700000000123")), Some(1_700_000_000_123));
        assert_eq!(
            ms(Raw::Text("2023-11-14T22:13:20.123Z")),
            Some(1_700_000_000_123)
        );
        assert_eq!(ms(Raw::Text("1700000000.5")), None);
        let float: Number = serde_json::from_str("1.5").unwrap();
        assert_eq!(ms(Raw::Number(&float)), None);
        assert_eq!(ms(Raw::Number(&Number::from(TS_LIMIT))), None);
    }

    #[test]
    fn durations_floor_to_the_millisecond() {
        let duration = |text| seconds_duration("duration", Raw::Text(text)).ok();
        assert_eq!(duration("0.000123"), Some(0));
        assert_eq!(duration("2.5009"), Some(2500));
        assert_eq!(duration("-0.1"), None);
    }
}
