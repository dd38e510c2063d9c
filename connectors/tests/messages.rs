//! Message payloads (one record each, as on Kafka): every format round-trips through
//! `encode` and `MessageDecoder`, every kind of bad payload is rejected with its reason,
//! and no payload's result depends on the payloads before it.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use flowsight_connectors::{
    encode, header, Decoder, Format, MessageDecoder, ParseError, CSV_COLUMNS, MAX_RECORD_BYTES,
    TS_LIMIT,
};
use flowsight_events::{Event, Proto, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value};
use std::net::IpAddr;

// ------------------------------------------------------------ helpers

fn encoded(format: Format, event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode(format, event, &mut out);
    out
}

fn decode(format: Format, payload: &[u8]) -> Result<Event, ParseError> {
    MessageDecoder::new(format).decode(payload)
}

/// The reason `payload` is rejected, or `"ok"`.
fn reason(format: Format, payload: impl AsRef<[u8]>) -> &'static str {
    match decode(format, payload.as_ref()) {
        Ok(_) => "ok",
        Err(err) => err.reason(),
    }
}

fn sample() -> Event {
    Event {
        ts: 1_700_000_000_123,
        src_ip: "10.0.0.1".parse().unwrap(),
        dst_ip: "2001:db8::2".parse().unwrap(),
        src_port: 49152,
        dst_port: 443,
        proto: Proto::Tcp,
        bytes_out: 1200,
        bytes_in: 56000,
        packets: 61,
        duration_ms: Some(2500),
        status: Status::Established,
    }
}

/// The sample as a Zeek TSV data line in the default field order, with `edit` applied to
/// the fields first.
fn zeek_tsv(edit: impl FnOnce(&mut Vec<&str>)) -> String {
    let mut fields = vec![
        "1700000000.123456",
        "CHhAvVGS1DHFjwGM9",
        "10.0.0.1",
        "49152",
        "2001:db8::2",
        "443",
        "tcp",
        "ssl",
        "2.500123",
        "1200",
        "56000",
        "SF",
        "T",
        "F",
        "0",
        "ShADadFf",
        "30",
        "2780",
        "31",
        "57612",
        "(empty)",
    ];
    edit(&mut fields);
    fields.join("\t")
}

/// The sample as a native JSON object, with `edit` applied first.
fn native_json(edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let Value::Object(mut object) = serde_json::to_value(sample()).unwrap() else {
        unreachable!("an event is an object");
    };
    edit(&mut object);
    Value::Object(object).to_string()
}

/// An edit of a JSON object: `field` set to `value`, or removed if `None`.
fn set(field: &'static str, value: Option<Value>) -> impl FnOnce(&mut Map<String, Value>) {
    move |object| match value {
        Some(value) => {
            object.insert(field.to_string(), value);
        }
        None => {
            object.remove(field);
        }
    }
}

/// The sample as a Zeek JSON object, with `edit` applied first.
fn zeek_json(edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let record = encoded(Format::Zeek, &sample());
    let mut object: Map<String, Value> = serde_json::from_slice(&record).unwrap();
    edit(&mut object);
    Value::Object(object).to_string()
}

/// The sample as a CSV row, with `edit` applied to the cells first.
fn csv_row(edit: impl FnOnce(&mut Vec<String>)) -> String {
    let row = String::from_utf8(encoded(Format::Csv, &sample())).unwrap();
    let mut cells: Vec<String> = row.split(',').map(String::from).collect();
    edit(&mut cells);
    cells.join(",")
}

fn csv_header() -> String {
    CSV_COLUMNS.join(",")
}

// ------------------------------------------------------------ the encodings

