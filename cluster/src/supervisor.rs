//! `flowsight cluster start|status|stop`: running the processes of a host file as one
//! cluster and keeping it up.
//!
//! Timely has no recovery of its own: when one process of a cluster dies, the others
//! cannot go on. The supervisor started by `cluster start` runs every process of the host
//! file whose host is this machine (and, with `--ssh`, the others over ssh), notices when
//! one exits, stops the survivors and starts the whole cluster again; each process resumes
//! from its checkpoint, so the views come back equal to an uninterrupted run. It writes
//! its process id to `<state-dir>/cluster.pid`, which `cluster stop` signals: the
//! supervisor then asks every process to stop (each takes its final checkpoint) and exits
//! 0 once they have. Beside it, `<state-dir>/cluster.json` lists every process with its
//! host-file address and HTTP address, which `cluster status --state-dir` reads.
//!
//! A wrong set-up is refused once, not restarted: the supervisor checks that this
//! machine's host-file addresses and HTTP ports are free before it starts anything, and a
//! process that refuses its set-up at the first start (exit code 2, as for a bad flag)
//! stops the cluster with that reason.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::cli::{Cli, ClusterStartArgs, ClusterStatusArgs, ClusterStopArgs};
use crate::hostfile;

/// How long the survivors of a failed process get to stop before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the supervisor looks at its processes.
const POLL: Duration = Duration::from_millis(100);
/// The file under the state directory that holds the supervisor's process id.
const PID_FILE: &str = "cluster.pid";
/// The file under the state directory that lists the processes of a running cluster.
const MEMBERS_FILE: &str = "cluster.json";
/// The exit code of a process that refused its set-up (a bad option, a port in use):
/// starting it again would not help.
const REFUSED: i32 = 2;

/// One process of the host file, as the supervisor sees it.
struct Member {
    index: usize,
    address: String,
    http: SocketAddr,
    /// Whether it runs on this machine (else on its host, over ssh or by hand).
    local: bool,
}

/// The run options every process gets, without those the supervisor sets per process.
struct Launch {
    run_args: Vec<OsString>,
    state_dir: PathBuf,
    members: Vec<Member>,
    ssh: bool,
}

/// The options of `flowsight run` that the supervisor decides for each process.
const PER_PROCESS: [&str; 3] = ["--process", "--http", "--state-dir"];

/// `cluster start`: starts and supervises the cluster until it is stopped.
/// `stop` is set on SIGTERM or Ctrl-C.
pub fn start(args: ClusterStartArgs, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let launch = plan(&args)?;
    std::fs::create_dir_all(&launch.state_dir)
        .with_context(|| format!("cannot create {}", launch.state_dir.display()))?;
    check_local_addresses(&launch)?;
    let pid_file = launch.state_dir.join(PID_FILE);
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    let members_file = launch.state_dir.join(MEMBERS_FILE);
    let members: Vec<Value> = launch
        .members
        .iter()
        .map(|m| serde_json::json!({"process": m.index, "address": m.address, "http": m.http}))
        .collect();
    std::fs::write(&members_file, serde_json::to_vec_pretty(&members)?)
        .with_context(|| format!("cannot write {}", members_file.display()))?;
    let result = supervise(&launch, &args, &stop);
    let _ = std::fs::remove_file(&members_file);
    let _ = std::fs::remove_file(&pid_file);
    result
}

/// Refuses, before anything starts, a set-up whose local processes could not listen: a
/// host-file address or an HTTP port of this machine already in use.
fn check_local_addresses(launch: &Launch) -> anyhow::Result<()> {
    for member in launch.members.iter().filter(|m| m.local) {
        if let Err(e) = TcpListener::bind(member.address.as_str()) {
            bail!(
                "cannot listen on {}, the address of process {} in the host file: {e}",
                member.address,
                member.index
            );
        }
        if let Err(e) = TcpListener::bind(member.http) {
            bail!(
                "cannot listen on {}, the HTTP address of process {} (--http plus {}): {e}",
                member.http,
                member.index,
                member.index
            );
        }
    }
    Ok(())
}

