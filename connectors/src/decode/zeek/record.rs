//! The Zeek conn record: the fields flowsight reads, by their Zeek names, and how they
//! become an [`Event`]. Shared by the JSON and TSV forms.

use super::mapping::{conn_state_status, proto_from_name};
use crate::decode::timestamp::{seconds_duration, seconds_timestamp};
use crate::decode::value::{count_or_zero, ip, port, required, Raw};
use crate::error::ParseError;
use flowsight_events::{Event, Proto, Status};

/// A conn log field that flowsight reads; all others (uid, service, history, …) are
/// ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZeekField {
    Ts,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    Duration,
    OrigBytes,
    RespBytes,
    OrigPkts,
    RespPkts,
    ConnState,
}

const FIELD_COUNT: usize = 12;

impl ZeekField {
    pub(crate) const ALL: [ZeekField; FIELD_COUNT] = [
        ZeekField::Ts,
        ZeekField::OrigH,
        ZeekField::OrigP,
        ZeekField::RespH,
        ZeekField::RespP,
        ZeekField::Proto,
        ZeekField::Duration,
        ZeekField::OrigBytes,
        ZeekField::RespBytes,
        ZeekField::OrigPkts,
        ZeekField::RespPkts,
        ZeekField::ConnState,
    ];

    /// The name in the log: a TSV `#fields` entry or a flat JSON key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ZeekField::Ts => "ts",
            ZeekField::OrigH => "id.orig_h",
            ZeekField::OrigP => "id.orig_p",
            ZeekField::RespH => "id.resp_h",
            ZeekField::RespP => "id.resp_p",
            ZeekField::Proto => "proto",
            ZeekField::Duration => "duration",
            ZeekField::OrigBytes => "orig_bytes",
            ZeekField::RespBytes => "resp_bytes",
            ZeekField::OrigPkts => "orig_pkts",
            ZeekField::RespPkts => "resp_pkts",
            ZeekField::ConnState => "conn_state",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<ZeekField> {
        ZeekField::ALL
            .into_iter()
            .find(|field| field.name() == name)
    }

    /// Without these a record is useless; every other field may be unset.
    pub(crate) fn is_required(self) -> bool {
        matches!(
            self,
            ZeekField::Ts
                | ZeekField::OrigH
                | ZeekField::OrigP
                | ZeekField::RespH
                | ZeekField::RespP
        )
    }
}

/// The values of one conn record, by field; `None` where absent or unset.
#[derive(Default)]
pub(crate) struct ZeekFields<'a> {
    values: [Option<Raw<'a>>; FIELD_COUNT],
}

impl<'a> ZeekFields<'a> {
    pub(crate) fn set(&mut self, field: ZeekField, raw: Option<Raw<'a>>) {
        if let Some(slot) = self.values.get_mut(field as usize) {
            *slot = raw;
        }
    }

    fn get(&self, field: ZeekField) -> Option<Raw<'a>> {
        self.values.get(field as usize).copied().flatten()
    }

    fn required(&self, field: ZeekField) -> Result<Raw<'a>, ParseError> {
        required(field.name(), self.get(field))
    }

    fn counter(&self, field: ZeekField) -> Result<u64, ParseError> {
        count_or_zero(field.name(), self.get(field))
    }

    pub(crate) fn into_event(self) -> Result<Event, ParseError> {
        use ZeekField as F;
        let address = |field: F| ip(field.name(), self.required(field)?);
        let port_of = |field: F| port(field.name(), self.required(field)?);
        Ok(Event {
            ts: seconds_timestamp(F::Ts.name(), self.required(F::Ts)?)?,
            src_ip: address(F::OrigH)?,
            src_port: port_of(F::OrigP)?,
            dst_ip: address(F::RespH)?,
            dst_port: port_of(F::RespP)?,
            proto: self.named(F::Proto, proto_from_name, Proto::Other)?,
            duration_ms: self
                .get(F::Duration)
                .map(|raw| seconds_duration(F::Duration.name(), raw))
                .transpose()?,
            bytes_out: self.counter(F::OrigBytes)?,
            bytes_in: self.counter(F::RespBytes)?,
            packets: self
                .counter(F::OrigPkts)?
                .saturating_add(self.counter(F::RespPkts)?),
            status: self.named(F::ConnState, conn_state_status, Status::Other)?,
        })
    }

    /// A name-valued field: `unset` when unset, an error when it is not text.
    fn named<T>(&self, field: ZeekField, map: fn(&str) -> T, unset: T) -> Result<T, ParseError> {
        match self.get(field) {
            None => Ok(unset),
            Some(Raw::Text(text)) => Ok(map(text)),
            Some(raw) => Err(raw.invalid(field.name(), "a string")),
        }
    }
}
