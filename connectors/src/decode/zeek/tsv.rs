//! Zeek's TSV conn log: the `#` header lines that describe it (`#separator`,
//! `#set_separator`, `#empty_field`, `#unset_field`, `#fields`, `#types`) and the data
//! lines they describe. A later header replaces an earlier one, so concatenated logs
//! decode.

use super::record::{ZeekField, ZeekFields};
use crate::decode::value::Raw;
use crate::error::{rejected_header, ParseError};
use flowsight_events::Event;

#[derive(Debug)]
pub(crate) struct TsvDecoder {
    separator: String,
    empty_field: String,
    unset_field: String,
    columns: Columns,
}

#[derive(Debug)]
enum Columns {
    /// No `#fields` header seen yet.
    Unknown,
    Known(Layout),
    /// The last `#fields` header was unusable; every record fails with this detail
    /// until a good one arrives.
    Broken(String),
}

/// What a `#fields` header says each column holds.
#[derive(Debug)]
struct Layout {
    /// The field each column feeds, `None` for fields flowsight ignores.
    fields: Vec<Option<ZeekField>>,
}

impl Default for TsvDecoder {
    /// Zeek's own defaults, in force until header lines say otherwise.
    fn default() -> Self {
        TsvDecoder {
            separator: "\t".to_string(),
            empty_field: "(empty)".to_string(),
            unset_field: "-".to_string(),
            columns: Columns::Unknown,
        }
    }
}

impl TsvDecoder {
    /// Decodes one non-blank line: a header line (`Ok(None)`) or a data line.
    pub(crate) fn decode(&mut self, text: &str) -> Result<Option<Event>, ParseError> {
        if text.starts_with('#') {
            self.header(text).map(|()| None)
        } else {
            self.record(text).map(Some)
        }
    }

    fn header(&mut self, text: &str) -> Result<(), ParseError> {
        let name_len = 1 + text
            .bytes()
            .skip(1)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        // The name is ASCII, so both halves exist; `get` just avoids a panicking path.
        let (Some(name), Some(rest)) = (text.get(..name_len), text.get(name_len..)) else {
            return Ok(());
        };
        match name {
            "#separator" => {
                // The separator is not known yet, so Zeek follows this name with a space.
                let value = rest
                    .strip_prefix([' ', '\t'])
                    .ok_or_else(|| invalid_header("#separator has no value"))?;
                self.separator = non_empty(name, unescape(value)?)?;
                Ok(())
            }
            // No field flowsight reads is a set, so the set separator is only checked.
            "#set_separator" => non_empty(name, unescape(self.value(name, rest)?)?).map(drop),
            "#empty_field" => {
                self.empty_field = unescape(self.value(name, rest)?)?;
                Ok(())
            }
            "#unset_field" => {
                self.unset_field = unescape(self.value(name, rest)?)?;
                Ok(())
            }
            "#fields" => {
                let value = self.value(name, rest)?;
                self.set_fields(value)
            }
            "#types" => self.check_types(self.value(name, rest)?),
            // #path, #open, #close and comments carry nothing flowsight needs.
            _ => Ok(()),
        }
    }

    /// A header line's value: what follows its name and the separator.
    fn value<'a>(&self, name: &str, rest: &'a str) -> Result<&'a str, ParseError> {
        rest.strip_prefix(self.separator.as_str()).ok_or_else(|| {
            invalid_header(&format!(
                "{name} is not followed by the separator {:?}",
                self.separator
            ))
        })
    }

    fn set_fields(&mut self, value: &str) -> Result<(), ParseError> {
        match Layout::parse(value, &self.separator) {
            Ok(layout) => {
                self.columns = Columns::Known(layout);
                Ok(())
            }
            Err(err) => {
                self.columns = Columns::Broken(rejected_header("#fields header", &err));
                Err(err)
            }
        }
    }

    fn check_types(&self, value: &str) -> Result<(), ParseError> {
        let types = value.split(self.separator.as_str()).count();
        match &self.columns {
            Columns::Known(layout) if layout.fields.len() != types => {
                Err(invalid_header(&format!(
                    "#types lists {types} types for {} fields",
                    layout.fields.len()
                )))
            }
            _ => Ok(()),
        }
    }

    fn record(&self, text: &str) -> Result<Event, ParseError> {
        let layout = match &self.columns {
            Columns::Known(layout) => layout,
            Columns::Unknown => {
                return Err(ParseError::MissingHeader {
                    detail: "a Zeek TSV data line came before any #fields header".to_string(),
                })
            }
            Columns::Broken(detail) => {
                return Err(ParseError::MissingHeader {
                    detail: detail.clone(),
                })
            }
        };
        let mut fields = ZeekFields::default();
        let mut found = 0;
        for (column, value) in text.split(self.separator.as_str()).enumerate() {
            found = column + 1;
            if let Some(Some(field)) = layout.fields.get(column) {
                fields.set(*field, self.raw(value));
            }
        }
        if found != layout.fields.len() {
            return Err(ParseError::WrongFieldCount {
                expected: layout.fields.len(),
                found,
            });
        }
        fields.into_event()
    }

    /// A column's value: `None` when unset, the empty string for the empty marker.
    fn raw<'a>(&self, value: &'a str) -> Option<Raw<'a>> {
        if value == self.unset_field {
            None
        } else if value == self.empty_field {
            Some(Raw::Text(""))
        } else {
            Some(Raw::Text(value))
        }
    }
}

