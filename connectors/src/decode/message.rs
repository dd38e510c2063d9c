//! [`MessageDecoder`]: one message payload in, one event or one [`ParseError`] out, as a
//! message transport such as Kafka delivers records.
//!
//! A payload is a whole record: it is never split into lines, and since a partition can
//! be replayed from any offset, no message may change how a later one decodes. So the
//! header a stream of lines would start with is fixed in advance (Zeek's default conn log
//! header, [`CSV_COLUMNS`]) by priming a line [`Decoder`] with it, and a header line that
//! arrives as a message is rejected without ever reaching that decoder.

use super::csv::CSV_COLUMNS;
use super::{text_of, Decoder};
use crate::error::ParseError;
use crate::format::Format;
use flowsight_events::Event;

/// The header Zeek writes at the top of a TSV conn.log, with its default field order.
const ZEEK_DEFAULT_HEADER: [&str; 7] = [
    r"#separator \x09",
    "#set_separator\t,",
    "#empty_field\t(empty)",
    "#unset_field\t-",
    "#path\tconn",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
     orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t\
     orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents",
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t\
     string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]",
];

/// Decodes message payloads of one format, each on its own:
///
/// - native: one JSON object;
/// - zeek: a Zeek conn JSON object, or a TSV data line in Zeek's default conn.log field
///   order with its default separators (tab, `-` unset, `(empty)` empty);
/// - csv: one row in [`CSV_COLUMNS`] order.
///
/// An empty or whitespace payload is `empty_record`; a Zeek `#` line (zeek) or a header
/// row (csv) is `not_a_record`. Otherwise the errors are those of [`Decoder`]. The result
/// for a payload never depends on earlier payloads.
#[derive(Debug)]
pub struct MessageDecoder {
    /// Primed with the format's fixed header; only data lines reach it afterwards, so its
    /// state never changes again.
    lines: Decoder,
}

impl MessageDecoder {
    /// A decoder for payloads of `format`, with Zeek's default conn header or
    /// [`CSV_COLUMNS`] fixed in advance.
    pub fn new(format: Format) -> MessageDecoder {
        let mut lines = Decoder::new(format);
        match format {
            Format::Native => {}
            Format::Zeek => prime(&mut lines, ZEEK_DEFAULT_HEADER),
            Format::Csv => prime(&mut lines, [CSV_COLUMNS.join(",").as_str()]),
        }
        MessageDecoder { lines }
    }

    /// The format the payloads are decoded as.
    pub fn format(&self) -> Format {
        self.lines.format()
    }

    /// Decodes one payload: exactly one event or one error, whatever it holds (an
    /// embedded newline does not make it two records).
    pub fn decode(&mut self, payload: &[u8]) -> Result<Event, ParseError> {
        // Each payload is a document of its own, so a byte-order mark may lead any of them.
        let text = text_of(payload, true)?.ok_or(ParseError::EmptyRecord)?;
        if let Some(what) = self.describes_records(text) {
            return Err(ParseError::NotARecord { what });
        }
        self.lines
            .decode_text(text)?
            // Unreachable: blank and header lines were turned away above.
            .ok_or(ParseError::NotARecord {
                what: "line without a record",
            })
    }

    /// What `text` is if it is a line that describes records instead of being one, which
    /// the line decoder would take to heart.
    fn describes_records(&self, text: &str) -> Option<&'static str> {
        match self.lines.format() {
            Format::Zeek if text.trim_start().starts_with('#') => {
                Some("Zeek header or comment line")
            }
            Format::Csv if is_csv_header(text) => Some("CSV header row"),
            _ => None,
        }
    }
}

fn prime<'a>(decoder: &mut Decoder, header: impl IntoIterator<Item = &'a str>) {
    for line in header {
        let outcome = decoder.decode(line.as_bytes());
        debug_assert_eq!(outcome, Ok(None), "{line:?}");
    }
}

/// Whether `text` is a row that a CSV file decoder would take as its header (the
/// canonical one or any other order of the native names, possibly with extra columns).
fn is_csv_header(text: &str) -> bool {
    // Every record starts with its ts, a digit (integer ms or RFC 3339); only rows that
    // start with a letter need the full check, so records are not parsed twice.
    let starts_with_letter = text
        .trim_start_matches(|c: char| c.is_whitespace() || c == '"')
        .starts_with(|c: char| c.is_ascii_alphabetic());
    starts_with_letter && matches!(Decoder::new(Format::Csv).decode_text(text), Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primed_headers_are_accepted() {
        // `prime` only checks in debug builds; make sure the headers themselves are good.
        for format in Format::ALL {
            let mut decoder = Decoder::new(format);
            let header: Vec<String> = match format {
                Format::Native => vec![],
                Format::Zeek => ZEEK_DEFAULT_HEADER.iter().map(|l| l.to_string()).collect(),
                Format::Csv => vec![CSV_COLUMNS.join(",")],
            };
            for line in header {
                assert_eq!(decoder.decode(line.as_bytes()), Ok(None), "{line:?}");
            }
        }
    }

    #[test]
    fn zeek_default_fields_number_21() {
        let fields = ZEEK_DEFAULT_HEADER[5].split('\t').count() - 1;
        let types = ZEEK_DEFAULT_HEADER[6].split('\t').count() - 1;
        assert_eq!((fields, types), (21, 21));
    }
}
