//! `cargo run --release -p flowsight-benches --bin kafka -- [--brokers H:P] [--kafka-option K=V]... [--windows LIST] [--records N]
//! [--partitions P] [--workers W] [--freshness-rate R] [--freshness-seconds S]`
//!
//! End-to-end through a Kafka-protocol broker (a Tansu broker with in-memory storage is
//! started on a free port unless `--brokers` is given):
//!
//! 1. **throughput**: `N` generated records are produced into a fresh topic, then an
//!    engine reads them all; records/s from the engine's start until every record is
//!    visible in the views (broker, producer and engine share the machine).
//! 2. **recovery**: the engine is stopped (final checkpoint) and started again on the same
//!    state directory; the time until the views are exact again, per million records
//!    replayed (with the default 24 h window every record is replayed).
//! 3. **freshness**: records produced at a fixed rate with event time = wall clock; the
//!    staleness of the views (`now − as_of`) sampled every 10 ms, p50 / p99 / max.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use flowsight_events::now_ms;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use flowsight_benches::{
    engine_config, exit_usage, free_port, generator, peak_rss_bytes, reset_peak_rss, Timing, Views,
};
use flowsight_connectors::kafka::{ensure_topic, topic_partitions, EventProducer, KafkaOptions};
use flowsight_connectors::{encode, Format, GeneratorConfig, GeneratorPartition, Pace};
use flowsight_engine::views::counters::Status;
use flowsight_engine::{Engine, EngineConfig, KafkaSourceConfig, SourceConfig};

/// End-to-end through a Kafka-protocol broker: throughput, recovery after a restart, and
/// freshness at a fixed rate.
#[derive(Parser)]
#[command(name = "kafka", args_override_self = true)]
struct Args {
    /// The brokers to use; without it, a Tansu broker with in-memory storage is started on
    /// a free port.
    #[arg(long, value_name = "H:P")]
    brokers: Option<String>,
    /// An extra librdkafka option for the engine's clients (and for creating the topics
    /// and producing the throughput phase's records); may be repeated.
    #[arg(long = "kafka-option", value_name = "K=V")]
    kafka_options: Vec<String>,
    /// The engine's windows; with the default every record is still in the 24 h window,
    /// so the recovery phase replays them all.
    #[arg(long, value_name = "LIST", default_value = flowsight_queries::windows::DEFAULT_WINDOWS)]
    windows: String,
    /// How many generated records the throughput and recovery phases produce and read.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    records: u64,
    /// Partitions of the topics (and of the generator).
    #[arg(long, value_name = "P", default_value_t = 4)]
    partitions: u32,
    /// Worker threads of the engine.
    #[arg(long, value_name = "W", default_value_t = 2)]
    workers: usize,
    /// Records per second produced in the freshness phase, with event time = wall clock.
    #[arg(long, value_name = "R", default_value_t = 100_000)]
    freshness_rate: u64,
    /// How long the freshness phase produces, in seconds.
    #[arg(long, value_name = "S", default_value_t = 20)]
    freshness_seconds: u64,
}

/// A Tansu broker with in-memory storage, stopped on drop.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu() -> (Broker, String) {
    let bin = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("tansu"));
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            exit_usage::<Args>(format!(
                "cannot start tansu ({}): {e}; run scripts/setup.sh",
                bin.display()
            ))
        });
    let brokers = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while topic_partitions(
        &KafkaOptions::new(&brokers),
        "probe",
        Duration::from_secs(1),
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "tansu did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Broker(child), brokers)
}

