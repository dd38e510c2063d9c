//! Parsing one JSON line into an object, shared by the native and Zeek JSON formats.

use std::borrow::Cow;
use std::fmt;

use super::value::Raw;
use crate::error::ParseError;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `text` as exactly one JSON object.
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, ParseError> {
    serde_json::from_str(text).map_err(|err| ParseError::InvalidJson {
        message: err.to_string(),
    })
}

/// One field's value, parsed without building a whole JSON tree: strings are borrowed
/// from the line where they can be.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Text(Cow<'a, str>),
    Number(Number),
    /// `null`, a boolean, an array or an object (arrays and objects are skipped, not kept:
    /// they are never acceptable values, and their errors only name their kind).
    Other(Value),
}

impl Scalar<'_> {
    pub(crate) fn raw(&self) -> Option<Raw<'_>> {
        match self {
            Scalar::Text(text) => Some(Raw::Text(text)),
            Scalar::Number(number) => Some(Raw::Number(number)),
            Scalar::Other(value) => Raw::from_json(value),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Scalar::Other(Value::Null), Scalar::Number))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::Bool(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other(Value::Array(Vec::new())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other(Value::Object(Map::new())))
    }
}

/// The values of the keys `slot` maps to one of `N` slots, from one JSON object; other
/// keys are skipped. A repeated key keeps its last value, as a parsed map would.
struct FieldsVisitor<F, const N: usize> {
    slot: F,
}

impl<'de, F: Fn(&str) -> Option<usize>, const N: usize> Visitor<'de> for FieldsVisitor<F, N> {
    type Value = [Option<Scalar<'de>>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values: [Option<Scalar<'de>>; N] = std::array::from_fn(|_| None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (self.slot)(&key).and_then(|i| values.get_mut(i)) {
                Some(value) => *value = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// Parses `text` as exactly one JSON object and keeps the values of the keys that `slot`
/// maps to a slot below `N` — much cheaper than [`parse_object`] for records whose field
/// names are fixed.
pub(crate) fn parse_fields<const N: usize>(
    text: &str,
    slot: impl Fn(&str) -> Option<usize>,
) -> Result<[Option<Scalar<'_>>; N], ParseError> {
    let invalid = |err: serde_json::Error| ParseError::InvalidJson {
        message: err.to_string(),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let values = deserializer
        .deserialize_map(FieldsVisitor::<_, N> { slot })
        .map_err(invalid)?;
    deserializer.end().map_err(invalid)?;
    Ok(values)
}
