//! The `flowscope` binary: parses the command line, starts the engine, serves HTTP, and
//! stops cleanly on Ctrl-C / SIGTERM or when the cluster shuts down.

mod cli;
mod config_file;
mod hostfile;
mod http;
mod produce;
mod query_client;
mod supervisor;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use flowscope_engine::{ClusterConfig, Engine, EngineError, Hub};

use cli::{Cli, Command, RunConfig};

// Differential's batchers and spines allocate and free large buffers at a high rate;
// jemalloc keeps freed pages for reuse instead of returning them to the kernel and
// faulting them in again (with the system allocator, clearing fresh pages took a sixth
// of the pipeline's time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
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
                    // A configuration the engine refuses (say, a file that cannot be opened)
                    // is a usage error, like a bad flag.
                    let usage = matches!(
                        e.downcast_ref::<EngineError>(),
                        Some(EngineError::Config(_) | EngineError::Source(_))
                    );
                    ExitCode::from(if usage { 2 } else { 1 })
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

fn run(config: RunConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flowscope-http")
        .enable_all()
        .build()?;
    // Check the port before starting the workers, so that a busy port fails fast.
    drop(
        std::net::TcpListener::bind(config.http)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http))?,
    );
    // And this process's own address in the host file, which timely would only report as
    // "address already in use" without saying which.
    if let ClusterConfig::Cluster {
        process, addresses, ..
    } = &config.engine.cluster
    {
        let own = &addresses[*process];
        drop(std::net::TcpListener::bind(own.as_str()).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {own}, the address of process {process} in the host file: {e}"
            )
        })?);
    }
    let engine = Engine::start(config.engine)?;
    let client = engine.client();
    tracing::info!(address = %config.http, "serving the HTTP API and dashboard");

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
        let (_, server) = warp::serve(http::routes(client, hub))
            .try_bind_with_graceful_shutdown(address, stopped)
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        server.await;
        anyhow::Ok(())
    });
    tracing::info!("stopping");
    let stopped = engine.shutdown();
    served?;
    stopped.map_err(|failure| anyhow::anyhow!("the engine failed: {failure}"))
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
