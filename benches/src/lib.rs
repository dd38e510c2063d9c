//! The end-to-end load harness: runs the engine on the embedded generator with simulated
//! time and measures how fast records become visible in the graph view.
//!
//! Used by the criterion benchmark `pipeline` and by the `pipeline` binary, which also
//! reports peak memory.

use std::time::{Duration, Instant};

use flowsight_connectors::{GeneratorConfig, Pace};
use flowsight_engine::views::counters::Status;
use flowsight_engine::{ClusterConfig, Engine, EngineConfig, SourceConfig};
use flowsight_operators::TimeModel;
use flowsight_queries::Windows;

/// One run of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct PipelineRun {
    pub records: u64,
    /// From starting the engine until every record is visible in the views.
    pub elapsed: Duration,
}

impl PipelineRun {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// The generator settings of the benchmarks: simulated time, `records` in all.
pub fn generator(records: u64, hosts: u32, rate: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: 42,
        partitions: 4,
        rate,
        pace: Pace::Fast,
        start_ms: 1_750_000_000_000,
        count: Some(records),
        hosts,
        ..GeneratorConfig::default()
    }
}

/// Which views a pipeline run maintains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Views {
    /// The connection graph only.
    Graph,
    /// The graph, risk scores and anomalies.
    GraphAndRisk,
    /// Graph, risk, anomalies and segmentation, without the records arrangement that
    /// registered queries read (`flowsight run --no-queries`).
    NoQueries,
    /// Every built-in view and the records arrangement for registered queries (the
    /// default of `flowsight run`).
    All,
}

/// Runs the engine with `workers` threads until every generated record is visible in
/// every view it maintains.
pub fn run_pipeline(workers: usize, generator: GeneratorConfig, views: Views) -> PipelineRun {
    let records = generator.count.expect("benchmarks need a record count");
    let config = engine_config(workers, generator, views);
    let started = Instant::now();
    let engine = Engine::start(config).expect("the engine starts");
    let client = engine.client();
    wait_until_visible(&client, records);
    let elapsed = started.elapsed();
    engine.shutdown().expect("the engine ran without failing");
    PipelineRun { records, elapsed }
}

/// Waits until all `records` are read, every partition has finished, and the views are
/// complete past the largest timestamp; returns that as_of.
pub fn wait_until_visible(client: &flowsight_engine::Client, records: u64) -> u64 {
    loop {
        let status = client
            .peek(Status, Duration::from_secs(60))
            .expect("the engine answers")
            .answer;
        let max_ts = status.partitions.iter().filter_map(|p| p.max_ts).max();
        let finished = status.partitions.iter().all(|p| p.finished);
        if status.records == records && finished && max_ts.is_some_and(|m| status.as_of > m) {
            return status.as_of;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The engine configuration of the benchmarks: the generator, 1 s ticks, 5 s lateness,
/// the windows 30m, 2h and 24h, and `views`.
pub fn engine_config(workers: usize, generator: GeneratorConfig, views: Views) -> EngineConfig {
    let time = TimeModel::new(1000).expect("a valid tick");
    EngineConfig {
        time,
        lateness: 5_000,
        idle_timeout: Duration::from_millis(5),
        windows: Windows::parse("30m,2h,24h", &time).expect("valid windows"),
        source: SourceConfig::Generator(generator),
        cluster: ClusterConfig::Single { workers },
        state_dir: None,
        risk_views: views != Views::Graph,
        analysis: Default::default(),
        alerts: None,
        segment_views: matches!(views, Views::All | Views::NoQueries),
        segments: Default::default(),
        queries: flowsight_engine::QueryLimits {
            enabled: views == Views::All,
            ..Default::default()
        },
    }
}

/// The process's peak resident memory in bytes (Linux), if it can be read.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident set size that [`peak_rss_bytes`] reports (Linux: writing 5
/// to `/proc/self/clear_refs`), so that a later phase is measured on its own. Returns
/// whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Reads `--name N` options of a harness binary into `options` (each name with its
/// default, updated in place); the error says which option is wrong.
pub fn numeric_options(options: &mut [(&str, u64)]) -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = options
            .iter_mut()
            .find(|(name, _)| flag.strip_prefix("--") == Some(*name))
            .ok_or_else(|| format!("unknown option {flag}"))?;
        slot.1 = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))?;
    }
    Ok(())
}

/// The `flowsight` binary built beside the running harness (same profile), which the
/// harnesses that go through the binary start.
pub fn flowsight_binary() -> Result<std::path::PathBuf, String> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("flowsight")))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            "build the flowsight binary first: cargo build --release -p flowsight".into()
        })
}
