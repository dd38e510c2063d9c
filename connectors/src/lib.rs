//! Sources and formats for flowsight (docs/design.md §2): turning bytes into [`Event`]s.
//!
//! Formats and transports are kept apart. A [`Decoder`] turns one line of one [`Format`]
//! (native JSON, Zeek conn as JSON or TSV, CSV) into an event or a [`ParseError`]; an
//! [`EventPartition`] is one partition of a transport ([`FilePartition`], the synthetic
//! [`GeneratorPartition`]) that the engine polls. A record that cannot become an event is
//! a [`DeadLetter`], kept with its [`Position`] and counted in a [`DeadLetterLog`]: bad data
//! is data, never a panic and never silently dropped.
//!
//! A [`MessageDecoder`] decodes message payloads (Kafka), each one record on its own;
//! [`encode`] writes an event as one record of a format, the way back. The [`kafka`]
//! module holds the Kafka transport: the engine's source, the dead-letter topic, the
//! producer of `flowsight produce`.
//!
//! [`Event`]: flowsight_events::Event

mod choice;
mod dead_letter;
mod dead_letter_log;
mod decode;
mod encode;
mod error;
mod format;
mod generator;
pub mod kafka;
mod sink;
mod source;
mod time;

pub use choice::UnknownChoice;
pub use dead_letter::{DeadLetter, Position, MAX_DEAD_LETTER_BYTES};
pub use dead_letter_log::{DeadLetterLog, DEFAULT_DEAD_LETTER_CAPACITY};
pub use decode::{Decoder, MAX_RECORD_BYTES};
pub use decode::{MessageDecoder, CSV_COLUMNS};
pub use encode::{encode, header};
pub use error::ParseError;
pub use format::Format;
pub use generator::{GeneratorConfig, GeneratorPartition, Pace, DEFAULT_START_MS};
pub use sink::{DeadLetterSink, SinkCounts};
pub use source::{
    EventPartition, FilePartition, FixedPartitions, PartitionSource, PollStatus, SourceError,
    IO_ERROR_REASON,
};
pub use time::TS_LIMIT;
