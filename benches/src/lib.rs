//! The end-to-end load harness: runs the engine on the embedded generator with simulated
//! time and measures how fast records become visible in the graph view.
//!
//! Used by the criterion benchmark `pipeline` and by the `pipeline` binary, which also
//! reports peak memory; the other harness binaries (`benches/src/bin`) share its engine
//! configuration and the helpers below.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flowsight_connectors::{GeneratorConfig, Pace};
use flowsight_engine::views::counters::Status;
use flowsight_engine::{ClusterConfig, Engine, EngineConfig, SourceConfig};
use flowsight_operators::{Millis, TimeModel};
use flowsight_queries::{Windows, WindowsError};

/// One run of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct PipelineRun {
    /// How many records the generator produced (its `count`).
    pub records: u64,
    /// From starting the engine until every record is visible in the views.
    pub elapsed: Duration,
}

impl PipelineRun {
    /// Throughput of the run: records over the elapsed wall-clock time.
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
    /// Graph, risk, anomalies and segmentation, without the query plane that runs
    /// registered queries (`flowsight run --no-queries`).
    NoQueries,
    /// Every built-in view and the query plane (the default of `flowsight run`).
    All,
}

/// Runs the engine with `workers` threads until every generated record is visible in
/// every view it maintains.
pub fn run_pipeline(workers: usize, generator: GeneratorConfig, views: Views) -> PipelineRun {
    let records = generator.count.expect("benchmarks need a record count");
    let source = SourceConfig::Generator(generator);
    let config = engine_config(workers, source, views, Timing::default(), None);
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

/// How the engine of a benchmark keeps time: its tick, allowed lateness, idle timeout and
/// windows.
#[derive(Clone, Debug)]
pub struct Timing {
    time: TimeModel,
    lateness: Millis,
    idle_timeout: Duration,
    windows: Windows,
}

impl Timing {
    /// A tick of `tick` ms (a valid tick: the harness's own choice), `lateness` ms of
    /// allowed lateness, the wall-clock `idle_timeout` after which a quiet partition stops
    /// holding the watermark, and the `windows` list (such as `30m:1m,2h:5m,24h:1h`), which is the
    /// error if it does not fit the tick.
    pub fn new(
        tick: Millis,
        lateness: Millis,
        idle_timeout: Duration,
        windows: &str,
    ) -> Result<Self, WindowsError> {
        let time = TimeModel::new(tick).expect("a valid tick");
        Ok(Timing {
            time,
            lateness,
            idle_timeout,
            windows: Windows::parse(windows, &time)?,
        })
    }
}

impl Default for Timing {
    /// The generator runs': 1 s ticks, 5 s lateness, a 5 ms idle timeout, and the windows
    /// 30m, 2h and 24h.
    fn default() -> Self {
        Timing::new(
            1000,
            5_000,
            Duration::from_millis(5),
            flowsight_queries::windows::DEFAULT_WINDOWS,
        )
        .expect("valid windows")
    }
}

/// The engine configuration of the benchmarks: `workers` threads in one process reading
/// `source` with `timing`, maintaining `views` (with the default analysis, segmentation
/// thresholds and query limits, and no alerts), and checkpointing into `state_dir` if
/// given.
pub fn engine_config(
    workers: usize,
    source: SourceConfig,
    views: Views,
    timing: Timing,
    state_dir: Option<PathBuf>,
) -> EngineConfig {
    EngineConfig {
        time: timing.time,
        lateness: timing.lateness,
        idle_timeout: timing.idle_timeout,
        max_ahead: flowsight_engine::config::DEFAULT_MAX_AHEAD,
        status_patience: flowsight_engine::config::DEFAULT_STATUS_PATIENCE,
        windows: timing.windows,
        source,
        cluster: ClusterConfig::Single { workers },
        state_dir,
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

/// Ends a harness over a problem with its command line or its surroundings, as clap ends
/// it over a bad option: the problem and the usage of the harness's parser `P` on stderr,
/// exit code 2.
pub fn exit_usage<P: clap::CommandFactory>(problem: impl Display) -> ! {
    P::command()
        .error(clap::error::ErrorKind::ValueValidation, problem)
        .exit()
}

/// The `flowsight` binary built beside the running harness (same profile), which the
/// harnesses that go through the binary start; `FLOWSIGHT_BINARY` names another one (to
/// compare two builds with the same harness).
pub fn flowsight_binary() -> Result<std::path::PathBuf, String> {
    if let Some(path) = std::env::var_os("FLOWSIGHT_BINARY") {
        let path = std::path::PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!("FLOWSIGHT_BINARY={}: no such file", path.display()))
        };
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("flowsight")))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            "build the flowsight binary first: cargo build --release -p flowsight".into()
        })
}

/// A free TCP port on loopback (free when asked: the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The first of `count` consecutive free TCP ports on loopback (for a cluster's host file
/// or its processes' HTTP ports).
pub fn free_ports(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base.checked_add(count).is_some()
            && (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

/// The pid of the process with `--process index` among the children of `supervisor` (a
/// `flowsight cluster start`).
pub fn supervised_pid(supervisor: u32, index: usize) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|child| {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"--process" && w[1] == index.to_string().as_bytes())
        })
}

/// GETs `url` within `timeout`: the HTTP status and the JSON body (`Null` if the body is
/// not JSON), or `None` if there was no answer.
pub fn get_json(url: &str, timeout: Duration) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .ok()?
        .get(url)
        .send()
        .ok()?;
    let code = response.status().as_u16();
    Some((code, response.json().unwrap_or(serde_json::Value::Null)))
}

/// Parses `line` — a harness's name and options, split at whitespace — with its parser
/// `P`, after clap's own checks of `P`; panics if either fails. For the harnesses' tests
/// that their documented command lines still parse.
pub fn parse_line<P: clap::Parser>(line: &str) -> P {
    P::command().debug_assert();
    P::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_runs_with_the_engines_default_limits() {
        let source = SourceConfig::Generator(generator(10, 10, 10));
        let config = engine_config(2, source, Views::All, Timing::default(), None);
        assert!(config.risk_views && config.segment_views);
        assert_eq!(config.queries, flowsight_engine::QueryLimits::default());
        assert_eq!(config.time, TimeModel::new(1000).unwrap());
        assert_eq!(
            (config.lateness, config.idle_timeout),
            (5_000, Duration::from_millis(5))
        );
        assert_eq!(config.cluster, ClusterConfig::Single { workers: 2 });
        assert_eq!(config.state_dir, None);
    }

    #[test]
    fn the_views_leave_out_what_they_say() {
        let config = |views| {
            let source = SourceConfig::Generator(generator(10, 10, 10));
            engine_config(1, source, views, Timing::default(), None)
        };
        let on = |c: EngineConfig| (c.risk_views, c.segment_views, c.queries.enabled);
        assert_eq!(on(config(Views::Graph)), (false, false, false));
        assert_eq!(on(config(Views::GraphAndRisk)), (true, false, false));
        assert_eq!(on(config(Views::NoQueries)), (true, true, false));
        assert_eq!(on(config(Views::All)), (true, true, true));
    }

    #[test]
    fn a_bad_windows_list_is_an_error() {
        assert!(Timing::new(1000, 0, Duration::ZERO, "30m,nonsense").is_err());
        assert!(Timing::new(100, 0, Duration::ZERO, "30m,2h,24h").is_ok());
    }
}
