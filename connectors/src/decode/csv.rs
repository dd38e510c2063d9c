//! The CSV format: a header row of native field names (any order, any case, extra columns
//! ignored), then one record per line; quoted fields are split by the `csv` crate.

use super::native::{is_required, NativeFields};
use super::value::Raw;
use crate::error::{rejected_header, ParseError};
use csv::{ReaderBuilder, StringRecord, Terminator, Trim};
use flowsight_events::Event;
use flowsight_events::Field;

/// flowsight's canonical CSV columns: the native field names in the order of
/// docs/design.md §2. Files may order their columns as they like (the header says how); a
/// CSV message has no header, so it must use exactly this order.
pub const CSV_COLUMNS: [&str; 11] = [
    "ts",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "proto",
    "bytes_out",
    "bytes_in",
    "packets",
    "duration_ms",
    "status",
];

#[derive(Debug)]
pub(crate) struct CsvDecoder {
    builder: ReaderBuilder,
    /// Reused between lines to keep its allocations.
    record: StringRecord,
    header: Header,
}

#[derive(Debug)]
enum Header {
    /// No non-blank line seen yet: the next one is the header.
    Awaiting,
    Columns(Columns),
    /// The header was unusable; every later record fails with this detail.
    Broken(String),
}

/// What the header row says each column holds.
#[derive(Debug)]
struct Columns {
    /// The native field each column feeds, `None` for extra columns.
    fields: Vec<Option<Field>>,
}

impl CsvDecoder {
    pub(crate) fn new() -> CsvDecoder {
        let mut builder = ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .trim(Trim::All)
            // Lines are already split. A stray '\r' inside one must not end a record, or
            // one line could become two records and the second would be lost.
            .terminator(Terminator::Any(b'\n'));
        CsvDecoder {
            builder,
            record: StringRecord::new(),
            header: Header::Awaiting,
        }
    }

    /// Decodes one non-blank line: the header row (`Ok(None)`) or a record.
    pub(crate) fn decode(&mut self, text: &str) -> Result<Option<Event>, ParseError> {
        let CsvDecoder {
            builder,
            record,
            header,
        } = self;
        let read = read_one(builder, text, record);
        match header {
            Header::Awaiting => {
                let columns = read.and_then(|()| Columns::from_header(record));
                match columns {
                    Ok(columns) => {
                        *header = Header::Columns(columns);
                        Ok(None)
                    }
                    Err(err) => {
                        *header = Header::Broken(rejected_header("CSV header", &err));
                        Err(err)
                    }
                }
            }
            Header::Broken(detail) => Err(ParseError::MissingHeader {
                detail: detail.clone(),
            }),
            Header::Columns(columns) => {
                read?;
                columns.decode(record).map(Some)
            }
        }
    }

    /// Notes a line that could not be read as text at all; if it was to be the header,
    /// the header is unusable.
    pub(crate) fn reject_unreadable(&mut self, err: &ParseError) {
        if matches!(self.header, Header::Awaiting) {
            self.header = Header::Broken(rejected_header("CSV header", err));
        }
    }
}

fn read_one(
    builder: &ReaderBuilder,
    text: &str,
    record: &mut StringRecord,
) -> Result<(), ParseError> {
    let mut reader = builder.from_reader(text.as_bytes());
    match reader.read_record(record) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ParseError::InvalidCsv {
                message: "no record in line".to_string(),
            })
        }
        Err(err) => {
            return Err(ParseError::InvalidCsv {
                message: err.to_string(),
            })
        }
    }
    // A file's lines never hold a '\n', but a message's payload may; whatever follows the
    // first record must not be dropped unread.
    let rest = usize::try_from(reader.position().byte())
        .ok()
        .and_then(|end| text.get(end..))
        .unwrap_or_default();
    if rest.trim().is_empty() {
        Ok(())
    } else {
        Err(ParseError::InvalidCsv {
            message: "more than one record in one line".to_string(),
        })
    }
}

impl Columns {
    fn from_header(record: &StringRecord) -> Result<Columns, ParseError> {
        let mut fields = Vec::with_capacity(record.len());
        for name in record {
            let field = Field::from_name(&name.to_ascii_lowercase());
            if field.is_some() && fields.contains(&field) {
                return Err(ParseError::InvalidHeader {
                    detail: format!("column {name:?} appears more than once"),
                });
            }
            fields.push(field);
        }
        let missing: Vec<&str> = Field::ALL
            .into_iter()
            .filter(|field| is_required(*field) && !fields.contains(&Some(*field)))
            .map(Field::name)
            .collect();
        if missing.is_empty() {
            Ok(Columns { fields })
        } else {
            Err(ParseError::MissingHeader {
                detail: format!(
                    "the CSV header lacks required column(s) {}",
                    missing.join(", ")
                ),
            })
        }
    }

    fn decode(&self, record: &StringRecord) -> Result<Event, ParseError> {
        if record.len() != self.fields.len() {
            return Err(ParseError::WrongFieldCount {
                expected: self.fields.len(),
                found: record.len(),
            });
        }
        let mut values = NativeFields::default();
        for (value, field) in record.iter().zip(&self.fields) {
            if let Some(field) = field {
                // An empty cell is an absent value: missing if required, None if optional.
                values.set(*field, (!value.is_empty()).then_some(Raw::Text(value)));
            }
        }
        values.into_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_columns_are_the_native_fields_in_order() {
        let names: Vec<&str> = Field::ALL.into_iter().map(Field::name).collect();
        assert_eq!(names, CSV_COLUMNS);
    }

    #[test]
    fn a_second_record_in_one_line_is_an_error() {
        let decoder = CsvDecoder::new();
        let mut record = StringRecord::new();
        assert!(read_one(&decoder.builder, "\"x\ny\",z\n", &mut record).is_ok());
        assert_eq!(record.len(), 2);
        let err = read_one(&decoder.builder, "1,2\n3,4", &mut record).unwrap_err();
        assert_eq!(err.reason(), "invalid_csv");
    }
}