#[test]
fn encodings_look_as_documented() {
    let event = sample();
    let text = |format| String::from_utf8(encoded(format, &event)).unwrap();
    assert_eq!(
        text(Format::Native),
        r#"{"ts":1700000000123,"src_ip":"10.0.0.1","dst_ip":"2001:db8::2","src_port":49152,"dst_port":443,"proto":"tcp","bytes_out":1200,"bytes_in":56000,"packets":61,"duration_ms":2500,"status":"established"}"#
    );
    assert_eq!(
        text(Format::Csv),
        "1700000000123,10.0.0.1,2001:db8::2,49152,443,tcp,1200,56000,61,2500,established"
    );
    assert_eq!(
        text(Format::Zeek),
        r#"{"ts":1700000000.123,"id.orig_h":"10.0.0.1","id.orig_p":49152,"id.resp_h":"2001:db8::2","id.resp_p":443,"proto":"tcp","duration":2.500,"orig_bytes":1200,"resp_bytes":56000,"conn_state":"SF","orig_pkts":31,"resp_pkts":30}"#
    );
}

#[test]
fn encode_appends_without_a_line_terminator() {
    for format in Format::ALL {
        let mut out = b"prefix|".to_vec();
        encode(format, &sample(), &mut out);
        assert!(out.starts_with(b"prefix|"), "{format}");
        assert!(!out.ends_with(b"\n"), "{format}");
        assert_eq!(decode(format, &out[7..]), Ok(sample()), "{format}");
    }
}

