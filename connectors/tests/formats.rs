//! Each format decoded from realistic samples, and each kind of bad input rejected with
//! its reason code.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use flowsight_connectors::{Decoder, Format, ParseError, MAX_RECORD_BYTES};
use flowsight_events::{Event, Proto, Status};

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().unwrap()
}

/// Decodes `lines` with one decoder, keeping every outcome.
fn decode_all(format: Format, lines: &[String]) -> Vec<Result<Option<Event>, ParseError>> {
    let mut decoder = Decoder::new(format);
    lines
        .iter()
        .map(|line| decoder.decode(line.as_bytes()))
        .collect()
}

/// The reason of each failed line, `"ok"` for events and `"none"` for lines without a
/// record.
fn reasons(results: &[Result<Option<Event>, ParseError>]) -> Vec<&'static str> {
    results
        .iter()
        .map(|result| match result {
            Ok(Some(_)) => "ok",
            Ok(None) => "none",
            Err(err) => err.reason(),
        })
        .collect()
}

fn events(results: Vec<Result<Option<Event>, ParseError>>) -> Vec<Event> {
    results.into_iter().filter_map(|r| r.unwrap()).collect()
}

// ---------------------------------------------------------------- Zeek TSV

const ZEEK_FIELDS: [&str; 21] = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
];
const ZEEK_TYPES: [&str; 21] = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
];

fn tsv(fields: &[&str]) -> String {
    fields.join("\t")
}

/// The header Zeek writes at the top of conn.log.
fn zeek_header() -> Vec<String> {
    vec![
        r"#separator \x09".to_string(),
        tsv(&["#set_separator", ","]),
        tsv(&["#empty_field", "(empty)"]),
        tsv(&["#unset_field", "-"]),
        tsv(&["#path", "conn"]),
        tsv(&["#open", "2023-11-14-22-13-20"]),
        format!("#fields\t{}", tsv(&ZEEK_FIELDS)),
        format!("#types\t{}", tsv(&ZEEK_TYPES)),
    ]
}

fn zeek_tsv_sample() -> Vec<String> {
    let mut lines = zeek_header();
    lines.extend([
        tsv(&[
            "1700000000.123956",
            "CHhAvVGS1DHFjwGM9",
            "10.0.1.10",
            "49152",
            "10.1.0.1",
            "443",
            "tcp",
            "ssl",
            "1.234567",
            "512",
            "20480",
            "SF",
            "T",
            "T",
            "0",
            "ShADadFf",
            "12",
            "1136",
            "18",
            "21424",
            "(empty)",
        ]),
        tsv(&[
            "1700000001.000000",
            "C4J4Th3PJpwUYZZ6gc",
            "10.0.1.11",
            "53211",
            "10.0.0.53",
            "53",
            "udp",
            "dns",
            "0.012043",
            "40",
            "120",
            "SF",
            "T",
            "T",
            "0",
            "Dd",
            "1",
            "68",
            "1",
            "148",
            "-",
        ]),
        tsv(&[
            "1700000002.5",
            "CUM0KZ3MLUfNB0cl11",
            "10.0.1.12",
            "40000",
            "10.2.0.7",
            "8080",
            "tcp",
            "-",
            "-",
            "-",
            "-",
            "S0",
            "T",
            "T",
            "0",
            "S",
            "1",
            "60",
            "0",
            "0",
            "-",
        ]),
        tsv(&[
            "1700000003.999",
            "CmES5u32sYpV7JYN",
            "fe80::1",
            "5353",
            "ff02::fb",
            "5353",
            "udp",
            "dns",
            "-",
            "-",
            "-",
            "S0",
            "T",
            "F",
            "0",
            "D",
            "1",
            "100",
            "0",
            "0",
            "-",
        ]),
        tsv(&[
            "1700000004.0",
            "CP5Xt24bNBQmZa3hLd",
            "10.0.0.5",
            "8",
            "10.2.0.1",
            "0",
            "icmp",
            "-",
            "0.001",
            "56",
            "56",
            "OTH",
            "T",
            "T",
            "0",
            "-",
            "1",
            "84",
            "1",
            "84",
            "-",
        ]),
        String::new(),
        tsv(&["#close", "2023-11-14-23-00-00"]),
    ]);
    lines
}

