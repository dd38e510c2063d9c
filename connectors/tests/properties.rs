//! Property tests: decoders and file replay never panic, never drop a record silently,
//! and read back what was written.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use flowsight_connectors::{
    DeadLetter, Decoder, EventPartition, FilePartition, Format, ParseError, PollStatus,
    MAX_RECORD_BYTES, TS_LIMIT,
};
use flowsight_events::{Event, Proto, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};
use std::io::Write;
use std::net::IpAddr;

const REASONS: [&str; 9] = [
    "invalid_utf8",
    "invalid_json",
    "invalid_csv",
    "missing_field",
    "invalid_field",
    "wrong_field_count",
    "missing_header",
    "invalid_header",
    "too_large",
];

// ------------------------------------------------------------ writing records

fn arb_ip() -> impl Strategy<Value = IpAddr> + Clone {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> + Clone {
    (
        (0..TS_LIMIT, arb_ip(), arb_ip(), any::<u16>(), any::<u16>()),
        (
            proptest::sample::select(Proto::ALL.to_vec()),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::sample::select(Status::ALL.to_vec()),
        ),
    )
        .prop_map(
            |(
                (ts, src_ip, dst_ip, src_port, dst_port),
                (proto, bytes_out, bytes_in, packets, duration_ms, status),
            )| {
                Event {
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
                }
            },
        )
}

const CSV_COLUMNS: [&str; 11] = [
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

fn csv_value(event: &Event, column: &str) -> String {
    match column {
        "ts" => event.ts.to_string(),
        "src_ip" => event.src_ip.to_string(),
        "dst_ip" => event.dst_ip.to_string(),
        "src_port" => event.src_port.to_string(),
        "dst_port" => event.dst_port.to_string(),
        "proto" => event.proto.to_string(),
        "bytes_out" => event.bytes_out.to_string(),
        "bytes_in" => event.bytes_in.to_string(),
        "packets" => event.packets.to_string(),
        "duration_ms" => event.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        "status" => event.status.to_string(),
        _ => "extra".to_string(),
    }
}

fn csv_line(event: &Event, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|column| format!("\"{}\"", csv_value(event, column)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A conn_state that maps back to `status` (Other only comes from an unset state).
fn conn_state(status: Status) -> Option<&'static str> {
    match status {
        Status::Established => Some("SF"),
        Status::Rejected => Some("REJ"),
        Status::Reset => Some("RSTR"),
        Status::Failed => Some("SH"),
        Status::Other => None,
    }
}

fn zeek_proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Other => "unknown_transport",
        other => other.as_str(),
    }
}

/// Milliseconds as Zeek's decimal seconds, with `extra` digits below the millisecond.
fn seconds(ms: u64, extra: &str) -> String {
    format!("{}.{:03}{extra}", ms / 1000, ms % 1000)
}

fn zeek_tsv_header() -> Vec<String> {
    vec![
        r"#separator \x09".to_string(),
        "#set_separator\t,".to_string(),
        "#empty_field\t(empty)".to_string(),
        "#unset_field\t-".to_string(),
        "#path\tconn".to_string(),
        "#open\t2023-11-14-22-13-20".to_string(),
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents".to_string(),
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]".to_string(),
    ]
}

fn zeek_tsv_line(event: &Event, extra: &str) -> String {
    let duration = event
        .duration_ms
        .map_or("-".to_string(), |ms| seconds(ms, extra));
    [
        seconds(event.ts, extra),
        "CHhAvVGS1DHFjwGM9".to_string(),
        event.src_ip.to_string(),
        event.src_port.to_string(),
        event.dst_ip.to_string(),
        event.dst_port.to_string(),
        zeek_proto(event.proto).to_string(),
        "-".to_string(),
        duration,
        event.bytes_out.to_string(),
        event.bytes_in.to_string(),
        conn_state(event.status).unwrap_or("-").to_string(),
        "T".to_string(),
        "F".to_string(),
        "0".to_string(),
        "ShADadFf".to_string(),
        event.packets.to_string(),
        "0".to_string(),
        "0".to_string(),
        "0".to_string(),
        "(empty)".to_string(),
    ]
    .join("\t")
}

