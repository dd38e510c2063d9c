//! [`encode`]: an [`Event`] as one record of a [`Format`], the inverse of
//! [`MessageDecoder`](crate::MessageDecoder), for writing events to a topic or a file;
//! and [`header`], the line a file of a format starts with.
//!
//! Every record is written so that decoding it gives back exactly the same event.

use crate::decode::CSV_COLUMNS;
use crate::format::Format;
use flowsight_events::{Event, Proto, Status};
use std::fmt;
use std::io::Write;

/// Appends `event` to `out` as one record of `format`, without a line terminator:
///
/// - native: the JSON object with the field names of docs/design.md §2;
/// - csv: a row in [`CSV_COLUMNS`] order, `duration_ms` empty when absent;
/// - zeek: a conn JSON object as Zeek's JSON and Kafka writers write it (`ts` and
///   `duration` in seconds, `id.orig_h`, …, `conn_state`), packets split into
///   `orig_pkts` and `resp_pkts`. [`Status::Other`] is written as an unset
///   `conn_state`, because Zeek's `OTH` means [`Status::Failed`].
pub fn encode(format: Format, event: &Event, out: &mut Vec<u8>) {
    match format {
        Format::Native => native(event, out),
        Format::Zeek => zeek_json(event, out),
        Format::Csv => csv(event, out),
    }
}

/// The header line a file of `format` starts with, without a line terminator; `None`
/// when the format has none (native JSON, Zeek JSON).
pub fn header(format: Format) -> Option<String> {
    match format {
        Format::Csv => Some(CSV_COLUMNS.join(",")),
        Format::Native | Format::Zeek => None,
    }
}

fn native(event: &Event, out: &mut Vec<u8>) {
    let written = serde_json::to_writer(&mut *out, event);
    // Cannot fail: every field serializes (addresses as strings) and a Vec takes any write.
    debug_assert!(written.is_ok(), "{written:?}");
}

fn csv(event: &Event, out: &mut Vec<u8>) {
    // Destructured in full so that a new field cannot be forgotten here.
    let Event {
        ts,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        proto,
        bytes_out,
        bytes_in,
        packets,
        duration_ms,
        status,
    } = event;
    // No value can hold a comma, a quote or a newline, so none needs quoting.
    put(
        out,
        format_args!(
            "{ts},{src_ip},{dst_ip},{src_port},{dst_port},{proto},{bytes_out},{bytes_in},{packets},"
        ),
    );
    if let Some(ms) = duration_ms {
        put(out, format_args!("{ms}"));
    }
    put(out, format_args!(",{status}"));
}

fn zeek_json(event: &Event, out: &mut Vec<u8>) {
    let Event {
        ts,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        proto,
        bytes_out,
        bytes_in,
        packets,
        duration_ms,
        status,
    } = event;
    // Zeek's own field order; fields flowsight cannot fill (uid, history, …) are left out,
    // as Zeek leaves out unset ones.
    put(
        out,
        format_args!(
            r#"{{"ts":{},"id.orig_h":"{src_ip}","id.orig_p":{src_port},"id.resp_h":"{dst_ip}","id.resp_p":{dst_port},"proto":"{}""#,
            Seconds(*ts),
            zeek_proto(*proto),
        ),
    );
    if let Some(ms) = duration_ms {
        put(out, format_args!(r#","duration":{}"#, Seconds(*ms)));
    }
    put(
        out,
        format_args!(r#","orig_bytes":{bytes_out},"resp_bytes":{bytes_in}"#),
    );
    if let Some(state) = conn_state(*status) {
        put(out, format_args!(r#","conn_state":"{state}""#));
    }
    // The decoder adds the two directions back up; halves cannot overflow.
    let resp_pkts = packets / 2;
    let orig_pkts = packets - resp_pkts;
    put(
        out,
        format_args!(r#","orig_pkts":{orig_pkts},"resp_pkts":{resp_pkts}}}"#),
    );
}

/// Milliseconds as Zeek's seconds, a JSON number with three decimals.
struct Seconds(u64);

/// Below this many milliseconds, `seconds.mmm` has at most 15 significant digits, which
/// an `f64` keeps exactly: the decoder reads JSON numbers as `f64` and recovers the same
/// shortest decimal, so it floors back to the same millisecond.
const EXACT_AS_DOUBLE_MS: u64 = 1_000_000_000_000_000;

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, ms) = (self.0 / 1000, self.0 % 1000);
        if self.0 < EXACT_AS_DOUBLE_MS {
            write!(f, "{secs}.{ms:03}")
        } else {
            // Over 31,000 years: Zeek never writes such an interval, and a double could
            // not hold it to the millisecond, but the decoder reads a string digit by digit.
            write!(f, "\"{secs}.{ms:03}\"")
        }
    }
}

/// Zeek's name for a transport protocol; it calls any other one `unknown_transport`.
fn zeek_proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Other => "unknown_transport",
        known => known.as_str(),
    }
}

/// A `conn_state` that the decoder maps back to `status` (docs/design.md §2); only an unset
/// state gives [`Status::Other`].
fn conn_state(status: Status) -> Option<&'static str> {
    match status {
        Status::Established => Some("SF"),
        Status::Rejected => Some("REJ"),
        Status::Reset => Some("RSTO"),
        Status::Failed => Some("S0"),
        Status::Other => None,
    }
}

fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let written = out.write_fmt(args);
    // Cannot fail: a Vec takes any write and the Display impls used here never fail.
    debug_assert!(written.is_ok(), "{written:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_have_three_decimals() {
        assert_eq!(Seconds(0).to_string(), "0.000");
        assert_eq!(Seconds(1_700_000_000_007).to_string(), "1700000000.007");
        assert_eq!(
            Seconds(EXACT_AS_DOUBLE_MS - 1).to_string(),
            "999999999999.999"
        );
        assert_eq!(Seconds(u64::MAX).to_string(), "\"18446744073709551.615\"");
    }

    #[test]
    fn csv_header_is_the_canonical_columns() {
        assert_eq!(
            header(Format::Csv).as_deref(),
            Some("ts,src_ip,dst_ip,src_port,dst_port,proto,bytes_out,bytes_in,packets,duration_ms,status")
        );
        assert_eq!(header(Format::Native), None);
        assert_eq!(header(Format::Zeek), None);
    }
}
