//! Sources and formats for flowscope (DESIGN §2): turning bytes into [`Event`]s.
//!
//! Formats and transports are kept apart. A [`Decoder`] turns one line of one [`Format`]
//! (native JSON, Zeek conn as JSON or TSV, CSV) into an event or a [`ParseError`]; an
//! [`EventPartition`] is one partition of a transport ([`FilePartition`], the synthetic
//! [`GeneratorPartition`]) that the engine polls. A record that cannot become an event is
//! a [`DeadLetter`], kept with its [`Position`] and counted in a [`DeadLetterLog`]: bad data
//! is data, never a panic and never silently dropped.
//!
//! [`Event`]: flowscope_events::Event

mod choice;
mod dead_letter;
mod dead_letter_log;
mod decode;
mod error;
mod format;
mod generator;
mod source;
mod time;

pub use choice::UnknownChoice;
pub use dead_letter::{DeadLetter, Position, MAX_DEAD_LETTER_BYTES};
pub use dead_letter_log::{DeadLetterLog, DEFAULT_DEAD_LETTER_CAPACITY};
pub use decode::{Decoder, MAX_RECORD_BYTES};
pub use error::ParseError;
pub use format::Format;
pub use generator::{GeneratorConfig, GeneratorPartition, Pace, DEFAULT_START_MS};
pub use source::{EventPartition, FilePartition, PollStatus, SourceError, IO_ERROR_REASON};
pub use time::TS_LIMIT;
