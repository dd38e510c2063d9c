//! Replaying files: line endings, positions, oversized and undecodable lines, polling.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use flowsight_connectors::{
    DeadLetter, EventPartition, FilePartition, Format, PollStatus, SourceError,
    MAX_DEAD_LETTER_BYTES, MAX_RECORD_BYTES,
};
use flowsight_events::Event;
use std::io::Write;
use std::path::Path;

const RECORD: &str = r#"{"ts":1700000000123,"src_ip":"10.0.1.10","dst_ip":"10.1.0.1","src_port":49152,"dst_port":443,"proto":"tcp","bytes_out":512,"bytes_in":20480,"packets":30,"status":"established"}"#;

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

/// Polls until finished, `max` at a time.
fn drain(partition: &mut FilePartition, max: usize) -> (Vec<Event>, Vec<DeadLetter>) {
    let (mut events, mut dead) = (Vec::new(), Vec::new());
    for _ in 0..1_000_000 {
        if partition.poll(max, &mut events, &mut dead) == PollStatus::Finished {
            return (events, dead);
        }
    }
    panic!("the partition never finished");
}

#[test]
fn replays_lines_with_positions() {
    let mut content = Vec::new();
    content.extend_from_slice(RECORD.as_bytes());
    content.extend_from_slice(b"\r\n\n");
    content.extend_from_slice(b"{\"ts\":1}\n");
    content.extend_from_slice(b"\xff\xfe\n");
    content.extend_from_slice(&vec![b'x'; MAX_RECORD_BYTES + 10]);
    content.extend_from_slice(b"\r\n");
    content.extend_from_slice(RECORD.as_bytes()); // no final newline
    let file = file_with(&content);
    let mut partition = FilePartition::open(file.path(), Format::Native).unwrap();
    assert_eq!(partition.next_offset(), 1);
    let (events, dead) = drain(&mut partition, 2);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].ts, 1_700_000_000_123);
    assert_eq!(partition.next_offset(), 7);

    let summary: Vec<(&str, u64)> = dead
        .iter()
        .map(|d| (d.reason.as_str(), d.position.offset))
        .collect();
    assert_eq!(
        summary,
        [("missing_field", 3), ("invalid_utf8", 4), ("too_large", 5)]
    );
    let source = file.path().display().to_string();
    assert!(dead
        .iter()
        .all(|d| d.position.source == source && d.position.partition == 0));
    assert_eq!(dead[0].bytes, "{\"ts\":1}");
    assert_eq!(dead[1].bytes, "\u{fffd}\u{fffd}");
    let too_large = &dead[2];
    assert_eq!(
        too_large.bytes,
        format!(
            "{}…[truncated {} bytes]",
            "x".repeat(MAX_DEAD_LETTER_BYTES),
            MAX_RECORD_BYTES + 10 - MAX_DEAD_LETTER_BYTES
        )
    );
    assert_eq!(
        too_large.error,
        format!(
            "record is {} bytes long, over the limit of {MAX_RECORD_BYTES} bytes",
            MAX_RECORD_BYTES + 10
        )
    );

    let mut after = (Vec::new(), Vec::new());
    assert_eq!(
        partition.poll(10, &mut after.0, &mut after.1),
        PollStatus::Finished
    );
    assert!(after.0.is_empty() && after.1.is_empty());
}

#[test]
fn polls_at_most_max_lines() {
    let content = format!("{RECORD}\n").repeat(5);
    let mut partition =
        FilePartition::from_reader("memory", std::io::Cursor::new(content), Format::Native);
    let (mut events, mut dead) = (Vec::new(), Vec::new());
    assert_eq!(partition.poll(2, &mut events, &mut dead), PollStatus::Ready);
    assert_eq!(events.len(), 2);
    assert_eq!(partition.poll(0, &mut events, &mut dead), PollStatus::Ready);
    assert_eq!(events.len(), 2);
    assert_eq!(partition.poll(3, &mut events, &mut dead), PollStatus::Ready);
    assert_eq!(
        partition.poll(3, &mut events, &mut dead),
        PollStatus::Finished
    );
    assert_eq!(events.len(), 5);
    assert_eq!(partition.source(), "memory");
}

#[test]
fn an_empty_file_finishes_at_once() {
    let file = file_with(b"");
    let mut partition = FilePartition::open(file.path(), Format::Csv).unwrap();
    let (events, dead) = drain(&mut partition, 10);
    assert!(events.is_empty() && dead.is_empty());
}

#[test]
fn csv_files_use_their_header() {
    let file = file_with(
        b"\xef\xbb\xbfproto,ts,src_ip,dst_ip,src_port,dst_port,bytes_out,bytes_in,packets,status\r\n\
          udp,1700000000000,10.0.1.10,10.0.0.53,50000,53,40,120,2,established\r\n\
          udp,1700000000000,10.0.1.10,10.0.0.53,50000,53,40,120,2\r\n",
    );
    let mut partition = FilePartition::open(file.path(), Format::Csv).unwrap();
    let (events, dead) = drain(&mut partition, 100);
    assert_eq!(events.len(), 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reason.as_str(), dead[0].position.offset),
        ("wrong_field_count", 3)
    );
}

#[test]
fn an_oversized_csv_header_rejects_the_file() {
    let mut content = vec![b'a'; MAX_RECORD_BYTES + 1];
    content.extend_from_slice(b"\n1,2,3\n");
    let file = file_with(&content);
    let mut partition = FilePartition::open(file.path(), Format::Csv).unwrap();
    let (_, dead) = drain(&mut partition, 100);
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons, ["too_large", "missing_header"]);
}

#[test]
fn open_errors_name_the_path() {
    let missing = Path::new("/nonexistent/flowsight/conn.log");
    let err = FilePartition::open(missing, Format::Zeek).err().unwrap();
    assert!(matches!(err, SourceError::Open { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot open /nonexistent/flowsight/conn.log: "),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let err = FilePartition::open(dir.path(), Format::Zeek).err().unwrap();
    assert!(err.to_string().ends_with("is a directory"), "{err}");
}

#[test]
fn read_errors_become_a_dead_letter_and_finish() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            let line = format!("{RECORD}\n");
            let n = line.len().min(buf.len());
            buf[..n].copy_from_slice(&line.as_bytes()[..n]);
            Ok(n)
        }
    }
    let mut partition = FilePartition::from_reader("flaky", Failing(1), Format::Native);
    let (events, dead) = drain(&mut partition, 10);
    assert_eq!(events.len(), 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "io_error");
    assert_eq!(dead[0].error, "cannot read flaky: disk on fire");
    assert_eq!(dead[0].position.offset, 2);
}
