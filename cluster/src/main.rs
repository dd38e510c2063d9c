//! The `flowsight` binary: parses the command line, starts the engine, serves HTTP, and
//! stops cleanly on Ctrl-C / SIGTERM or when the cluster shuts down.

mod cli;
mod config_file;
mod hostfile;
mod http;
mod produce;
mod query_client;
mod supervisor;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use flowsight_engine::{ClusterConfig, Engine, EngineError, Hub};

use cli::{Cli, Command, RunConfig};

/// The version and the commit this binary was built from (`0.1.0 (commit 1a2b3c4d5e6f)`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FLOWSIGHT_COMMIT"),
    ")"
);

// Differential's batchers and spines allocate and free large buffers at a high rate;
// jemalloc keeps freed pages for reuse instead of returning them to the kernel and
// faulting them in again (with the system allocator, clearing fresh pages took a sixth
// of the pipeline's time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        // Colours only for a person at a terminal, not in a log file or a journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => match args.into_config() {
            Ok(config) => match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    // A set-up refused before the engine ran (a file that cannot be opened,
                    // a port in use, a missing topic) is a usage error, like a bad flag:
                    // the cluster supervisor does not restart a process that exits so.
                    let refused = e.downcast_ref::<SetUpRefused>().is_some();
                    ExitCode::from(if refused { 2 } else { 1 })
                }
            },
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Query(command) => match query_client::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Cluster(command) => {
            let result = match command {
                cli::ClusterCommand::Start(args) => supervisor::start(args, signal_flag()),
                cli::ClusterCommand::Status(args) => supervisor::status(args),
                cli::ClusterCommand::Stop(args) => supervisor::stop(args),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Produce(args) => match args.into_config() {
            Ok(config) => match run_produce(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            },
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
    }
}

/// Produces until done or until Ctrl-C / SIGTERM, then waits for the acknowledgements.
fn run_produce(config: cli::ProduceConfig) -> anyhow::Result<()> {
    produce::produce(config, &signal_flag())
}

/// A flag set once Ctrl-C or SIGTERM arrives (watched by a thread of its own).
fn signal_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::clone(&stop);
    std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                runtime.block_on(shutdown_signal());
                signalled.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("cannot watch for signals: {e}"),
        }
    });
    stop
}

/// Why `run` did not start: a set-up that starting again would not mend.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct SetUpRefused(anyhow::Error);

fn run(config: RunConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flowsight-http")
        .enable_all()
        .build()?;
    let engine = start(config.engine, config.http).map_err(SetUpRefused)?;
    let client = engine.client();
    tracing::info!(address = %config.http, version = VERSION, "serving the HTTP API and dashboard");

    let stopping = client.clone();
    let address = config.http;
    let hub = Hub::new(client.clone(), config.subscriptions);
    let closing = Arc::clone(&hub);
    let served = runtime.block_on(async move {
        // Stop serving on Ctrl-C / SIGTERM, or when the workers stop (a shutdown sent by
        // another process of the cluster, or a failure). The signal future is created once,
        // so that a signal arriving between two polls is not lost.
        let stopped = async move {
            let signal = shutdown_signal();
            tokio::pin!(signal);
            let mut poll = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = &mut signal => break,
                    _ = poll.tick() => if stopping.is_shutting_down() { break },
                }
            }
            // Subscription streams never end by themselves: end them, so that the
            // server's graceful shutdown does not wait for their clients to leave.
            closing.close();
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        http::serve(listener, http::routes(client, hub), stopped).await;
        anyhow::Ok(())
    });
    tracing::info!("stopping");
    let stopped = engine.shutdown();
    served?;
    stopped.map_err(|failure| anyhow::anyhow!("the engine failed: {failure}"))
}

/// Checks that this process can listen where it must, then starts the engine.
fn start(config: flowsight_engine::EngineConfig, http: SocketAddr) -> anyhow::Result<Engine> {
    // Check the port before starting the workers, so that a busy port fails fast.
    drop(
        std::net::TcpListener::bind(http)
            .map_err(|e| anyhow::anyhow!("cannot listen on {http}: {e}"))?,
    );
    // And this process's own address in the host file, which timely would only report as
    // "address already in use" without saying which.
    if let ClusterConfig::Cluster {
        process, addresses, ..
    } = &config.cluster
    {
        let own = &addresses[*process];
        drop(std::net::TcpListener::bind(own.as_str()).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {own}, the address of process {process} in the host file: {e}"
            )
        })?);
    }
    Engine::start(config).map_err(|error| match hint(&error) {
        Some(hint) => anyhow::anyhow!("{error}: {hint}"),
        None => error.into(),
    })
}

/// What to do about an engine error, where the command line can say it (the engine's
/// errors name what is wrong, not the commands that mend it).
fn hint(error: &EngineError) -> Option<String> {
    match error {
        EngineError::TopicMissing { topic, brokers } => Some(format!(
            "create it, for example with `flowsight produce --brokers {brokers} --topic {topic} \
             --partitions N`, or with your Kafka tools"
        )),
        EngineError::AlertsTopicMissing { .. } => Some("create it with your Kafka tools".into()),
        _ => None,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[path = "../tests/common/doc_commands.rs"]
mod doc_commands;

/// Every `flowsight` command in the README and docs/ is one the CLI takes.
#[cfg(test)]
mod documented_commands {
    use clap::Parser;

    use super::cli::{Cli, Command};
    use super::doc_commands::{commands, documents};

    #[test]
    fn every_documented_flowsight_command_parses() {
        let mut checked = 0;
        for file in documents() {
            for command in commands(&file) {
                let words = command.program_and_args();
                let args: Vec<String> = match words.first().map(String::as_str) {
                    Some(program) if program.ends_with("flowsight") => words.to_vec(),
                    // `cargo run --release -- run …` (not `cargo run -p <a bench> …`)
                    Some("cargo")
                        if words.get(1).map(String::as_str) == Some("run")
                            && !words.iter().any(|w| w == "-p" || w == "--bin") =>
                    {
                        match words.iter().position(|w| w == "--") {
                            Some(at) => std::iter::once("flowsight".to_string())
                                .chain(words[at + 1..].iter().cloned())
                                .collect(),
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| {
                    panic!("{}: `{}` is refused: {e}", command.place(), args.join(" "))
                });
                // A run's options are checked whole, except those naming files the docs'
                // reader writes first (a host file).
                match cli.command {
                    Command::Run(run) if run.hostfile.is_none() => {
                        if let Err(e) = run.into_config() {
                            panic!("{}: `{}` is refused: {e}", command.place(), args.join(" "));
                        }
                    }
                    _ => {}
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} documented commands found");
    }
}
