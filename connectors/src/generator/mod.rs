//! The synthetic source: a seeded, deterministic stream of realistic connection events
//! from a made-up company network, partitioned like a Kafka topic.
//!
//! [`GeneratorConfig`] says what to generate; each [`GeneratorPartition`] produces its
//! share. A partition's stream depends only on the config and its own number, never on
//! which worker polls it or how often.

mod partition;
mod sample;
mod schedule;
mod topology;
mod traffic;

use crate::choice::{parse_choice, UnknownChoice};
use flowsight_events::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use partition::GeneratorPartition;

/// What the generator produces. Unknown fields are rejected and missing ones take their
/// defaults when deserialised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Seeds the made-up network and every partition's random stream: the same config
    /// always gives the same events.
    pub seed: u64,
    /// Number of partitions (at least 1 is used).
    pub partitions: u32,
    /// Events per second of event time, summed over all partitions (at least 1 is used).
    pub rate: u64,
    /// Whether event time follows the wall clock or events come as fast as polled.
    pub pace: Pace,
    /// Event time of the first event.
    pub start_ms: Millis,
    /// Total events over all partitions, split as evenly as possible (partition `p` gets
    /// `count / partitions`, plus one if `p < count % partitions`); `None` is endless.
    pub count: Option<u64>,
    /// The most by which an event's `ts` lags its scheduled time, so the stream is
    /// mildly out of order, like Zeek writing connections when they end.
    pub disorder_ms: u64,
    /// Client hosts of the internal network (1 to 6,000,000). Distinct edges grow with
    /// it, about 55 per host given enough events: the defaults give about 110k edges
    /// over 10M events, 20,000 hosts about 870k over 20M, 30,000 hosts 1.3M over 30M.
    pub hosts: u32,
}

/// 2023-11-14T22:13:20Z: a fixed default so that default streams are reproducible.
pub const DEFAULT_START_MS: Millis = 1_700_000_000_000;

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            partitions: 4,
            rate: 5_000,
            pace: Pace::Realtime,
            start_ms: DEFAULT_START_MS,
            count: None,
            disorder_ms: 2_000,
            hosts: 2_000,
        }
    }
}

/// How fast the generator releases events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Event time runs at wall-clock speed: an event is released once the wall clock has
    /// passed its scheduled instant, counted from when the partition was created.
    Realtime,
    /// As fast as polled.
    Fast,
    /// As fast as polled while event time is behind the wall clock, then at wall-clock
    /// speed: a `start_ms` in the past is a backlog caught up at full speed, like a Kafka
    /// topic read from hours back, after which records arrive live.
    CatchUp,
}

const PACE_NAMES: [(&str, Pace); 3] = [
    ("realtime", Pace::Realtime),
    ("fast", Pace::Fast),
    ("catch-up", Pace::CatchUp),
];

impl Pace {
    /// The lower-case name by which the pace is chosen (parsed back by `FromStr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Pace::Realtime => "realtime",
            Pace::Fast => "fast",
            Pace::CatchUp => "catch-up",
        }
    }
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pace {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_choice("pace", "realtime, fast, catch-up", &PACE_NAMES, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_names() {
        assert_eq!("FAST".parse::<Pace>(), Ok(Pace::Fast));
        assert_eq!("realtime".parse::<Pace>(), Ok(Pace::Realtime));
        assert_eq!(Pace::Fast.to_string(), "fast");
        let err = "slow".parse::<Pace>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown pace \"slow\": expected one of realtime, fast, catch-up"
        );
        assert_eq!("catch-up".parse::<Pace>(), Ok(Pace::CatchUp));
    }

    #[test]
    fn config_deserialises_with_defaults() {
        let config: GeneratorConfig =
            serde_json::from_str(r#"{"seed": 7, "pace": "fast", "count": 10}"#).unwrap();
        assert_eq!(
            config,
            GeneratorConfig {
                seed: 7,
                pace: Pace::Fast,
                count: Some(10),
                ..GeneratorConfig::default()
            }
        );
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"sead": 7}"#).is_err());
    }
}