#[test]
fn zeek_encoding_of_absent_duration_and_other_status_and_proto() {
    let event = Event {
        proto: Proto::Other,
        duration_ms: None,
        status: Status::Other,
        packets: 1,
        ..sample()
    };
    let text = String::from_utf8(encoded(Format::Zeek, &event)).unwrap();
    assert!(text.contains(r#""proto":"unknown_transport""#), "{text}");
    assert!(!text.contains("duration"), "{text}");
    assert!(!text.contains("conn_state"), "{text}");
    assert!(text.contains(r#""orig_pkts":1,"resp_pkts":0"#), "{text}");
    assert_eq!(decode(Format::Zeek, text.as_bytes()), Ok(event));
}

#[test]
fn zeek_encoding_is_exact_at_the_limits() {
    for (ts, duration_ms) in [
        (0, Some(0)),
        (TS_LIMIT - 1, Some(999_999_999_999_999)),
        (TS_LIMIT - 1, Some(1_000_000_000_000_000)),
        (1, Some(u64::MAX)),
        (1_700_000_000_999, Some(1)),
    ] {
        let event = Event {
            ts,
            duration_ms,
            packets: u64::MAX,
            bytes_out: u64::MAX,
            bytes_in: u64::MAX,
            ..sample()
        };
        assert_eq!(
            decode(Format::Zeek, &encoded(Format::Zeek, &event)),
            Ok(event)
        );
    }
}

#[test]
fn headers_for_files() {
    assert_eq!(header(Format::Csv), Some(csv_header()));
    assert_eq!(header(Format::Native), None);
    assert_eq!(header(Format::Zeek), None);
}

// ------------------------------------------------------------ Zeek TSV messages

#[test]
fn zeek_tsv_messages_use_the_default_field_order() {
    let event = decode(Format::Zeek, zeek_tsv(|_| {}).as_bytes()).unwrap();
    assert_eq!(event, sample());

    let unset = zeek_tsv(|f| {
        f[6] = "-";
        f[8] = "-";
        f[9] = "-";
        f[11] = "-";
        f[18] = "-";
    });
    let event = decode(Format::Zeek, unset.as_bytes()).unwrap();
    assert_eq!(event.proto, Proto::Other);
    assert_eq!(event.duration_ms, None);
    assert_eq!(event.bytes_out, 0);
    assert_eq!(event.status, Status::Other);
    assert_eq!(event.packets, 30);
}

#[test]
fn a_fields_message_does_not_change_the_order() {
    let mut decoder = MessageDecoder::new(Format::Zeek);
    let messages = [
        "#fields\tid.resp_p\tid.resp_h\tid.orig_p\tid.orig_h\tts".to_string(),
        r"#separator \x2c".to_string(),
        "#unset_field\t0".to_string(),
        zeek_tsv(|_| {}),
        "#close\t2023-11-14-23-00-00".to_string(),
        zeek_tsv(|_| {}),
    ];
    let results: Vec<_> = messages
        .iter()
        .map(|m| decoder.decode(m.as_bytes()))
        .collect();
    let reasons: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(ParseError::reason, |_| "ok"))
        .collect();
    assert_eq!(
        reasons,
        [
            "not_a_record",
            "not_a_record",
            "not_a_record",
            "ok",
            "not_a_record",
            "ok"
        ]
    );
    assert_eq!(results[3], Ok(sample()));
    assert_eq!(results[5], Ok(sample()));
}

// ------------------------------------------------------------ bad payloads

#[test]
fn empty_and_whitespace_payloads_are_empty_records() {
    for format in Format::ALL {
        for payload in ["", " ", "\t", "\r\n", " \n \r\n\t "] {
            assert_eq!(
                reason(format, payload),
                "empty_record",
                "{format} {payload:?}"
            );
        }
        assert_eq!(
            reason(format, "\u{feff}"),
            "empty_record",
            "{format} BOM only"
        );
    }
}

#[test]
fn zeek_header_and_comment_lines_are_not_records() {
    let fields = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p";
    for payload in [
        fields,
        "#types\ttime\tstring",
        r"#separator \x09",
        "#path\tconn",
        "# just a comment",
        "#",
        "  #fields\tts",
    ] {
        assert_eq!(reason(Format::Zeek, payload), "not_a_record", "{payload:?}");
    }
    let err = decode(Format::Zeek, fields.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        ParseError::NotARecord {
            what: "Zeek header or comment line"
        }
    );
}

#[test]
fn csv_header_rows_are_not_records() {
    let quoted = CSV_COLUMNS.map(|c| format!("\"{c}\"")).join(",");
    let mut reordered = CSV_COLUMNS;
    reordered.reverse();
    for payload in [
        csv_header(),
        csv_header().to_uppercase(),
        format!("{}\r\n", csv_header()),
        quoted,
        reordered.join(","),
        format!("note,{}", csv_header()),
        "ts,src_ip,dst_ip,src_port,dst_port,proto,bytes_out,bytes_in,packets,status".to_string(),
    ] {
        assert_eq!(reason(Format::Csv, &payload), "not_a_record", "{payload:?}");
    }
    // Not a usable header, so a record, and a bad one.
    assert_eq!(reason(Format::Csv, "ts,src_ip"), "wrong_field_count");
    assert_eq!(
        reason(Format::Csv, "now,10.0.0.1,10.0.0.2,1,2,tcp,3,4,5,6,other"),
        "invalid_field"
    );
}

#[test]
fn header_lines_of_other_formats_are_just_bad_records() {
    assert_eq!(reason(Format::Native, "#fields\tts"), "invalid_json");
    assert_eq!(reason(Format::Native, csv_header()), "invalid_json");
    assert_eq!(reason(Format::Csv, "#fields\tts"), "wrong_field_count");
    assert_eq!(reason(Format::Zeek, csv_header()), "wrong_field_count");
}

#[test]
fn invalid_utf8_and_oversized_payloads() {
    for format in Format::ALL {
        let mut bad = encoded(format, &sample());
        bad.insert(3, 0xff);
        assert_eq!(reason(format, &bad), "invalid_utf8", "{format}");
        assert_eq!(reason(format, b"#\xff"), "invalid_utf8", "{format}");

        let mut big = encoded(format, &sample());
        big.resize(MAX_RECORD_BYTES + 1, b' ');
        assert_eq!(reason(format, &big), "too_large", "{format}");
        // At the limit it is still read.
        big.truncate(MAX_RECORD_BYTES);
        assert_eq!(reason(format, &big), "ok", "{format}");
    }
}

#[test]
fn invalid_json_payloads() {
    for format in [Format::Native, Format::Zeek] {
        for payload in ["{", "{\"ts\":}", "{} {}", "{\"ts\":1,}"] {
            assert_eq!(
                reason(format, payload),
                "invalid_json",
                "{format} {payload:?}"
            );
        }
    }
    assert_eq!(reason(Format::Native, "[1,2,3]"), "invalid_json");
    assert_eq!(reason(Format::Native, "\"text\""), "invalid_json");
    assert_eq!(reason(Format::Native, "42"), "invalid_json");
    // Zeek tells JSON from TSV by a leading `{`; anything else is a TSV line, and an
    // array is a TSV line of one field.
    assert_eq!(reason(Format::Zeek, "[1,2,3]"), "wrong_field_count");
}

#[test]
fn missing_fields() {
    assert_eq!(
        reason(Format::Native, native_json(set("src_ip", None))),
        "missing_field"
    );
    assert_eq!(
        reason(
            Format::Native,
            native_json(set("packets", Some(Value::Null)))
        ),
        "missing_field"
    );
    // `status` is optional: absent or null means established.
    assert_eq!(
        reason(
            Format::Native,
            native_json(set("status", Some(Value::Null)))
        ),
        "ok"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_json(set("id.orig_h", None))),
        "missing_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_json(set("ts", None))),
        "missing_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_tsv(|f| f[5] = "-")),
        "missing_field"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c[0].clear())),
        "missing_field"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c[8].clear())),
        "missing_field"
    );
    // The optional fields may be absent everywhere (an empty status is established).
    assert_eq!(reason(Format::Csv, csv_row(|c| c[10].clear())), "ok");
    assert_eq!(
        reason(Format::Native, native_json(set("duration_ms", None))),
        "ok"
    );
    assert_eq!(reason(Format::Zeek, zeek_json(set("duration", None))), "ok");
    assert_eq!(reason(Format::Csv, csv_row(|c| c[9].clear())), "ok");
}