#[test]
fn zeek_tsv_sample_decodes() {
    let results = decode_all(Format::Zeek, &zeek_tsv_sample());
    assert_eq!(
        reasons(&results),
        [
            "none", "none", "none", "none", "none", "none", "none", "none", "ok", "ok", "ok", "ok",
            "ok", "none", "none"
        ]
    );
    let events = events(results);
    assert_eq!(
        events[0],
        Event {
            ts: 1_700_000_000_123,
            src_ip: ip("10.0.1.10"),
            dst_ip: ip("10.1.0.1"),
            src_port: 49152,
            dst_port: 443,
            proto: Proto::Tcp,
            bytes_out: 512,
            bytes_in: 20480,
            packets: 30,
            duration_ms: Some(1234),
            status: Status::Established,
        }
    );
    assert_eq!(events[1].duration_ms, Some(12));
    assert_eq!(events[1].proto, Proto::Udp);
    // Unset counters count as 0, an unset duration is absent.
    let s0 = &events[2];
    assert_eq!((s0.bytes_out, s0.bytes_in, s0.packets), (0, 0, 1));
    assert_eq!(s0.duration_ms, None);
    assert_eq!(s0.status, Status::Failed);
    assert_eq!(s0.ts, 1_700_000_002_500);
    assert_eq!(events[3].src_ip, ip("fe80::1"));
    assert_eq!(events[3].dst_ip, ip("ff02::fb"));
    assert_eq!(events[3].ts, 1_700_000_003_999);
    assert_eq!(events[4].proto, Proto::Icmp);
    assert_eq!(events[4].status, Status::Failed, "OTH maps to failed");
}

#[test]
fn zeek_tsv_honours_unset_and_empty_markers() {
    let mut lines = vec![
        r"#separator \x2c".to_string(),
        "#unset_field,NA".to_string(),
        "#empty_field,EMPTY".to_string(),
        "#fields,ts,id.orig_h,id.orig_p,id.resp_h,id.resp_p,orig_bytes,duration,proto".to_string(),
    ];
    lines.push("1700000000.1239,10.0.0.1,1,10.0.0.2,2,NA,NA,NA".to_string());
    lines.push("1700000000,10.0.0.1,1,10.0.0.2,2,-,NA,tcp".to_string());
    lines.push("1700000000,10.0.0.1,1,10.0.0.2,2,EMPTY,NA,tcp".to_string());
    lines.push("NA,10.0.0.1,1,10.0.0.2,2,5,NA,tcp".to_string());
    let results = decode_all(Format::Zeek, &lines);
    assert_eq!(
        reasons(&results),
        [
            "none",
            "none",
            "none",
            "none",
            "ok",
            "invalid_field",
            "invalid_field",
            "missing_field"
        ]
    );
    let event = results[4].clone().unwrap().unwrap();
    assert_eq!(event.ts, 1_700_000_000_123, "ts floors to the ms");
    assert_eq!(
        (event.bytes_out, event.duration_ms, event.proto),
        (0, None, Proto::Other)
    );
    assert_eq!(event.status, Status::Other, "conn_state absent");
}

#[test]
fn zeek_tsv_bad_lines() {
    let mut before_header = vec![tsv(&["1700000000.0", "x"])];
    before_header.extend(zeek_header());
    let row = |replace: usize, value: &str| {
        let mut fields = [
            "1700000000.5",
            "C1",
            "10.0.1.10",
            "49152",
            "10.1.0.1",
            "443",
            "tcp",
            "-",
            "1.0",
            "1",
            "2",
            "SF",
            "T",
            "T",
            "0",
            "-",
            "1",
            "1",
            "1",
            "1",
            "-",
        ];
        fields[replace] = value;
        tsv(&fields)
    };
    before_header.extend([
        row(0, "-"),                               // unset ts
        row(2, "-"),                               // unset id.orig_h
        row(3, "http"),                            // bad port
        row(5, "65536"),                           // port out of range
        row(0, "yesterday"),                       // bad ts
        row(0, "-1700000000.5"),                   // negative ts
        row(4, "10.1.0"),                          // bad address
        row(9, "-5"),                              // negative count
        row(16, "1.5"),                            // fractional count
        row(8, "fast"),                            // bad duration
        "1700000000.5\tC1\t10.0.1.10".to_string(), // too few fields
        format!("{}\textra", row(0, "1700000000.5")),
        row(6, "sctp"), // unknown protocol: other, not an error
        row(11, "S4"),  // unknown state: other
        "\u{feff}not the first line".to_string(), // a BOM counts only at the start
    ]);
    let results = decode_all(Format::Zeek, &before_header);
    assert_eq!(
        reasons(&results)[9..],
        [
            "missing_field",
            "missing_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "wrong_field_count",
            "wrong_field_count",
            "ok",
            "ok",
            "wrong_field_count"
        ][..],
        "{results:#?}"
    );
    assert_eq!(reasons(&results)[0], "missing_header");
    let Err(err) = &results[11] else { panic!() };
    assert_eq!(
        err.to_string(),
        "invalid id.orig_p: \"http\" is not a port number (0 to 65535)"
    );
    assert_eq!(
        results[21].as_ref().unwrap().as_ref().unwrap().proto,
        Proto::Other
    );
    assert_eq!(
        results[22].as_ref().unwrap().as_ref().unwrap().status,
        Status::Other
    );
}

