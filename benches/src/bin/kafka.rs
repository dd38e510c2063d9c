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
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowsight_benches::{peak_rss_bytes, reset_peak_rss};
use flowsight_connectors::kafka::{ensure_topic, topic_partitions, EventProducer, KafkaOptions};
use flowsight_connectors::{encode, Format, GeneratorConfig, GeneratorPartition, Pace};
use flowsight_engine::views::counters::Status;
use flowsight_engine::{ClusterConfig, Engine, EngineConfig, KafkaSourceConfig, SourceConfig};
use flowsight_operators::TimeModel;
use flowsight_queries::Windows;

struct Options {
    brokers: Option<String>,
    /// Extra librdkafka options for the engine's clients.
    kafka_options: Vec<String>,
    records: u64,
    partitions: u32,
    workers: usize,
    freshness_rate: u64,
    freshness_seconds: u64,
    windows: String,
}

fn usage(message: &str) -> ! {
    eprintln!("{message}\nusage: kafka [--brokers H:P] [--kafka-option K=V]... [--windows LIST] [--records N] [--partitions P] [--workers W] [--freshness-rate R] [--freshness-seconds S]");
    std::process::exit(2)
}

fn parse() -> Options {
    let mut options = Options {
        brokers: None,
        kafka_options: Vec::new(),
        records: 2_000_000,
        partitions: 4,
        workers: 2,
        freshness_rate: 100_000,
        freshness_seconds: 20,
        windows: "30m,2h,24h".to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--brokers" => options.brokers = Some(value()),
            "--kafka-option" => options.kafka_options.push(value()),
            "--windows" => options.windows = value(),
            "--records" => {
                options.records = value().parse().unwrap_or_else(|_| usage("bad --records"))
            }
            "--partitions" => {
                options.partitions = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --partitions"))
            }
            "--workers" => {
                options.workers = value().parse().unwrap_or_else(|_| usage("bad --workers"))
            }
            "--freshness-rate" => {
                options.freshness_rate = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --freshness-rate"))
            }
            "--freshness-seconds" => {
                options.freshness_seconds = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --freshness-seconds"))
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    options
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
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
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
            usage(&format!(
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

fn engine_config(
    windows: &str,
    kafka: &KafkaOptions,
    topic: &str,
    workers: usize,
    state_dir: PathBuf,
    tick: u64,
    lateness: u64,
) -> EngineConfig {
    let time = TimeModel::new(tick).expect("a valid tick");
    EngineConfig {
        time,
        lateness,
        idle_timeout: Duration::from_millis(200),
        windows: Windows::parse(windows, &time)
            .unwrap_or_else(|e| usage(&format!("--windows: {e}"))),
        source: SourceConfig::Kafka(KafkaSourceConfig {
            options: kafka.clone(),
            topic: topic.to_string(),
            format: Format::Native,
            dead_letter_topic: format!("{topic}.dead-letters"),
        }),
        cluster: ClusterConfig::Single { workers },
        state_dir: Some(state_dir),
        risk_views: true,
        analysis: Default::default(),
        alerts: None,
        segment_views: true,
        segments: Default::default(),
        queries: Default::default(),
    }
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
    let options = parse();
    let (_broker, brokers) = match &options.brokers {
        Some(b) => (None, b.clone()),
        None => {
            let (broker, brokers) = start_tansu();
            (Some(broker), brokers)
        }
    };
    let kafka = KafkaOptions::new(&brokers)
        .with_extra(options.kafka_options.iter().map(String::as_str))
        .unwrap_or_else(|e| usage(&e.to_string()));
    let stop = AtomicBool::new(false);

    // 1. Throughput.
    let topic = format!("bench-{}", now_ms());
    ensure_topic(&kafka, &topic, options.partitions, Duration::from_secs(10)).expect("topic");
    let producer = EventProducer::new(&kafka, &topic).expect("producer");
    let generator = GeneratorConfig {
        seed: 42,
        partitions: options.partitions,
        rate: 100_000,
        pace: Pace::Fast,
        start_ms: 1_750_000_000_000,
        count: Some(options.records),
        hosts: 2_000,
        ..GeneratorConfig::default()
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
    let state = tempdir();
    let config = engine_config(
        &options.windows,
        &kafka,
        &topic,
        options.workers,
        state.clone(),
        1_000,
        5_000,
    );
    // The producer's buffers are gone; measure the engine's memory on its own.
    drop(producer);
    let reset = reset_peak_rss();
    let started = Instant::now();
    let engine = Engine::start(config.clone()).expect("engine");
    let done = wait_complete(&engine, sent);
    let secs = done.duration_since(started).as_secs_f64();
    println!(
        "consume ({} workers): {sent} records in {secs:.2}s = {:.0} records/s end-to-end, peak RSS {} MiB{}",
        options.workers,
        sent as f64 / secs,
        peak_rss_bytes().unwrap_or(0) >> 20,
        if reset { " (while consuming)" } else { " (whole run)" }
    );
    engine.shutdown().expect("clean shutdown");

    // 2. Recovery: every record is still in the 24 h window, so all are replayed.
    let started = Instant::now();
    let engine = Engine::start(config).expect("engine");
    let done = wait_complete(&engine, sent);
    let secs = done.duration_since(started).as_secs_f64();
    println!(
        "recovery: {sent} records replayed in {secs:.2}s = {:.2}s per million",
        secs / (sent as f64 / 1e6)
    );
    engine.shutdown().expect("clean shutdown");

    // 3. Freshness at a fixed rate, event time = wall clock; lateness 0 and a 100 ms tick
    //    so that the watermark follows the data as closely as the time model allows.
    let topic = format!("fresh-{}", now_ms());
    ensure_topic(&kafka, &topic, options.partitions, Duration::from_secs(10)).expect("topic");
    let config = engine_config(
        &options.windows,
        &kafka,
        &topic,
        options.workers,
        tempdir(),
        100,
        0,
    );
    let engine = Engine::start(config).expect("engine");
    let client = engine.client();
    let running = Arc::new(AtomicBool::new(true));
    let producing = {
        let brokers = brokers.clone();
        let topic = topic.clone();
        let rate = options.freshness_rate;
        let seconds = options.freshness_seconds;
        let partitions = options.partitions;
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
        options.freshness_rate,
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