impl Layout {
    fn parse(value: &str, separator: &str) -> Result<Layout, ParseError> {
        let mut fields = Vec::new();
        for name in value.split(separator) {
            let field = ZeekField::from_name(name);
            if field.is_some() && fields.contains(&field) {
                return Err(invalid_header(&format!("#fields lists {name:?} twice")));
            }
            fields.push(field);
        }
        let missing: Vec<&str> = ZeekField::ALL
            .into_iter()
            .filter(|field| field.is_required() && !fields.contains(&Some(*field)))
            .map(ZeekField::name)
            .collect();
        if missing.is_empty() {
            Ok(Layout { fields })
        } else {
            Err(ParseError::MissingHeader {
                detail: format!("#fields lacks required field(s) {}", missing.join(", ")),
            })
        }
    }
}

fn invalid_header(detail: &str) -> ParseError {
    ParseError::InvalidHeader {
        detail: detail.to_string(),
    }
}

fn non_empty(name: &str, value: String) -> Result<String, ParseError> {
    if value.is_empty() {
        Err(invalid_header(&format!("{name} is empty")))
    } else {
        Ok(value)
    }
}

/// Resolves Zeek's `\xHH` escapes; other backslashes stand for themselves.
fn unescape(text: &str) -> Result<String, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let escaped = match (
            byte,
            bytes.get(at + 1),
            bytes.get(at + 2),
            bytes.get(at + 3),
        ) {
            (b'\\', Some(b'x'), Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push((high << 4) | low);
                at += 4;
            }
            None => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| invalid_header(&format!("{text:?} unescapes to invalid UTF-8")))
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_hex_escapes_only() {
        assert_eq!(unescape(r"\x09").unwrap(), "\t");
        assert_eq!(unescape(r"a\x2cb").unwrap(), "a,b");
        assert_eq!(unescape(r"\x").unwrap(), r"\x");
        assert_eq!(unescape(r"\xzz\").unwrap(), r"\xzz\");
        assert_eq!(unescape(r"\xff").unwrap_err().reason(), "invalid_header");
    }

    #[test]
    fn separator_directive_changes_splitting() {
        let mut decoder = TsvDecoder::default();
        decoder.decode(r"#separator \x2c").unwrap();
        decoder
            .decode("#fields,ts,id.orig_h,id.orig_p,id.resp_h,id.resp_p")
            .unwrap();
        let event = decoder
            .decode("1700000000.5,10.0.0.1,1234,10.0.0.2,80")
            .unwrap()
            .unwrap();
        assert_eq!(event.ts, 1_700_000_000_500);
        assert_eq!(event.dst_port, 80);
    }

    #[test]
    fn bad_directives_are_invalid_headers() {
        let mut decoder = TsvDecoder::default();
        for line in [
            "#separator",
            "#separator ",
            "#fields ts id.orig_h",
            "#unset_field",
        ] {
            let err = decoder.decode(line).unwrap_err();
            assert_eq!(err.reason(), "invalid_header", "{line:?}");
        }
        assert_eq!(decoder.decode("# a comment").unwrap(), None);
        assert_eq!(decoder.decode("#").unwrap(), None);
    }
}
