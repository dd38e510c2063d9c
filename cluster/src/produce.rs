//! `flowsight produce`: generated records, or a file's lines, into a Kafka topic — for
//! demos, load tests and replaying captures.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowsight_connectors::kafka::{ensure_topic, topic_partitions, EventProducer};
use flowsight_connectors::{encode, DeadLetter, Format, GeneratorPartition, PollStatus};
use flowsight_connectors::{EventPartition, CSV_COLUMNS};

use crate::cli::{ProduceConfig, ProduceWhat};

const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Zeek's default conn.log fields: the order a Zeek TSV line must follow on Kafka.
const ZEEK_FIELDS_PREFIX: &str =
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto";

pub fn produce(config: ProduceConfig, stop: &std::sync::atomic::AtomicBool) -> anyhow::Result<()> {
    config.options.check()?;
    let partitions = match config.create_partitions {
        Some(n) => ensure_topic(&config.options, &config.topic, n, BROKER_TIMEOUT)?,
        None => topic_partitions(&config.options, &config.topic, BROKER_TIMEOUT)?.with_context(
            || {
                format!(
                    "topic {} does not exist; give --partitions N to create it",
                    config.topic
                )
            },
        )?,
    };
    let producer = EventProducer::new(&config.options, &config.topic)?;
    let started = Instant::now();
    let sent = match config.what {
        ProduceWhat::File { path, rate, count } => send_file(
            &producer,
            &path,
            config.format,
            partitions,
            rate,
            count,
            stop,
        )?,
        ProduceWhat::Generated(mut generator) => {
            generator.partitions = partitions;
            send_generated(&producer, &generator, config.format, stop)?
        }
    };
    let delivered = producer.flush(Duration::from_secs(60))?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {sent} records to {} ({partitions} partitions) in {seconds:.1}s: {delivered} acknowledged",
        config.topic
    );
    if delivered != sent {
        bail!("{sent} records sent but {delivered} acknowledged");
    }
    Ok(())
}

/// Sleeps as needed to keep `sent` records at `rate` per second since `started`.
fn pace(rate: Option<u64>, sent: u64, started: Instant) {
    if let Some(rate) = rate {
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Whether `line` is the header row a file of `format` starts with, which is not a record
/// on Kafka. A header that orders columns differently from what flowsight reads on Kafka
/// is an error: its records would be read wrongly.
fn is_header(format: Format, line: &str) -> anyhow::Result<bool> {
    let trimmed = line.trim();
    match format {
        Format::Native => Ok(false),
        Format::Csv => {
            let canonical = CSV_COLUMNS.join(",");
            let looks_like_header = trimmed
                .split(',')
                .next()
                .is_some_and(|first| first.trim().eq_ignore_ascii_case("ts"));
            if !looks_like_header {
                return Ok(false);
            }
            let normalized: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            if normalized.eq_ignore_ascii_case(&canonical) {
                Ok(true)
            } else {
                bail!(
                    "the CSV header {trimmed:?} differs from the column order flowsight reads on \
                     Kafka: {canonical}"
                )
            }
        }
        Format::Zeek => {
            if trimmed.starts_with("#fields") && !line.starts_with(ZEEK_FIELDS_PREFIX) {
                bail!(
                    "the Zeek #fields header differs from Zeek's default conn.log order, which \
                     flowsight reads on Kafka"
                );
            }
            Ok(trimmed.starts_with('#'))
        }
    }
}

fn send_file(
    producer: &EventProducer,
    path: &std::path::Path,
    format: Format,
    partitions: u32,
    rate: Option<u64>,
    count: Option<u64>,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut sent = 0u64;
    let mut first = true;
    let started = Instant::now();
    let mut progress = Instant::now();
    loop {
        if count.is_some_and(|c| sent >= c) || stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if (first || format == Format::Zeek) && is_header(format, &text)? {
            first = false;
            continue;
        }
        first = false;
        // Lines are spread round-robin: a file has no key to keep together.
        let partition = (sent % u64::from(partitions)) as u32;
        producer.send(partition, &[], &line)?;
        sent += 1;
        pace(rate, sent, started);
        if progress.elapsed() >= PROGRESS_EVERY {
            progress = Instant::now();
            eprintln!("{sent} records sent");
        }
    }
    Ok(sent)
}

fn send_generated(
    producer: &EventProducer,
    generator: &flowsight_connectors::GeneratorConfig,
    format: Format,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<u64> {
    let mut readers: Vec<GeneratorPartition> = (0..generator.partitions)
        .map(|p| GeneratorPartition::new(generator, p))
        .collect();
    let mut finished = vec![false; readers.len()];
    let mut events = Vec::new();
    let mut dead: Vec<DeadLetter> = Vec::new();
    let mut payload = Vec::new();
    let mut key = String::new();
    let mut sent = 0u64;
    let mut progress = Instant::now();
    while !finished.iter().all(|f| *f) && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut idle = true;
        for (partition, reader) in readers.iter_mut().enumerate() {
            if finished[partition] {
                continue;
            }
            let status = reader.poll(4096, &mut events, &mut dead);
            if status == PollStatus::Finished {
                finished[partition] = true;
            }
            idle &= events.is_empty();
            for event in events.drain(..) {
                payload.clear();
                encode(format, &event, &mut payload);
                // Keyed by source address, as flow exporters usually are: a host's
                // connections stay in one partition.
                key.clear();
                use std::fmt::Write as _;
                let _ = write!(key, "{}", event.src_ip);
                producer.send(partition as u32, key.as_bytes(), &payload)?;
                sent += 1;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
        if progress.elapsed() >= PROGRESS_EVERY {
            progress = Instant::now();
            eprintln!("{sent} records sent");
        }
    }
    Ok(sent)
}