#[test]
fn zeek_tsv_fields_header_without_required_fields_rejects_what_follows() {
    let lines = vec![
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h".to_string(),
        "1700000000.0\t10.0.0.1\t1\t10.0.0.2".to_string(),
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p".to_string(),
        "1700000000.0\t10.0.0.1\t1\t10.0.0.2\t2".to_string(),
        "#fields\tts\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p".to_string(),
        "1700000000.0\t1700000000.0\t10.0.0.1\t1\t10.0.0.2\t2".to_string(),
        "#types\ttime".to_string(),
    ];
    let results = decode_all(Format::Zeek, &lines);
    assert_eq!(
        reasons(&results),
        [
            "missing_header",
            "missing_header",
            "none",
            "ok",
            "invalid_header",
            "missing_header",
            "none"
        ]
    );
    let Err(err) = &results[0] else { panic!() };
    assert!(err.to_string().contains("id.resp_p"), "{err}");
}

#[test]
fn zeek_tsv_types_must_match_fields() {
    let lines = vec![
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p".to_string(),
        "#types\ttime\taddr\tport\taddr".to_string(),
    ];
    assert_eq!(
        reasons(&decode_all(Format::Zeek, &lines)),
        ["none", "invalid_header"]
    );
}

// ---------------------------------------------------------------- Zeek JSON

#[test]
fn zeek_json_sample_decodes() {
    let lines: Vec<String> = [
        // As Zeek's JSON writer emits it: flat dotted keys, unset fields left out.
        r#"{"ts":1700000000.123956,"uid":"CHhAvVGS1DHFjwGM9","id.orig_h":"10.0.1.10","id.orig_p":49152,"id.resp_h":"2606:4700::1111","id.resp_p":443,"proto":"tcp","service":"ssl","duration":1.234567,"orig_bytes":512,"resp_bytes":20480,"conn_state":"SF","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"ShADadFf","orig_pkts":12,"orig_ip_bytes":1136,"resp_pkts":18,"resp_ip_bytes":21424}"#,
        r#"{"ts":1700000002.5,"uid":"CUM0KZ3MLUfNB0cl11","id.orig_h":"10.0.1.12","id.orig_p":40000,"id.resp_h":"10.2.0.7","id.resp_p":8080,"proto":"tcp","conn_state":"REJ","orig_pkts":1,"resp_pkts":1}"#,
        // JSON::TS_ISO8601 timestamps.
        r#"{"ts":"2023-11-14T22:13:20.123956Z","id.orig_h":"2001:db8::1","id.orig_p":1,"id.resp_h":"2001:db8::2","id.resp_p":2,"proto":"udp","conn_state":"RSTO","duration":null}"#,
        // The nested form.
        r#"{"ts":"1700000003.25","id":{"orig_h":"10.0.1.13","orig_p":5000,"resp_h":"10.0.0.53","resp_p":53},"proto":"UDP","conn_state":"SHR"}"#,
    ]
    .map(String::from)
    .to_vec();
    let events = events(decode_all(Format::Zeek, &lines));
    assert_eq!(
        events[0],
        Event {
            ts: 1_700_000_000_123,
            src_ip: ip("10.0.1.10"),
            dst_ip: ip("2606:4700::1111"),
            src_port: 49152,
            dst_port: 443,
            proto: Proto::Tcp,
            bytes_out: 512,
            bytes_in: 20480,
            packets: 30,
            duration_ms: Some(1234),
            status: Status::Established,
        }
    );
    assert_eq!(
        (
            events[1].status,
            events[1].packets,
            events[1].duration_ms,
            events[1].bytes_out
        ),
        (Status::Rejected, 2, None, 0)
    );
    assert_eq!(events[2].ts, 1_700_000_000_123);
    assert_eq!(events[2].status, Status::Reset);
    assert_eq!(events[2].src_ip, ip("2001:db8::1"));
    assert_eq!(events[3].ts, 1_700_000_003_250);
    assert_eq!(events[3].src_ip, ip("10.0.1.13"));
    assert_eq!(events[3].dst_port, 53);
    assert_eq!(events[3].proto, Proto::Udp);
    assert_eq!(events[3].status, Status::Failed);
}

