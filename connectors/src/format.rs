//! [`Format`]: which wire format a source's records are in.

use crate::choice::{parse_choice, UnknownChoice};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The record format of a source (docs/design.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line with flowsight's own field names.
    Native,
    /// Zeek's conn log: JSON lines as Zeek's JSON and Kafka writers emit them, or the TSV
    /// log with its `#fields` header; both may appear in one stream.
    Zeek,
    /// Comma-separated values with a header row of native field names.
    Csv,
}

const NAMES: [(&str, Format); 3] = [
    ("native", Format::Native),
    ("zeek", Format::Zeek),
    ("csv", Format::Csv),
];

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 3] = [Format::Native, Format::Zeek, Format::Csv];

    /// The lower-case name by which the format is chosen (parsed back by `FromStr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Zeek => "zeek",
            Format::Csv => "csv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_choice("format", "native, zeek, csv", &NAMES, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
        }
        assert_eq!("ZEEK".parse::<Format>(), Ok(Format::Zeek));
        assert_eq!("Csv".parse::<Format>(), Ok(Format::Csv));
    }

    #[test]
    fn unknown_name_lists_the_choices() {
        let err = "parquet".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format \"parquet\": expected one of native, zeek, csv"
        );
    }
}
