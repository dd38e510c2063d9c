//! [`FilePartition`]: a file (or any byte stream) of records replayed as partition 0.

use super::lines::{Line, LineReader};
use super::{EventPartition, PollStatus};
use crate::dead_letter::{DeadLetter, Position};
use crate::decode::{Decoder, MAX_RECORD_BYTES};
use crate::format::Format;
use flowsight_events::Event;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The dead-letter reason for a read that failed; the partition ends there.
pub const IO_ERROR_REASON: &str = "io_error";

/// Why a file source failed as a whole, rather than record by record.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The file could not be opened, or is a directory.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path as given.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// Reading failed part way; the partition records it as an
    /// [`IO_ERROR_REASON`] dead letter and ends.
    #[error("cannot read {name}: {source}")]
    Read {
        /// The source's name, as its positions carry it.
        name: String,
        /// The operating system's error.
        source: io::Error,
    },
}

/// A file replayed line by line as partition 0 of a source; it finishes at the end of
/// the file. Positions name the file as given and the 1-based line number.
pub struct FilePartition {
    source: String,
    lines: LineReader<Box<dyn BufRead + Send>>,
    decoder: Decoder,
    /// The 1-based number of the next line.
    next_line: u64,
    finished: bool,
}

impl FilePartition {
    /// Opens the file at `path`, holding records of `format`; positions name it by the
    /// path as given.
    pub fn open(path: &Path, format: Format) -> Result<FilePartition, SourceError> {
        let open_error = |source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // Opening a directory succeeds on Unix; say so now rather than at the first read.
        if file.metadata().map_err(open_error)?.is_dir() {
            return Err(open_error(io::Error::other("is a directory")));
        }
        Ok(FilePartition::from_reader(
            path.display().to_string(),
            file,
            format,
        ))
    }

    /// Reads records from any byte stream, e.g. standard input; `source` names it in
    /// dead letters.
    pub fn from_reader(
        source: impl Into<String>,
        reader: impl Read + Send + 'static,
        format: Format,
    ) -> FilePartition {
        let buffered: Box<dyn BufRead + Send> =
            Box::new(BufReader::with_capacity(64 * 1024, reader));
        FilePartition {
            source: source.into(),
            lines: LineReader::new(buffered, MAX_RECORD_BYTES),
            decoder: Decoder::new(format),
            next_line: 1,
            finished: false,
        }
    }

    /// The name that positions of this partition's records carry.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for FilePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePartition")
            .field("source", &self.source)
            .field("format", &self.decoder.format())
            .field("next_line", &self.next_line)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

fn position(source: &str, line: u64) -> Position {
    Position {
        source: source.to_string(),
        partition: 0,
        offset: line,
    }
}

impl EventPartition for FilePartition {
    /// Reads at most `max` lines, so that a run of blank or header lines cannot hold the
    /// caller up either.
    fn poll(
        &mut self,
        max: usize,
        events: &mut Vec<Event>,
        dead: &mut Vec<DeadLetter>,
    ) -> PollStatus {
        let mut read = 0;
        while !self.finished && read < max {
            let number = self.next_line;
            match self.lines.next_line() {
                Ok(None) => self.finished = true,
                Ok(Some(line)) => {
                    read += 1;
                    self.next_line = number.saturating_add(1);
                    match line {
                        Line::Complete(bytes) => match self.decoder.decode(bytes) {
                            Ok(Some(event)) => events.push(event),
                            Ok(None) => {}
                            Err(err) => {
                                dead.push(DeadLetter::new(
                                    &err,
                                    position(&self.source, number),
                                    bytes,
                                ));
                            }
                        },
                        Line::TooLong { head, len } => {
                            let err = self.decoder.too_large(len);
                            dead.push(DeadLetter::from_prefix(
                                err.reason(),
                                err.to_string(),
                                position(&self.source, number),
                                head,
                                len,
                            ));
                        }
                    }
                }
                Err(source) => {
                    // A failed read of a file does not heal by retrying: record it where
                    // it happened and end, rather than loop or lose it silently.
                    let err = SourceError::Read {
                        name: self.source.clone(),
                        source,
                    };
                    dead.push(DeadLetter::from_prefix(
                        IO_ERROR_REASON,
                        err.to_string(),
                        position(&self.source, number),
                        &[],
                        0,
                    ));
                    self.finished = true;
                }
            }
        }
        if self.finished {
            PollStatus::Finished
        } else {
            PollStatus::Ready
        }
    }

    fn next_offset(&self) -> u64 {
        self.next_line
    }
}