/// Checks the host file and the run options, and works out each process's settings.
fn plan(args: &ClusterStartArgs) -> anyhow::Result<Launch> {
    let run_args = args.run_options.clone();
    if run_args
        .iter()
        .any(|a| a.to_string_lossy().split('=').next() == Some("--process"))
    {
        bail!("cluster start gives each process its index: leave --process out");
    }
    // Let `run` judge the options now, as process 0 would, rather than fail in every
    // child.
    let mut probe: Vec<OsString> = vec!["flowsight".into(), "run".into()];
    probe.extend(run_args.iter().cloned());
    probe.extend(["--process".into(), "0".into()]);
    let parsed = <Cli as clap::Parser>::try_parse_from(&probe).map_err(|e| anyhow!("{e}"))?;
    let crate::cli::Command::Run(run) = parsed.command else {
        unreachable!("the probe is a run command");
    };
    let Some(hostfile) = run.hostfile.clone() else {
        bail!("cluster start needs --hostfile FILE: one host:port per line, in process order");
    };
    let addresses = hostfile::read(&hostfile)?;
    let base = run.http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let state_dir = run.state_dir.clone();
    run.into_config().map_err(|e| anyhow!(e))?;

    let members = addresses
        .iter()
        .enumerate()
        .map(|(index, address)| {
            let port = base
                .port()
                .checked_add(u16::try_from(index).unwrap_or(u16::MAX))
                .ok_or_else(|| anyhow!("--http {base}: no port left for process {index}"))?;
            Ok(Member {
                index,
                address: address.clone(),
                http: SocketAddr::new(base.ip(), port),
                local: is_this_machine(address),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Launch {
        run_args,
        state_dir,
        members,
        ssh: args.ssh,
    })
}

/// Whether an address of the host file is one of this machine's: its host resolves to an
/// address this machine can listen on.
fn is_this_machine(address: &str) -> bool {
    let Some((host, _)) = address.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, 0)
        .to_socket_addrs()
        .map(|mut resolved| resolved.any(|a| TcpListener::bind((a.ip(), 0)).is_ok()))
        .unwrap_or(false)
}

/// The arguments of `flowsight run` for one process.
fn process_args(launch: &Launch, member: &Member) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["run".into()];
    let mut given = launch.run_args.iter();
    while let Some(arg) = given.next() {
        let text = arg.to_string_lossy();
        let name = text.split('=').next().unwrap_or("");
        if PER_PROCESS.contains(&name) {
            if !text.contains('=') {
                given.next();
            }
            continue;
        }
        args.push(arg.clone());
    }
    args.extend([
        "--process".into(),
        member.index.to_string().into(),
        "--http".into(),
        member.http.to_string().into(),
        "--state-dir".into(),
        process_state_dir(&launch.state_dir, member.index).into(),
    ]);
    args
}

/// Each process keeps its checkpoints and queries in a directory of its own.
fn process_state_dir(state_dir: &Path, index: usize) -> PathBuf {
    state_dir.join(format!("process-{index}"))
}

fn shell_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| {
            let text = a.to_string_lossy();
            if text.is_empty() || text.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c))
            {
                format!("'{}'", text.replace('\'', r"'\''"))
            } else {
                text.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running cluster: one child per process this supervisor starts.
struct Running {
    children: Vec<(usize, Child)>,
}

fn launch_all(launch: &Launch) -> anyhow::Result<Running> {
    let program = std::env::current_exe().context("cannot find the flowsight binary")?;
    let mut children = Vec::new();
    for member in &launch.members {
        let args = process_args(launch, member);
        let child = if member.local {
            Command::new(&program).args(&args).spawn()
        } else if launch.ssh {
            let host = member.address.rsplit_once(':').map_or("", |(h, _)| h);
            Command::new("ssh")
                .arg(host)
                .arg(shell_line(Path::new("flowsight"), &args))
                .spawn()
        } else {
            continue;
        };
        let child = child.with_context(|| format!("cannot start process {}", member.index))?;
        tracing::info!(
            process = member.index,
            address = %member.address,
            http = %member.http,
            pid = child.id(),
            "started"
        );
        children.push((member.index, child));
    }
    Ok(Running { children })
}

fn supervise(launch: &Launch, args: &ClusterStartArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    for member in launch.members.iter().filter(|m| !m.local && !launch.ssh) {
        println!(
            "process {} runs on {}: start it there with\n  {}",
            member.index,
            member.address,
            shell_line(Path::new("flowsight"), &process_args(launch, member))
        );
    }
    let mut restarts = 0u32;
    let mut first_start = true;
    loop {
        let mut running = launch_all(launch)?;
        let started = Instant::now();
        let ended = watch(&mut running, stop);
        let first = std::mem::replace(&mut first_start, false);
        match ended {
            Ended::Stopped => {
                tracing::info!("stopping the cluster");
                let statuses = stop_all(&mut running);
                let failed: Vec<String> = statuses
                    .iter()
                    .filter(|(_, s)| !s.success())
                    .map(|(i, s)| format!("process {i}: {s}"))
                    .collect();
                if failed.is_empty() {
                    return Ok(());
                }
                bail!("the cluster stopped, not cleanly: {}", failed.join(", "));
            }
            Ended::AllExited(statuses) if statuses.iter().all(|(_, s)| s.success()) => {
                tracing::info!("every process has stopped");
                return Ok(());
            }
            Ended::AllExited(statuses) | Ended::Died(statuses) => {
                let why: Vec<String> = statuses
                    .iter()
                    .filter(|(_, s)| !s.success())
                    .map(|(i, s)| format!("process {i} {}", describe(s)))
                    .collect();
                stop_all(&mut running);
                // A set-up refused at the first start is wrong, not unlucky: say so once.
                // (At a restart the same refusal may be passing, a broker still down, and
                // counts against --max-restarts like any failure.)
                let refused = statuses.iter().any(|(_, s)| s.code() == Some(REFUSED));
                if first && refused {
                    bail!(
                        "{}: the set-up was refused (see the process's error above); not restarting",
                        why.join(", ")
                    );
                }
                // A cluster that ran a while before failing has recovered from earlier
                // failures: the budget is for failures in a row.
                if started.elapsed() > Duration::from_secs(60) {
                    restarts = 0;
                }
                restarts += 1;
                if restarts > args.max_restarts {
                    bail!(
                        "{}; the cluster failed {restarts} times in a row, more than --max-restarts {}: giving up",
                        why.join(", "),
                        args.max_restarts
                    );
                }
                tracing::warn!(
                    "{}: restarting the whole cluster from its checkpoints (restart {restarts} of at most {})",
                    why.join(", "),
                    args.max_restarts
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

enum Ended {
    /// `cluster stop`, SIGTERM or Ctrl-C.
    Stopped,
    /// Every process exited by itself (a clean shutdown of the cluster, or not).
    AllExited(Vec<(usize, ExitStatus)>),
    /// A process died while others ran.
    Died(Vec<(usize, ExitStatus)>),
}

fn watch(running: &mut Running, stop: &AtomicBool) -> Ended {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        let mut exited = Vec::new();
        for (index, child) in &mut running.children {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((*index, status));
            }
        }
        if exited.len() == running.children.len() && !exited.is_empty() {
            return Ended::AllExited(exited);
        }
        if exited.iter().any(|(_, s)| !s.success()) {
            return Ended::Died(exited);
        }
        if !exited.is_empty() {
            // A clean exit of one process is the start of a cluster-wide shutdown: give
            // the others the time to follow before calling it a failure.
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if running
                    .children
                    .iter_mut()
                    .all(|(_, c)| matches!(c.try_wait(), Ok(Some(_))))
                {
                    break;
                }
                std::thread::sleep(POLL);
            }
            let statuses: Vec<_> = running
                .children
                .iter_mut()
                .map(|(i, c)| (*i, c.try_wait().ok().flatten()))
                .collect();
            if statuses.iter().all(|(_, s)| s.is_some()) {
                return Ended::AllExited(
                    statuses
                        .into_iter()
                        .map(|(i, s)| (i, s.expect("checked")))
                        .collect(),
                );
            }
            return Ended::Died(exited);
        }
        std::thread::sleep(POLL);
    }
}

/// Asks every process still running to stop (SIGTERM: a final checkpoint, then exit),
/// kills those that have not within the grace period, and returns every exit status.
fn stop_all(running: &mut Running) -> Vec<(usize, ExitStatus)> {
    for (_, child) in &mut running.children {
        if let Ok(None) = child.try_wait() {
            signal(child.id(), rustix::process::Signal::TERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    let mut statuses = Vec::new();
    for (index, child) in &mut running.children {
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    tracing::warn!(process = *index, "did not stop in time: killing it");
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        if let Some(status) = status {
            statuses.push((*index, status));
        }
    }
    statuses
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // A process that has exited meanwhile only makes this fail.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// `cluster stop`: signals the supervisor and waits until it has stopped the cluster.
pub fn stop(args: ClusterStopArgs) -> anyhow::Result<()> {
    let pid_file = args.state_dir.join(PID_FILE);
    let text = std::fs::read_to_string(&pid_file).with_context(|| {
        format!(
            "no cluster started by `flowsight cluster start` with --state-dir {} is running ({} cannot be read)",
            args.state_dir.display(),
            pid_file.display()
        )
    })?;
    let pid: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    signal(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while pid_file.exists() {
        if Instant::now() > deadline {
            bail!(
                "the supervisor (pid {pid}) has not stopped the cluster within {} s",
                args.timeout
            );
        }
        std::thread::sleep(POLL);
    }
    println!("the cluster has stopped");
    Ok(())
}

/// `cluster status`: every process of the cluster, up or down, from its HTTP API. The
/// processes come from the host file when one is given, else from the state directory of
/// a cluster started by `cluster start`.
pub fn status(args: ClusterStatusArgs) -> anyhow::Result<()> {
    let members = match &args.hostfile {
        Some(hostfile) => {
            let base = args
                .http
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
            hostfile::read(hostfile)?
                .into_iter()
                .enumerate()
                .map(|(index, address)| {
                    let port = base.port().saturating_add(index as u16);
                    let host = if is_this_machine(&address) {
                        base.ip().to_string()
                    } else {
                        address.rsplit_once(':').map_or("", |(h, _)| h).to_string()
                    };
                    (index, address, format!("{host}:{port}"))
                })
                .collect::<Vec<_>>()
        }
        None => started_members(&args.state_dir)?,
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut rows = Vec::new();
    for (index, address, http_address) in members {
        let url = format!("http://{http_address}/v1/status");
        let answer = http
            .get(&url)
            .send()
            .and_then(|r| r.json::<Value>())
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
        rows.push(serde_json::json!({
            "process": index,
            "address": address,
            "http": http_address,
            "up": answer.is_ok(),
            "status": answer.as_ref().ok(),
            "error": answer.as_ref().err(),
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", status_table(&rows));
    }
    if rows.iter().all(|r| r["up"] == true) {
        Ok(())
    } else {
        bail!("not every process is up")
    }
}

/// The processes of the cluster that `cluster start --state-dir DIR` runs: (index,
/// host-file address, HTTP address).
fn started_members(state_dir: &Path) -> anyhow::Result<Vec<(usize, String, String)>> {
    let file = state_dir.join(MEMBERS_FILE);
    let text = std::fs::read(&file).with_context(|| {
        format!(
            "no cluster started by `flowsight cluster start --state-dir {}` is running ({} \
             cannot be read); for processes started by hand give --hostfile FILE and --http ADDR",
            state_dir.display(),
            file.display()
        )
    })?;
    let listed: Vec<Value> = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a list of processes", file.display()))?;
    listed
        .iter()
        .map(|m| {
            Some((
                usize::try_from(m["process"].as_u64()?).ok()?,
                m["address"].as_str()?.to_string(),
                m["http"].as_str()?.to_string(),
            ))
        })
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{} is not a list of processes", file.display()))
}

fn status_table(rows: &[Value]) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "{:<8} {:<22} {:<22} {}\n",
        "process", "address", "http", "state"
    );
    for row in rows {
        let state = match (&row["status"], &row["error"]) {
            (Value::Object(status), _) if status.get("catching_up") == Some(&Value::Bool(true)) => {
                "up, catching up after a restart".to_string()
            }
            (Value::Object(_), _) => "up".to_string(),
            (_, error) => format!("down ({})", text(error)),
        };
        out.push_str(&format!(
            "{:<8} {:<22} {:<22} {state}\n",
            text(&row["process"]),
            text(&row["address"]),
            text(&row["http"]),
        ));
    }
    // Every process answers for the whole cluster: show the view of the first that is up.
    let Some(status) = rows.iter().map(|r| &r["status"]).find(|s| s.is_object()) else {
        return out;
    };
    let processes = status["processes"].as_u64().unwrap_or(1).max(1);
    let workers = status["workers"].as_u64().unwrap_or(1).max(1);
    let per_process = (workers / processes).max(1);
    out.push_str(&format!(
        "\ncluster: {processes} processes, {workers} workers; as_of {}, frontier {}, {} records, {} dead letters\n",
        text(&status["as_of"]),
        text(&status["frontier"]),
        text(&status["records"]),
        text(&status["dead_letters"]),
    ));
    out.push_str(&format!(
        "{:<8} {:<7} {:<24} {:<12} {:<10} {}\n",
        "process", "worker", "partition", "next_offset", "lag", "max_ts"
    ));
    for p in status["partitions"].as_array().into_iter().flatten() {
        let worker = p["worker"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "{:<8} {:<7} {:<24} {:<12} {:<10} {}\n",
            worker / per_process,
            worker,
            format!("{}/{}", text(&p["source"]), text(&p["partition"])),
            text(&p["next_offset"]),
            text(&p["lag"]),
            text(&p["max_ts"]),
        ));
    }
    out
}
