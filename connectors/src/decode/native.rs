//! The native record: flowsight's own field names (docs/design.md §2), shared by the native
//! JSON and CSV formats, and the native JSON line format itself.

use super::json::parse_fields;
use super::timestamp::millis_timestamp;
use super::value::{count, ip, port, required, Raw};
use crate::error::ParseError;
use flowsight_events::{Event, Field, Status};

const FIELD_COUNT: usize = Field::ALL.len();

/// `duration_ms` may be absent, and so may `status`: an exporter that does not track
/// connection state (NetFlow-style flows) reports connections that carried traffic, so a
/// record without a status counts as established (docs/design.md §2).
pub(crate) fn is_required(field: Field) -> bool {
    !matches!(field, Field::DurationMs | Field::Status)
}

/// The values of one native record, by field; `None` where absent or null.
#[derive(Default)]
pub(crate) struct NativeFields<'a> {
    values: [Option<Raw<'a>>; FIELD_COUNT],
}

impl<'a> NativeFields<'a> {
    pub(crate) fn set(&mut self, field: Field, raw: Option<Raw<'a>>) {
        if let Some(slot) = self.values.get_mut(field as usize) {
            *slot = raw;
        }
    }

    fn get(&self, field: Field) -> Option<Raw<'a>> {
        self.values.get(field as usize).copied().flatten()
    }

    fn required(&self, field: Field) -> Result<Raw<'a>, ParseError> {
        required(field.name(), self.get(field))
    }

    pub(crate) fn into_event(self) -> Result<Event, ParseError> {
        use Field as F;
        let number = |field: F| count(field.name(), self.required(field)?);
        let port_of = |field: F| port(field.name(), self.required(field)?);
        let address = |field: F| ip(field.name(), self.required(field)?);
        Ok(Event {
            ts: millis_timestamp(F::Ts.name(), self.required(F::Ts)?)?,
            src_ip: address(F::SrcIp)?,
            dst_ip: address(F::DstIp)?,
            src_port: port_of(F::SrcPort)?,
            dst_port: port_of(F::DstPort)?,
            proto: named(F::Proto, self.required(F::Proto)?, PROTO_NAMES)?,
            bytes_out: number(F::BytesOut)?,
            bytes_in: number(F::BytesIn)?,
            packets: number(F::Packets)?,
            duration_ms: self
                .get(F::DurationMs)
                .map(|raw| count(F::DurationMs.name(), raw))
                .transpose()?,
            status: self
                .get(F::Status)
                .map(|raw| named(F::Status, raw, STATUS_NAMES))
                .transpose()?
                .unwrap_or(Status::Established),
        })
    }
}

const PROTO_NAMES: &str = "a protocol (tcp, udp, icmp, other)";
const STATUS_NAMES: &str = "a status (established, rejected, reset, failed, other)";

/// A `Proto` or `Status` by its name, ignoring case.
fn named<T: std::str::FromStr>(
    field: Field,
    raw: Raw<'_>,
    expected: &'static str,
) -> Result<T, ParseError> {
    match raw {
        Raw::Text(text) => text.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| raw.invalid(field.name(), expected))
}

/// Decodes one native JSON line; extra fields are ignored.
pub(crate) fn decode_json(text: &str) -> Result<Event, ParseError> {
    let values = parse_fields::<FIELD_COUNT>(text, |name| {
        Field::from_name(name).map(|field| field as usize)
    })?;
    let mut fields = NativeFields::default();
    for field in Field::ALL {
        let value = values.get(field as usize).and_then(Option::as_ref);
        fields.set(field, value.and_then(|v| v.raw()));
    }
    fields.into_event()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowsight_events::{Proto, Status};

    #[test]
    fn field_names_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("TS"), None);
    }

    #[test]
    fn a_record_without_status_is_established() {
        let line = r#"{"ts":1,"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,
            "proto":"tcp","bytes_out":0,"bytes_in":0,"packets":0}"#;
        assert_eq!(decode_json(line).unwrap().status, Status::Established);
        let null = line.replace("\"packets\":0", "\"packets\":0,\"status\":null");
        assert_eq!(decode_json(&null).unwrap().status, Status::Established);
        let bad = line.replace("\"packets\":0", "\"packets\":0,\"status\":\"up\"");
        assert!(
            decode_json(&bad).is_err(),
            "an unknown status is still refused"
        );
    }

    #[test]
    fn proto_and_status_ignore_case() {
        let line = r#"{"ts":1,"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,
            "proto":"UDP","bytes_out":0,"bytes_in":0,"packets":0,"status":"Reset"}"#;
        let event = decode_json(line).unwrap();
        assert_eq!(event.proto, Proto::Udp);
        assert_eq!(event.status, Status::Reset);
    }
}