#[test]
fn zeek_json_bad_lines() {
    let good = r#""id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2"#;
    let cases = [
        (format!("{{\"ts\":1700000000.1,{good}"), "invalid_json"),
        ("{\"ts\":1700000000.1}".to_string(), "missing_field"),
        (format!("{{{good}}}"), "missing_field"),
        (format!("{{\"ts\":null,{good}}}"), "missing_field"),
        (format!("{{\"ts\":\"noon\",{good}}}"), "invalid_field"),
        (format!("{{\"ts\":-1.5,{good}}}"), "invalid_field"),
        (format!("{{\"ts\":true,{good}}}"), "invalid_field"),
        (format!("{{\"ts\":1e300,{good}}}"), "invalid_field"),
        (
            format!("{{\"ts\":1,{good},\"orig_bytes\":\"many\"}}"),
            "invalid_field",
        ),
        (
            format!("{{\"ts\":1,{good},\"orig_pkts\":-1}}"),
            "invalid_field",
        ),
        (format!("{{\"ts\":1,{good},\"proto\":6}}"), "invalid_field"),
        (
            format!("{{\"ts\":1,{good},\"duration\":\"long\"}}"),
            "invalid_field",
        ),
        (
            format!("{{\"ts\":1,{good},\"orig_pkts\":18446744073709551615,\"resp_pkts\":5}}"),
            "ok",
        ),
        (
            r#"{"ts":1,"id":{"orig_h":"10.0.0.1","orig_p":1,"resp_h":"10.0.0.2"}}"#.to_string(),
            "missing_field",
        ),
        (r#"{"ts":1,"id":7}"#.to_string(), "missing_field"),
        ("{".to_string(), "invalid_json"),
        ("{} trailing".to_string(), "invalid_json"),
    ];
    for (line, reason) in cases {
        let result = Decoder::new(Format::Zeek).decode(line.as_bytes());
        assert_eq!(
            reasons(std::slice::from_ref(&result)),
            [reason],
            "{line}: {result:?}"
        );
        if let Ok(Some(event)) = result {
            assert_eq!(event.packets, u64::MAX, "packets saturate");
        }
    }
}

// ---------------------------------------------------------------- native JSON

const NATIVE: &str = r#"{"ts":1700000000123,"src_ip":"10.0.1.10","dst_ip":"2606:4700::1111","src_port":49152,"dst_port":443,"proto":"tcp","bytes_out":512,"bytes_in":20480,"packets":30,"duration_ms":1234,"status":"established","note":"extra fields are ignored"}"#;

fn native_event() -> Event {
    Event {
        ts: 1_700_000_000_123,
        src_ip: ip("10.0.1.10"),
        dst_ip: ip("2606:4700::1111"),
        src_port: 49152,
        dst_port: 443,
        proto: Proto::Tcp,
        bytes_out: 512,
        bytes_in: 20480,
        packets: 30,
        duration_ms: Some(1234),
        status: Status::Established,
    }
}

#[test]
fn native_json_decodes() {
    let mut decoder = Decoder::new(Format::Native);
    assert_eq!(decoder.decode(NATIVE.as_bytes()), Ok(Some(native_event())));
    let crlf = format!("{NATIVE}\r");
    assert_eq!(decoder.decode(crlf.as_bytes()), Ok(Some(native_event())));
    assert_eq!(decoder.decode(b"   "), Ok(None));
    assert_eq!(decoder.decode(b""), Ok(None));
    let rfc3339 = NATIVE
        .replace("1700000000123", "\"2023-11-14T22:13:20.123999Z\"")
        .replace("\"duration_ms\":1234,", "")
        .replace("\"tcp\"", "\"TCP\"")
        .replace("\"established\"", "\"Established\"");
    let event = decoder.decode(rfc3339.as_bytes()).unwrap().unwrap();
    assert_eq!(
        event,
        Event {
            duration_ms: None,
            ..native_event()
        }
    );
    // What the events crate serialises, this format reads back.
    let json = serde_json::to_string(&native_event()).unwrap();
    assert_eq!(decoder.decode(json.as_bytes()), Ok(Some(native_event())));
}

#[test]
fn native_json_bad_lines() {
    let cases = [
        ("not json".to_string(), "invalid_json"),
        ("[1,2]".to_string(), "invalid_json"),
        ("42".to_string(), "invalid_json"),
        (NATIVE[..NATIVE.len() - 5].to_string(), "invalid_json"),
        ("{}".to_string(), "missing_field"),
        (NATIVE.replace("\"packets\":30,", ""), "missing_field"),
        // Optional: a record without a status counts as established.
        (NATIVE.replace(",\"status\":\"established\"", ""), "ok"),
        (
            NATIVE.replace("\"proto\":\"tcp\"", "\"proto\":null"),
            "missing_field",
        ),
        (NATIVE.replace("10.0.1.10", "10.0.1.300"), "invalid_field"),
        (NATIVE.replace("49152", "70000"), "invalid_field"),
        (NATIVE.replace("49152", "-1"), "invalid_field"),
        (NATIVE.replace(":512", ":-512"), "invalid_field"),
        (NATIVE.replace(":512", ":5.12"), "invalid_field"),
        (
            NATIVE.replace(":512", ":18446744073709551616"),
            "invalid_field",
        ),
        (NATIVE.replace(":1234", ":true"), "invalid_field"),
        (NATIVE.replace("1700000000123", "-1"), "invalid_field"),
        (
            NATIVE.replace("1700000000123", "253402300800000"),
            "invalid_field",
        ),
        (
            NATIVE.replace("1700000000123", "\"yesterday\""),
            "invalid_field",
        ),
        (
            NATIVE.replace("1700000000123", "1700000000123.5"),
            "invalid_field",
        ),
        (NATIVE.replace("\"tcp\"", "\"sctp\""), "invalid_field"),
        (NATIVE.replace("\"established\"", "\"ok\""), "invalid_field"),
        (NATIVE.replace("\"established\"", "[]"), "invalid_field"),
        (
            NATIVE.replace("10.0.1.10", "10.0.1.\u{ff}"),
            "invalid_field",
        ),
    ];
    for (line, reason) in cases {
        let result = Decoder::new(Format::Native).decode(line.as_bytes());
        assert_eq!(
            reasons(std::slice::from_ref(&result)),
            [reason],
            "{line}: {result:?}"
        );
    }
    let err = Decoder::new(Format::Native)
        .decode(NATIVE.replace("\"tcp\"", "\"sctp\"").as_bytes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid proto: \"sctp\" is not a protocol (tcp, udp, icmp, other)"
    );
}

#[test]
fn invalid_utf8_and_oversized_lines_are_rejected_in_every_format() {
    for format in Format::ALL {
        let mut decoder = Decoder::new(format);
        let err = decoder.decode(b"{\"ts\":\xff}").unwrap_err();
        assert_eq!(err.reason(), "invalid_utf8", "{format}");
        let huge = vec![b'a'; MAX_RECORD_BYTES + 1];
        let err = decoder.decode(&huge).unwrap_err();
        assert_eq!(err.reason(), "too_large", "{format}");
        assert_eq!(
            err,
            ParseError::TooLarge {
                len: u64::try_from(MAX_RECORD_BYTES).unwrap() + 1,
                max: MAX_RECORD_BYTES
            }
        );
        // Exactly at the limit, and with a '\r' beyond it, is not too large.
        let mut at_limit = vec![b' '; MAX_RECORD_BYTES];
        assert_eq!(decoder.decode(&at_limit), Ok(None), "{format}");
        at_limit.push(b'\r');
        assert_eq!(decoder.decode(&at_limit), Ok(None), "{format}");
    }
}

#[test]
fn a_byte_order_mark_is_ignored_at_the_start() {
    let line = format!("\u{feff}{NATIVE}");
    assert_eq!(
        Decoder::new(Format::Native).decode(line.as_bytes()),
        Ok(Some(native_event()))
    );
    let mut decoder = Decoder::new(Format::Native);
    decoder.decode(b"").unwrap();
    assert_eq!(
        decoder.decode(line.as_bytes()).unwrap_err().reason(),
        "invalid_json"
    );
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_with_quoted_fields_and_reordered_columns_decodes() {
    let lines: Vec<String> = [
        "",
        r#"Status,dst_port,"src_ip",dst_ip,src_port, proto ,ts,bytes_out,bytes_in,packets,duration_ms,note"#,
        r#"established,443,10.0.1.10,"2606:4700::1111",49152,TCP,1700000000123,512,20480,30,1234,"hello, world""#,
        r#"failed,22,10.0.1.11,10.3.0.1,40000,tcp,2023-11-14T22:13:21.5Z,0,0,1,,"said ""hi"", left""#,
        // A stray carriage return inside a line does not end the record.
        "\"reset\",\"8080\",10.0.1.12,10.2.0.7,40001,tcp,1700000000000,1,2,3,4,a\rb",
    ]
    .map(String::from)
    .to_vec();
    let results = decode_all(Format::Csv, &lines);
    assert_eq!(reasons(&results), ["none", "none", "ok", "ok", "ok"]);
    let events = events(results);
    assert_eq!(events[0], native_event());
    assert_eq!(events[1].ts, 1_700_000_001_500);
    assert_eq!(events[1].duration_ms, None);
    assert_eq!(events[1].status, Status::Failed);
    assert_eq!(events[2].status, Status::Reset);
    assert_eq!(events[2].dst_port, 8080);
}

#[test]
fn csv_bad_lines() {
    let header =
        "ts,src_ip,dst_ip,src_port,dst_port,proto,bytes_out,bytes_in,packets,duration_ms,status";
    let good = "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6,other";
    let lines: Vec<String> = [
        header,
        good,
        "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6",
        "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6,other,extra",
        ",10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6,other",
        "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,,4,5,6,other",
        "1700000000123,10.0.0.1,10.0.0.2,1,99999,udp,3,4,5,6,other",
        "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,-6,other",
        "1700000000123,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6,closed",
        "1700000000123,10.0.0.1,10.0.0.2,1,2,quic,3,4,5,6,other",
        "soon,10.0.0.1,10.0.0.2,1,2,udp,3,4,5,6,other",
        "1700000000123,10.0.0.1,localhost,1,2,udp,3,4,5,6,other",
        header,
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        reasons(&decode_all(Format::Csv, &lines)),
        [
            "none",
            "ok",
            "wrong_field_count",
            "wrong_field_count",
            "missing_field",
            "missing_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "invalid_field"
        ]
    );
}

#[test]
fn csv_header_missing_a_column_rejects_it_and_everything_after() {
    let lines: Vec<String> = [
        "ts,src_ip,dst_ip,src_port,proto,bytes_out,bytes_in,packets,status",
        "1700000000123,10.0.0.1,10.0.0.2,1,udp,3,4,5,other",
        "1700000000123,10.0.0.1,10.0.0.2,1,udp,3,4,5,other",
    ]
    .map(String::from)
    .to_vec();
    let results = decode_all(Format::Csv, &lines);
    assert_eq!(
        reasons(&results),
        ["missing_header", "missing_header", "missing_header"]
    );
    let Err(err) = &results[0] else { panic!() };
    assert_eq!(
        err.to_string(),
        "no usable header: the CSV header lacks required column(s) dst_port"
    );

    let duplicate: Vec<String> = ["ts,TS,src_ip", "1,2,3"].map(String::from).to_vec();
    assert_eq!(
        reasons(&decode_all(Format::Csv, &duplicate)),
        ["invalid_header", "missing_header"]
    );

    let mut unreadable = Decoder::new(Format::Csv);
    assert_eq!(
        unreadable.decode(b"ts\xff").unwrap_err().reason(),
        "invalid_utf8"
    );
    assert_eq!(
        unreadable.decode(b"1,2").unwrap_err().reason(),
        "missing_header"
    );
}