#[test]
fn bad_addresses_ports_and_protocols() {
    let bad_ip = Value::from("10.0.0.256");
    assert_eq!(
        reason(
            Format::Native,
            native_json(set("dst_ip", Some(bad_ip.clone())))
        ),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_json(set("id.resp_h", Some(bad_ip)))),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_tsv(|f| f[2] = "localhost")),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c[1] = "10.0.0".into())),
        "invalid_field"
    );

    let bad_port = Value::from(65536);
    assert_eq!(
        reason(
            Format::Native,
            native_json(set("src_port", Some(bad_port.clone())))
        ),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_json(set("id.resp_p", Some(bad_port)))),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_tsv(|f| f[3] = "-1")),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c[4] = "99999".into())),
        "invalid_field"
    );

    let bad_proto = Value::from("sctp");
    assert_eq!(
        reason(Format::Native, native_json(set("proto", Some(bad_proto)))),
        "invalid_field"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c[5] = "quic".into())),
        "invalid_field"
    );
    // Zeek names any protocol it does not know; only a non-string is wrong.
    assert_eq!(
        reason(Format::Zeek, zeek_json(set("proto", Some(6.into())))),
        "invalid_field"
    );
    assert_eq!(
        decode(Format::Zeek, zeek_tsv(|f| f[6] = "sctp").as_bytes()).map(|e| e.proto),
        Ok(Proto::Other)
    );
}

#[test]
fn wrong_field_counts() {
    assert_eq!(
        reason(
            Format::Csv,
            csv_row(|c| {
                c.pop();
            })
        ),
        "wrong_field_count"
    );
    assert_eq!(
        reason(Format::Csv, csv_row(|c| c.push("extra".into()))),
        "wrong_field_count"
    );
    assert_eq!(
        reason(
            Format::Zeek,
            zeek_tsv(|f| {
                f.pop();
            })
        ),
        "wrong_field_count"
    );
    assert_eq!(
        reason(Format::Zeek, zeek_tsv(|f| f.push("extra"))),
        "wrong_field_count"
    );
    assert_eq!(
        decode(
            Format::Zeek,
            zeek_tsv(|f| {
                f.pop();
            })
            .as_bytes()
        ),
        Err(ParseError::WrongFieldCount {
            expected: 21,
            found: 20
        })
    );
}

