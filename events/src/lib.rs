//! The connection (flow) event, the one record type that every flowsight crate shares.
//!
//! It lives in a crate of its own so that `connectors` (which parses events) and
//! `queries` / `operators` (which compute over them) can agree on it without depending
//! on each other; see docs/design.md §2 for the field definitions.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Milliseconds since the Unix epoch, the unit of every time in flowsight.
pub type Millis = u64;

/// The wall clock in [`Millis`], for stamping what happens now (a dead letter's time, a
/// generator's first event, a process's start); event time always comes from the records.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
        })
}

/// Locks `mutex`, recovering it if a thread panicked while holding it: what it guards is
/// counters and queues that stay usable, and a panicking worker must not take the HTTP
/// frontend or the other workers down with it.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection (flow) summary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub struct Event {
    /// Event time: when the connection started, ms since epoch.
    pub ts: Millis,
    /// Address of the originator, the host that opened the connection (Zeek's `id.orig_h`).
    pub src_ip: IpAddr,
    /// Address of the responder, the host the connection was opened to (Zeek's `id.resp_h`).
    pub dst_ip: IpAddr,
    /// The originator's port; usually ephemeral, so the connection graph leaves it out.
    pub src_port: u16,
    /// The responder's port, the service that was contacted.
    pub dst_port: u16,
    /// Transport protocol.
    pub proto: Proto,
    /// Bytes from originator to responder.
    pub bytes_out: u64,
    /// Bytes from responder back to originator.
    pub bytes_in: u64,
    /// Packets in both directions.
    pub packets: u64,
    /// How long the connection lasted, in ms; `None` when the source did not say (it is
    /// optional in every format, and left out of native JSON when absent).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// How the connection ended; the views count anything but
    /// [`Established`](Status::Established) as a failure.
    pub status: Status,
}

/// A field of [`Event`]: a key of the native record, a column of the CSV header and of the
/// registered queries' tables (docs/design.md §2), all named alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `ts`: the event time, when the connection started, in ms since the Unix epoch.
    Ts,
    /// `src_ip`: the originator's address, IPv4 or IPv6.
    SrcIp,
    /// `dst_ip`: the responder's address, IPv4 or IPv6.
    DstIp,
    /// `src_port`: the originator's port.
    SrcPort,
    /// `dst_port`: the responder's port.
    DstPort,
    /// `proto`: the protocol's lowercase name (`tcp`, `udp`, `icmp` or `other`).
    Proto,
    /// `bytes_out`: the bytes sent from originator to responder.
    BytesOut,
    /// `bytes_in`: the bytes sent back from responder to originator.
    BytesIn,
    /// `packets`: the packets of both directions.
    Packets,
    /// `duration_ms`: how long the connection lasted, in ms; may be absent.
    DurationMs,
    /// `status`: how the connection ended (`established`, `rejected`, `reset`, `failed` or
    /// `other`).
    Status,
}

impl Field {
    /// Every field, in the canonical order of the record formats.
    pub const ALL: [Field; 11] = [
        Field::Ts,
        Field::SrcIp,
        Field::DstIp,
        Field::SrcPort,
        Field::DstPort,
        Field::Proto,
        Field::BytesOut,
        Field::BytesIn,
        Field::Packets,
        Field::DurationMs,
        Field::Status,
    ];

    /// The field's name (`src_ip`).
    pub fn name(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::SrcIp => "src_ip",
            Field::DstIp => "dst_ip",
            Field::SrcPort => "src_port",
            Field::DstPort => "dst_port",
            Field::Proto => "proto",
            Field::BytesOut => "bytes_out",
            Field::BytesIn => "bytes_in",
            Field::Packets => "packets",
            Field::DurationMs => "duration_ms",
            Field::Status => "status",
        }
    }

    /// The field named exactly `name`.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Written by hand for one difference from the derived form: a human-readable form (JSON)