fn zeek_json_line(event: &Event, nested: bool, extra: &str) -> String {
    let mut object = serde_json::Map::new();
    // Three decimals fit an f64 exactly enough to read back; more go as a string.
    let ts: Value = if extra.is_empty() {
        serde_json::from_str(&seconds(event.ts, "")).unwrap()
    } else {
        Value::String(seconds(event.ts, extra))
    };
    object.insert("ts".into(), ts);
    object.insert("uid".into(), json!("CHhAvVGS1DHFjwGM9"));
    let id = [
        ("orig_h", json!(event.src_ip.to_string())),
        ("orig_p", json!(event.src_port)),
        ("resp_h", json!(event.dst_ip.to_string())),
        ("resp_p", json!(event.dst_port)),
    ];
    if nested {
        object.insert(
            "id".into(),
            Value::Object(id.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        );
    } else {
        for (key, value) in id {
            object.insert(format!("id.{key}"), value);
        }
    }
    object.insert("proto".into(), json!(zeek_proto(event.proto)));
    if let Some(ms) = event.duration_ms {
        object.insert("duration".into(), Value::String(seconds(ms, extra)));
    }
    object.insert("orig_bytes".into(), json!(event.bytes_out));
    object.insert("resp_bytes".into(), json!(event.bytes_in));
    object.insert("orig_pkts".into(), json!(event.packets));
    object.insert("resp_pkts".into(), json!(0));
    if let Some(state) = conn_state(event.status) {
        object.insert("conn_state".into(), json!(state));
    }
    object.insert("history".into(), json!("ShADadFf"));
    Value::Object(object).to_string()
}

// ------------------------------------------------------------ lines of all sorts

fn junk_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..120).prop_map(|mut bytes| {
        bytes.retain(|&b| b != b'\n');
        bytes
    })
}

fn junk_text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn oversized() -> impl Strategy<Value = Vec<u8>> {
    (0usize..16, prop_oneof![Just(b'x'), Just(b' '), Just(b'{')])
        .prop_map(|(extra, byte)| vec![byte; MAX_RECORD_BYTES + 1 + extra])
}

fn blank() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\t \t".to_vec())
    ]
}

/// A prefix of `line`, cut anywhere.
fn truncated(line: String) -> impl Strategy<Value = Vec<u8>> {
    let len = line.len();
    (0..=len).prop_map(move |cut| line.as_bytes()[..cut].to_vec())
}

/// `line` split on `separator` with one field replaced by `junk`.
fn mistyped(line: String, separator: char) -> impl Strategy<Value = Vec<u8>> {
    let fields = line.split(separator).count();
    (0..fields, junk_text()).prop_map(move |(at, junk)| {
        let junk = junk.replace(separator, "");
        line.split(separator)
            .enumerate()
            .map(|(i, field)| if i == at { junk.as_str() } else { field })
            .collect::<Vec<_>>()
            .join(&separator.to_string())
            .into_bytes()
    })
}

fn native_json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        junk_text().prop_map(Value::String),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
        Just(json!(18_446_744_073_709_551_615u64)),
    ]
}

fn native_lines() -> impl Strategy<Value = Vec<u8>> {
    let valid = arb_event().prop_map(|e| serde_json::to_string(&e).unwrap());
    prop_oneof![
        4 => valid.clone().prop_map(String::into_bytes),
        3 => valid.clone().prop_flat_map(truncated),
        3 => (valid, 0..CSV_COLUMNS.len(), native_json_value()).prop_map(|(line, at, value)| {
            let mut object: serde_json::Map<String, Value> = serde_json::from_str(&line).unwrap();
            object.insert(CSV_COLUMNS[at].to_string(), value);
            Value::Object(object).to_string().into_bytes()
        }),
        2 => junk_bytes(),
        1 => blank(),
        1 => oversized(),
    ]
}

fn zeek_lines() -> impl Strategy<Value = Vec<u8>> {
    let tsv = (arb_event(), "[0-9]{0,4}").prop_map(|(e, extra)| zeek_tsv_line(&e, &extra));
    let json = (arb_event(), any::<bool>(), "[0-9]{0,4}")
        .prop_map(|(e, nested, extra)| zeek_json_line(&e, nested, &extra));
    prop_oneof![
        3 => tsv.clone().prop_map(String::into_bytes),
        3 => json.clone().prop_map(String::into_bytes),
        2 => tsv.clone().prop_flat_map(truncated),
        2 => json.prop_flat_map(truncated),
        3 => tsv.prop_flat_map(|line| mistyped(line, '\t')),
        1 => proptest::sample::select(zeek_tsv_header()).prop_map(String::into_bytes),
        1 => junk_text().prop_map(|text| format!("#{text}").into_bytes()),
        2 => junk_bytes(),
        1 => blank(),
        1 => oversized(),
    ]
}

