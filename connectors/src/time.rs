//! The valid range of event time, shared by the decoders and the generator.

use flowsight_events::Millis;

/// The exclusive upper bound of a valid `ts`: 10000-01-01T00:00:00Z in ms since the epoch.
/// Later times cannot be written as RFC 3339 and are almost certainly unit mistakes.
pub const TS_LIMIT: Millis = 253_402_300_800_000;
