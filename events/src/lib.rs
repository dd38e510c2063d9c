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
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Event {
    /// Event time: when the connection started, ms since epoch.
    pub ts: Millis,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: Proto,
    /// Bytes from originator to responder.
    pub bytes_out: u64,
    /// Bytes from responder back to originator.
    pub bytes_in: u64,
    /// Packets in both directions.
    pub packets: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub status: Status,
}

/// Transport protocol of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Other,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Established,
    Rejected,
    Reset,
    Failed,
    Other,
}

impl Status {
    /// A connection counts as failed in the views when it was not established.
    pub fn is_failure(self) -> bool {
        self != Status::Established
    }
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Other];

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
    pub const ALL: [Status; 5] = [
        Status::Established,
        Status::Rejected,
        Status::Reset,
        Status::Failed,
        Status::Other,
    ];

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EdgeKey {
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub proto: Proto,
}

impl Event {
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
}