fn csv_lines() -> impl Strategy<Value = Vec<u8>> {
    let valid = arb_event().prop_map(|e| csv_line(&e, &CSV_COLUMNS));
    prop_oneof![
        4 => valid.clone().prop_map(String::into_bytes),
        2 => valid.clone().prop_flat_map(truncated),
        3 => valid.prop_flat_map(|line| mistyped(line, ',')),
        2 => junk_bytes(),
        1 => blank(),
        1 => oversized(),
    ]
}

/// A stream of lines in `format`, led by a good header where the format has one.
fn stream(format: Format) -> BoxedStrategy<Vec<Vec<u8>>> {
    match format {
        Format::Native => vec(native_lines(), 0..24).boxed(),
        Format::Zeek => vec(zeek_lines(), 0..24)
            .prop_map(|lines| {
                zeek_tsv_header()
                    .into_iter()
                    .map(String::into_bytes)
                    .chain(lines)
                    .collect()
            })
            .boxed(),
        Format::Csv => (any::<bool>(), vec(csv_lines(), 0..24))
            .prop_map(|(with_header, lines)| {
                let header = with_header.then(|| CSV_COLUMNS.join(",").into_bytes());
                header.into_iter().chain(lines).collect()
            })
            .boxed(),
    }
}

fn any_stream() -> impl Strategy<Value = (Format, Vec<Vec<u8>>)> {
    proptest::sample::select(Format::ALL.to_vec())
        .prop_flat_map(|format| (Just(format), stream(format)))
}

// ------------------------------------------------------------ the model

/// The line's text as the decoder sees it, if it is small enough and UTF-8.
fn text_of(line: &[u8], first: bool) -> Option<&str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_RECORD_BYTES {
        return None;
    }
    let line = if first {
        line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
    } else {
        line
    };
    std::str::from_utf8(line).ok()
}

fn is_blank(line: &[u8], first: bool) -> bool {
    text_of(line, first).is_some_and(|text| text.trim().is_empty())
}

/// Decodes `lines`, checking that only blank and header lines give no record.
fn decode_checked(
    format: Format,
    lines: &[Vec<u8>],
) -> Result<Vec<Result<Option<Event>, ParseError>>, TestCaseError> {
    let mut decoder = Decoder::new(format);
    let mut seen_non_blank = false;
    let mut results = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let first = i == 0;
        let blank = is_blank(line, first);
        let may_be_header = match format {
            Format::Native => false,
            Format::Zeek => text_of(line, first).is_some_and(|text| text.starts_with('#')),
            Format::Csv => !seen_non_blank && !blank,
        };
        seen_non_blank |= !blank;
        let result = decoder.decode(line);
        match &result {
            Ok(None) => prop_assert!(
                blank || may_be_header,
                "{format} line {i} gave no record and no error: {:?}",
                String::from_utf8_lossy(line)
            ),
            Ok(Some(_)) => prop_assert!(!blank),
            Err(err) => {
                prop_assert!(!blank, "blank line {i} failed: {err}");
                prop_assert!(REASONS.contains(&err.reason()));
                prop_assert!(!err.to_string().is_empty());
            }
        }
        results.push(result);
    }
    Ok(results)
}

fn drain(partition: &mut FilePartition, max: usize) -> (Vec<Event>, Vec<DeadLetter>) {
    let (mut events, mut dead) = (Vec::new(), Vec::new());
    while partition.poll(max, &mut events, &mut dead) != PollStatus::Finished {}
    (events, dead)
}

// ------------------------------------------------------------ properties