/// leaves an absent duration out, as the native format does, while a binary one (bincode,
/// which timely uses between processes) always writes it, since bincode cannot skip a
/// field and still read the record back.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let skip_duration = serializer.is_human_readable() && self.duration_ms.is_none();
        let mut out = serializer.serialize_struct("Event", 11 - usize::from(skip_duration))?;
        out.serialize_field("ts", &self.ts)?;
        out.serialize_field("src_ip", &self.src_ip)?;
        out.serialize_field("dst_ip", &self.dst_ip)?;
        out.serialize_field("src_port", &self.src_port)?;
        out.serialize_field("dst_port", &self.dst_port)?;
        out.serialize_field("proto", &self.proto)?;
        out.serialize_field("bytes_out", &self.bytes_out)?;
        out.serialize_field("bytes_in", &self.bytes_in)?;
        out.serialize_field("packets", &self.packets)?;
        if skip_duration {
            out.skip_field("duration_ms")?;
        } else {
            out.serialize_field("duration_ms", &self.duration_ms)?;
        }
        out.serialize_field("status", &self.status)?;
        out.end()
    }
}

/// Transport protocol of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// Any other transport, or one the source did not know (Zeek's `unknown_transport`
    /// or an unset `proto`).
    Other,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The connection was set up, whether or not it was closed cleanly (Zeek SF, S1–S3).
    Established,
    /// The responder refused the attempt (Zeek REJ).
    Rejected,
    /// The connection was torn down by a reset (Zeek RSTO, RSTR, RSTOS0, RSTRH).
    Reset,
    /// The attempt was never answered, or traffic was seen without a handshake (Zeek S0,
    /// SH, SHR, OTH).
    Failed,
    /// Any other or unknown outcome, including a Zeek `conn_state` that is unset.
    Other,
}

impl Status {
    /// A connection counts as failed in the views when it was not established.
    pub fn is_failure(self) -> bool {
        self != Status::Established
    }
}

impl Proto {
    /// Every protocol, in declaration order; used to parse names and to enumerate them.
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Other];

    /// The lower-case name, as written in native JSON and CSV and parsed back by `FromStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Other => "other",
        }
    }
}

impl Status {
    /// Every status, in declaration order; used to parse names and to enumerate them.
    pub const ALL: [Status; 5] = [
        Status::Established,
        Status::Rejected,
        Status::Reset,
        Status::Failed,
        Status::Other,
    ];

    /// The lower-case name, as written in native JSON and CSV and parsed back by `FromStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Established => "established",
            Status::Rejected => "rejected",
            Status::Reset => "reset",
            Status::Failed => "failed",
            Status::Other => "other",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a protocol or status name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Proto {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Proto::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

impl FromStr for Status {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// The key of an edge of the connection graph (docs/design.md §4).
///
/// The originator's port is left out, so the many ephemeral-port connections from one host
/// to one service fall into one edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EdgeKey {
    /// The originator's address ([`Event::src_ip`]).
    pub src_ip: IpAddr,
    /// The responder's address ([`Event::dst_ip`]).
    pub dst_ip: IpAddr,
    /// The responder's port ([`Event::dst_port`]).
    pub dst_port: u16,
    /// The transport protocol ([`Event::proto`]).
    pub proto: Proto,
}

impl Event {
    /// The graph edge this connection belongs to.
    pub fn edge_key(&self) -> EdgeKey {
        EdgeKey {
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            proto: self.proto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Proto::ALL {
            assert_eq!(p.as_str().parse::<Proto>().unwrap(), p);
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("sctp".parse::<Proto>().is_err());
    }

    fn event(duration_ms: Option<u64>) -> Event {
        Event {
            ts: 1_700_000_000_123,
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "2606:4700::1111".parse().unwrap(),
            src_port: 49_152,
            dst_port: 443,
            proto: Proto::Tcp,
            bytes_out: 10,
            bytes_in: 20,
            packets: 3,
            duration_ms,
            status: Status::Established,
        }
    }

    #[test]
    fn json_leaves_an_absent_duration_out_and_reads_it_back() {
        let text = serde_json::to_string(&event(None)).unwrap();
        assert!(!text.contains("duration_ms"), "{text}");
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event(None));
        let text = serde_json::to_string(&event(Some(250))).unwrap();
        assert!(text.contains(r#""duration_ms":250"#), "{text}");
        assert_eq!(
            serde_json::from_str::<Event>(&text).unwrap(),
            event(Some(250))
        );
    }

    #[test]
    fn bincode_carries_every_event_between_processes() {
        for duration in [None, Some(0), Some(250)] {
            // Two in a row: a skipped field would shift the second one.
            let pair = (event(duration), event(Some(7)));
            let bytes = bincode::serialize(&pair).unwrap();
            let back: (Event, Event) = bincode::deserialize(&bytes).unwrap();
            assert_eq!(back, pair, "duration {duration:?}");
        }
    }
}