#[test]
fn an_embedded_newline_never_makes_two_records() {
    let twice = |record: &str| format!("{record}\n{record}");
    let native = String::from_utf8(encoded(Format::Native, &sample())).unwrap();
    let zeek = String::from_utf8(encoded(Format::Zeek, &sample())).unwrap();
    let csv = csv_row(|_| {});
    let tsv = zeek_tsv(|_| {});

    assert_eq!(reason(Format::Native, twice(&native)), "invalid_json");
    assert_eq!(reason(Format::Zeek, twice(&zeek)), "invalid_json");
    assert_eq!(reason(Format::Csv, twice(&csv)), "invalid_csv");
    assert_eq!(
        reason(Format::Csv, format!("{csv}\n{}", csv_header())),
        "invalid_csv"
    );
    assert_eq!(
        decode(Format::Zeek, twice(&tsv).as_bytes()),
        Err(ParseError::WrongFieldCount {
            expected: 21,
            found: 41
        })
    );

    // One record spread over lines, or followed by a line terminator, is one record.
    let pretty = serde_json::to_string_pretty(&sample()).unwrap();
    assert!(pretty.contains('\n'));
    assert_eq!(decode(Format::Native, pretty.as_bytes()), Ok(sample()));
    for (format, record) in [
        (Format::Native, &native),
        (Format::Zeek, &zeek),
        (Format::Zeek, &tsv),
        (Format::Csv, &csv),
    ] {
        for end in ["\n", "\r\n", "\n\n"] {
            let payload = format!("{record}{end}");
            assert_eq!(
                decode(format, payload.as_bytes()),
                Ok(sample()),
                "{format} {payload:?}"
            );
        }
    }
}

#[test]
fn a_byte_order_mark_may_lead_any_message() {
    for format in Format::ALL {
        let mut payload = "\u{feff}".as_bytes().to_vec();
        payload.extend(encoded(format, &sample()));
        assert_eq!(decode(format, &payload), Ok(sample()), "{format}");
        assert_eq!(decode(format, &payload), Ok(sample()), "{format}, again");
    }
}

#[test]
fn error_messages_say_what_went_wrong() {
    assert_eq!(
        ParseError::EmptyRecord.to_string(),
        "message is empty or only whitespace, not a record"
    );
    assert_eq!(
        ParseError::NotARecord {
            what: "CSV header row"
        }
        .to_string(),
        "message is a CSV header row, not a record; a message must hold exactly one record"
    );
}

// ------------------------------------------------------------ independence

/// Messages of every kind for `format`: records, headers, junk, and data that a header
/// before it would make decodable if headers were heeded.
fn assorted_messages(format: Format) -> Vec<Vec<u8>> {
    let other = Event {
        status: Status::Other,
        ..sample()
    };
    vec![
        encoded(format, &sample()),
        b"".to_vec(),
        b"#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p".to_vec(),
        b"1700000000.000\t10.0.0.1\t1\t10.0.0.2\t2".to_vec(),
        b"#separator ,".to_vec(),
        b"#unset_field\t1".to_vec(),
        b"ts,src_ip,dst_ip,src_port,dst_port,proto,bytes_out,bytes_in,packets,status".to_vec(),
        b"1700000000000,10.0.0.1,10.0.0.2,1,2,tcp,3,4,5,established".to_vec(),
        csv_header().into_bytes(),
        b"\xff\xfe".to_vec(),
        b"{\"ts\":".to_vec(),
        b"not a record".to_vec(),
        vec![b'x'; MAX_RECORD_BYTES + 1],
        zeek_tsv(|_| {}).into_bytes(),
        csv_row(|_| {}).into_bytes(),
        native_json(|_| {}).into_bytes(),
        encoded(format, &other),
    ]
}

type Outcomes = Vec<Result<Event, ParseError>>;