/// `cases` per property, with failing seeds kept in the crate's `proptest-regressions/`
/// (tests run in the crate's directory) to be committed.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decoders_never_drop_a_record_silently((format, lines) in any_stream()) {
        decode_checked(format, &lines)?;
    }

    #[test]
    fn decoders_survive_random_bytes(format in proptest::sample::select(Format::ALL.to_vec()), lines in vec(junk_bytes(), 0..16)) {
        decode_checked(format, &lines)?;
    }

    #[test]
    fn native_json_round_trips(event in arb_event()) {
        let line = serde_json::to_string(&event).unwrap();
        prop_assert_eq!(Decoder::new(Format::Native).decode(line.as_bytes()), Ok(Some(event)));
    }

    #[test]
    fn csv_round_trips_in_any_column_order(event in arb_event(), columns in Just(CSV_COLUMNS.to_vec()).prop_shuffle(), extra in any::<bool>()) {
        let mut columns = columns;
        if extra {
            columns.insert(0, "note");
        }
        let mut decoder = Decoder::new(Format::Csv);
        prop_assert_eq!(decoder.decode(columns.join(",").as_bytes()), Ok(None));
        prop_assert_eq!(decoder.decode(csv_line(&event, &columns).as_bytes()), Ok(Some(event)));
    }

    #[test]
    fn zeek_round_trips(event in arb_event(), nested in any::<bool>(), extra in "[0-9]{0,6}") {
        let mut decoder = Decoder::new(Format::Zeek);
        for header in zeek_tsv_header() {
            prop_assert_eq!(decoder.decode(header.as_bytes()), Ok(None));
        }
        let tsv = zeek_tsv_line(&event, &extra);
        prop_assert_eq!(decoder.decode(tsv.as_bytes()), Ok(Some(event.clone())));
        let json = zeek_json_line(&event, nested, &extra);
        prop_assert_eq!(decoder.decode(json.as_bytes()), Ok(Some(event)));
    }

    #[test]
    fn mistyped_native_fields_are_rejected(event in arb_event(), at in 0..CSV_COLUMNS.len(), value in native_json_value()) {
        let field = CSV_COLUMNS[at];
        let mut object: serde_json::Map<String, Value> = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        object.insert(field.to_string(), value.clone());
        let result = Decoder::new(Format::Native).decode(Value::Object(object).to_string().as_bytes());
        match value {
            // Optional fields: absent (null) is fine; a missing status means established.
            Value::Null if field == "duration_ms" => prop_assert!(matches!(result, Ok(Some(_)))),
            Value::Null if field == "status" => prop_assert_eq!(
                result.map(|e| e.map(|e| e.status)),
                Ok(Some(Status::Established))
            ),
            Value::Null => prop_assert_eq!(result.unwrap_err().reason(), "missing_field"),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                prop_assert_eq!(result.unwrap_err().reason(), "invalid_field");
            }
            _ => prop_assert!(
                matches!(result, Ok(Some(_)) | Err(ParseError::InvalidField { .. })),
                "{:?}",
                result
            ),
        }
    }
}

proptest! {
    // Each case writes and reads a file, some with megabyte lines.
    #![proptest_config(config(64))]

    /// Replaying a file is decoding its lines one by one: the same events, and a dead
    /// letter at the right line for every error.
    #[test]
    fn file_replay_matches_line_by_line_decoding(
        (format, lines) in any_stream(),
        crlf in vec(any::<bool>(), 32),
        final_newline in any::<bool>(),
        max in 1usize..8,
    ) {
        let mut content = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            content.extend_from_slice(line);
            if i + 1 < lines.len() || final_newline {
                content.extend_from_slice(if crlf[i % crlf.len()] { b"\r\n" } else { b"\n" });
            }
        }
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&content).unwrap();
        file.flush().unwrap();

        let expected = decode_checked(format, &lines)?;
        let expected_events: Vec<Event> = expected.iter().filter_map(|r| r.clone().ok().flatten()).collect();
        let expected_dead: Vec<(u64, &str)> = expected
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|err| (i as u64 + 1, err.reason())))
            .collect();

        let mut partition = FilePartition::open(file.path(), format).unwrap();
        let (events, dead) = drain(&mut partition, max);
        prop_assert_eq!(events, expected_events);
        let got_dead: Vec<(u64, &str)> = dead.iter().map(|d| (d.position.offset, d.reason.as_str())).collect();
        prop_assert_eq!(got_dead, expected_dead);
        for letter in &dead {
            prop_assert!(letter.bytes.len() <= 4096 + 64, "{} bytes kept", letter.bytes.len());
        }
    }
}