/// Produces the generator's records, partition `p` of the generator into partition `p`.
fn produce(producer: &EventProducer, config: &GeneratorConfig, stop: &AtomicBool) -> u64 {
    let mut parts: Vec<GeneratorPartition> = (0..config.partitions)
        .map(|p| GeneratorPartition::new(config, p))
        .collect();
    let mut payload = Vec::new();
    let mut sent = 0;
    let mut live = parts.len();
    let mut events = Vec::new();
    let mut dead = Vec::new();
    while live > 0 && !stop.load(Ordering::Relaxed) {
        live = 0;
        let mut any = false;
        for (p, part) in parts.iter_mut().enumerate() {
            use flowsight_connectors::{EventPartition, PollStatus};
            let status = part.poll(4096, &mut events, &mut dead);
            if status != PollStatus::Finished {
                live += 1;
            }
            any |= !events.is_empty();
            for event in events.drain(..) {
                payload.clear();
                encode(Format::Native, &event, &mut payload);
                producer
                    .send(p as u32, event.src_ip.to_string().as_bytes(), &payload)
                    .expect("produce");
                sent += 1;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    sent
}

/// The engine of every phase: the topic's records with `tick` and `lateness` (ms), a
/// 200 ms idle timeout, every view, and checkpoints in `state_dir`.
fn kafka_engine_config(
    args: &Args,
    kafka: &KafkaOptions,
    topic: &str,
    state_dir: PathBuf,
    tick: u64,
    lateness: u64,
) -> EngineConfig {
    let timing = Timing::new(tick, lateness, Duration::from_millis(200), &args.windows)
        .unwrap_or_else(|e| exit_usage::<Args>(format!("--windows: {e}")));
    let source = SourceConfig::Kafka(KafkaSourceConfig {
        options: kafka.clone(),
        topic: topic.to_string(),
        format: Format::Native,
        dead_letter_topic: format!("{topic}.dead-letters"),
    });
    engine_config(args.workers, source, Views::All, timing, Some(state_dir))
}

/// Starts an engine on `config`, waits until it has read `records` (see [`wait_complete`])
/// and returns it, still running, with the seconds that took.
fn start_until_complete(config: EngineConfig, records: u64) -> (Engine, f64) {
    let started = Instant::now();
    let engine = Engine::start(config).expect("engine");
    let done = wait_complete(&engine, records);
    (engine, done.duration_since(started).as_secs_f64())
}

/// Waits until `records` are counted, nothing is being replayed and the views have passed
/// every record; returns when that happened.
fn wait_complete(engine: &Engine, records: u64) -> Instant {
    let client = engine.client();
    let started = Instant::now();
    let mut report = Instant::now();
    loop {
        if let Ok(answered) = client.peek(Status, Duration::from_secs(60)) {
            let status = answered.answer;
            if std::env::var_os("BENCH_PROGRESS").is_some()
                && report.elapsed() >= Duration::from_millis(500)
            {
                report = Instant::now();
                eprintln!(
                    "{:>6.1}s records {} as_of {} catching_up {}",
                    started.elapsed().as_secs_f64(),
                    status.records,
                    status.as_of,
                    status.catching_up
                );
            }
            let max_ts = status.partitions.iter().filter_map(|p| p.max_ts).max();
            if status.records >= records
                && !status.catching_up
                && max_ts.is_some_and(|m| status.as_of > m)
            {
                return Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let (_broker, brokers) = match &args.brokers {
        Some(b) => (None, b.clone()),
        None => {
            let (broker, brokers) = start_tansu();
            (Some(broker), brokers)
        }
    };
    let kafka = KafkaOptions::new(&brokers)
        .with_extra(args.kafka_options.iter().map(String::as_str))
        .unwrap_or_else(|e| exit_usage::<Args>(e));
    let stop = AtomicBool::new(false);

    // 1. Throughput.
    let topic = format!("bench-{}", now_ms());
    ensure_topic(&kafka, &topic, args.partitions, Duration::from_secs(10)).expect("topic");
    let producer = EventProducer::new(&kafka, &topic).expect("producer");
    let generator = GeneratorConfig {
        partitions: args.partitions,
        ..generator(args.records, 2_000, 100_000)
    };
    let started = Instant::now();
    let sent = produce(&producer, &generator, &stop);
    producer
        .flush(Duration::from_secs(120))
        .expect("all records acknowledged");
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "produce: {sent} records in {produce_secs:.2}s = {:.0} records/s",
        sent as f64 / produce_secs
    );
    let config = kafka_engine_config(&args, &kafka, &topic, tempdir(), 1_000, 5_000);
    // The producer's buffers are gone; measure the engine's memory on its own.
    drop(producer);
    let reset = reset_peak_rss();
    let (engine, secs) = start_until_complete(config.clone(), sent);
    println!(
        "consume ({} workers): {sent} records in {secs:.2}s = {:.0} records/s end-to-end, peak RSS {} MiB{}",
        args.workers,
        sent as f64 / secs,
        peak_rss_bytes().unwrap_or(0) >> 20,
        if reset { " (while consuming)" } else { " (whole run)" }
    );
    engine.shutdown().expect("clean shutdown");

    // 2. Recovery: every record is still in the 24 h window, so all are replayed.
    let (engine, secs) = start_until_complete(config, sent);
    println!(
        "recovery: {sent} records replayed in {secs:.2}s = {:.2}s per million",
        secs / (sent as f64 / 1e6)
    );
    engine.shutdown().expect("clean shutdown");

    // 3. Freshness at a fixed rate, event time = wall clock; lateness 0 and a 100 ms tick
    //    so that the watermark follows the data as closely as the time model allows.
    let topic = format!("fresh-{}", now_ms());
    ensure_topic(&kafka, &topic, args.partitions, Duration::from_secs(10)).expect("topic");
    let config = kafka_engine_config(&args, &kafka, &topic, tempdir(), 100, 0);
    let engine = Engine::start(config).expect("engine");
    let client = engine.client();
    let running = Arc::new(AtomicBool::new(true));
    let producing = {
        let brokers = brokers.clone();
        let topic = topic.clone();
        let rate = args.freshness_rate;
        let seconds = args.freshness_seconds;
        let partitions = args.partitions;
        std::thread::spawn(move || {
            let producer =
                EventProducer::new(&KafkaOptions::new(&brokers), &topic).expect("producer");
            let generator = GeneratorConfig {
                seed: 7,
                partitions,
                rate,
                pace: Pace::Realtime,
                start_ms: now_ms(),
                count: Some(rate * seconds),
                hosts: 2_000,
                ..GeneratorConfig::default()
            };
            let sent = produce(&producer, &generator, &AtomicBool::new(false));
            producer
                .flush(Duration::from_secs(60))
                .expect("acknowledged");
            sent
        })
    };
    // Skip the first seconds (connections, first fetches), then sample.
    std::thread::sleep(Duration::from_secs(3));
    let mut staleness = Vec::new();
    while !producing.is_finished() {
        if let Some(as_of) = client.latest_complete() {
            staleness.push(now_ms().saturating_sub(as_of));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    running.store(false, Ordering::Relaxed);
    let sent = producing.join().expect("producer thread");
    staleness.sort_unstable();
    println!(
        "freshness at {} records/s ({} sent, tick 100ms, lateness 0): now - as_of p50 {} ms, p99 {} ms, max {} ms ({} samples)",
        args.freshness_rate,
        sent,
        percentile(&staleness, 0.5),
        percentile(&staleness, 0.99),
        staleness.last().copied().unwrap_or(0),
        staleness.len()
    );
    engine.shutdown().expect("clean shutdown");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flowsight-bench-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

#[cfg(test)]
#[test]
fn the_documented_command_line_parses() {
    use flowsight_benches::parse_line;
    let args: Args = parse_line("kafka --records 2000000 --workers 2");
    assert_eq!(
        (args.records, args.workers, args.partitions),
        (2_000_000, 2, 4)
    );
    assert_eq!(args.windows, "30m:1m,2h:5m,24h:1h");
    assert_eq!((args.freshness_rate, args.freshness_seconds), (100_000, 20));
    assert_eq!(args.brokers, None);
    let args: Args =
        parse_line("kafka --brokers 127.0.0.1:9092 --kafka-option a=1 --kafka-option b=2");
    assert_eq!(args.brokers.as_deref(), Some("127.0.0.1:9092"));
    assert_eq!(args.kafka_options, ["a=1", "b=2"]);
}