/// The outcome of each message decoded by one decoder in order, and by a fresh decoder.
fn in_order_and_alone(format: Format, messages: &[Vec<u8>]) -> (Outcomes, Outcomes) {
    let mut shared = MessageDecoder::new(format);
    let in_order = messages.iter().map(|m| shared.decode(m)).collect();
    let alone = messages.iter().map(|m| decode(format, m)).collect();
    (in_order, alone)
}

#[test]
fn decoding_does_not_depend_on_earlier_messages() {
    for format in Format::ALL {
        let messages = assorted_messages(format);
        let (in_order, alone) = in_order_and_alone(format, &messages);
        assert_eq!(in_order, alone, "{format}");
        // Reversed, every message still decodes as it did.
        let mut reversed = messages.clone();
        reversed.reverse();
        let (mut backwards, _) = in_order_and_alone(format, &reversed);
        backwards.reverse();
        assert_eq!(backwards, alone, "{format}");
        assert!(
            alone.iter().filter(|r| r.is_ok()).count() >= 3,
            "{format}: {alone:?}"
        );
    }
}

// ------------------------------------------------------------ properties

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
        // IPv4-mapped IPv6 prints in dotted form but must stay IPv6.
        any::<[u8; 4]>().prop_map(|v4| IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped())),
    ]
}

/// Counters small, huge and at the edges.
fn arb_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..10_000u64,
        any::<u64>(),
        Just(0),
        Just(u64::MAX),
        Just(u64::MAX - 1),
    ]
}

/// Any event the decoders accept: `ts` below `TS_LIMIT` (the decoders' only limit on an
/// otherwise well-typed event), everything else over its whole type.
fn arb_event() -> impl Strategy<Value = Event> {
    (
        (
            prop_oneof![
                0..TS_LIMIT,
                Just(0),
                Just(TS_LIMIT - 1),
                1_600_000_000_000..1_800_000_000_000u64
            ],
            arb_ip(),
            arb_ip(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            proptest::sample::select(Proto::ALL.to_vec()),
            arb_count(),
            arb_count(),
            arb_count(),
            proptest::option::of(arb_count()),
            proptest::sample::select(Status::ALL.to_vec()),
        ),
    )
        .prop_map(
            |(
                (ts, src_ip, dst_ip, src_port, dst_port),
                (proto, bytes_out, bytes_in, packets, duration_ms, status),
            )| Event {
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
            },
        )
}

fn arb_format() -> impl Strategy<Value = Format> {
    proptest::sample::select(Format::ALL.to_vec())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/messages.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_format_round_trips(event in arb_event()) {
        for format in Format::ALL {
            let record = encoded(format, &event);
            prop_assert!(!record.contains(&b'\n'), "{}", format);
            prop_assert_eq!(decode(format, &record), Ok(event.clone()), "{} {}", format, String::from_utf8_lossy(&record));
        }
    }

    #[test]
    fn encoded_files_read_back_with_the_line_decoder(format in arb_format(), events in vec(arb_event(), 0..8)) {
        let mut file = Vec::new();
        if let Some(header) = header(format) {
            file.extend(header.into_bytes());
            file.push(b'\n');
        }
        for event in &events {
            encode(format, event, &mut file);
            file.push(b'\n');
        }
        let mut decoder = Decoder::new(format);
        let mut decoded = Vec::new();
        for line in file.split(|&b| b == b'\n') {
            if let Some(event) = decoder.decode(line).unwrap() {
                decoded.push(event);
            }
        }
        prop_assert_eq!(decoded, events);
    }

    #[test]
    fn messages_decode_alike_in_any_order(format in arb_format(), picks in vec(any::<prop::sample::Index>(), 1..24), events in vec(arb_event(), 1..4)) {
        let mut pool = assorted_messages(format);
        pool.extend(events.iter().map(|event| encoded(format, event)));
        let messages: Vec<Vec<u8>> = picks.iter().map(|pick| pick.get(&pool).clone()).collect();
        let (in_order, alone) = in_order_and_alone(format, &messages);
        prop_assert_eq!(in_order, alone);
    }
}
