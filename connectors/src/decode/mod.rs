//! [`Decoder`]: one stream of lines of one [`Format`] in, events or [`ParseError`]s out.
//!
//! The checks every format shares (size, UTF-8, blank lines, a byte-order mark) are made
//! here; each format's module interprets the text.

mod csv;
mod json;
mod message;
mod native;
mod timestamp;
mod value;
mod zeek;

use crate::error::ParseError;
use crate::format::Format;
use csv::CsvDecoder;
use flowsight_events::Event;
use zeek::ZeekDecoder;

pub use csv::CSV_COLUMNS;
pub use message::MessageDecoder;

/// The longest record, in bytes without its line terminator, that is decoded; longer ones
/// are `too_large` dead letters.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();

/// A stateful decoder for one stream of lines of one format: Zeek TSV and CSV remember
/// the header they saw. Use one decoder per file or partition.
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    state: State,
    at_start: bool,
}

#[derive(Debug)]
enum State {
    Native,
    Zeek(ZeekDecoder),
    Csv(CsvDecoder),
}

impl Decoder {
    /// A decoder at the start of a stream of `format`; Zeek TSV and CSV records decode
    /// only after their header has been seen.
    pub fn new(format: Format) -> Decoder {
        let state = match format {
            Format::Native => State::Native,
            Format::Zeek => State::Zeek(ZeekDecoder::default()),
            Format::Csv => State::Csv(CsvDecoder::new()),
        };
        Decoder {
            format,
            state,
            at_start: true,
        }
    }

    /// The format the lines are decoded as.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes one line, given without its `\n` (a trailing `\r` is ignored).
    ///
    /// `Ok(None)` for lines that carry no record: blank lines, Zeek `#` header and comment
    /// lines, the CSV header row. Every other line gives an event or an error.
    pub fn decode(&mut self, line: &[u8]) -> Result<Option<Event>, ParseError> {
        let at_start = std::mem::replace(&mut self.at_start, false);
        let text = match text_of(line, at_start) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(None),
            Err(err) => {
                self.reject_unreadable(&err);
                return Err(err);
            }
        };
        self.decode_text(text)
    }

    /// Decodes one non-blank line that has already passed the shared checks of
    /// [`text_of`].
    fn decode_text(&mut self, text: &str) -> Result<Option<Event>, ParseError> {
        match &mut self.state {
            State::Native => native::decode_json(text).map(Some),
            State::Zeek(zeek) => zeek.decode(text),
            State::Csv(csv) => csv.decode(text),
        }
    }

    /// The error for a line of `len` bytes that was too large to read; the line counts
    /// as seen, as it would had it been passed to [`decode`](Decoder::decode).
    pub(crate) fn too_large(&mut self, len: u64) -> ParseError {
        self.at_start = false;
        let err = ParseError::TooLarge {
            len,
            max: MAX_RECORD_BYTES,
        };
        self.reject_unreadable(&err);
        err
    }

    fn reject_unreadable(&mut self, err: &ParseError) {
        if let State::Csv(csv) = &mut self.state {
            csv.reject_unreadable(err);
        }
    }
}

/// The line as text, or `None` if it is blank.
fn text_of(line: &[u8], at_start: bool) -> Result<Option<&str>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_RECORD_BYTES {
        return Err(ParseError::TooLarge {
            len: u64::try_from(line.len()).unwrap_or(u64::MAX),
            max: MAX_RECORD_BYTES,
        });
    }
    let line = if at_start {
        line.strip_prefix(BYTE_ORDER_MARK).unwrap_or(line)
    } else {
        line
    };
    let text = std::str::from_utf8(line).map_err(|err| ParseError::InvalidUtf8 {
        valid_up_to: err.valid_up_to(),
    })?;
    Ok((!text.trim().is_empty()).then_some(text))
}
