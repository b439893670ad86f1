//! `hodi-bench`: Hodi's benchmarks. Each prints its table; with `--write` it also replaces its
//! section of `docs/benchmarks.md`.
//!
//! Usage: cargo run --release -p hodi-bench -- [--write] <rsocket|reminders|messaging|payments|state|
//! notifications|calls|conferences|registrar|webrtc|smpp|hostile|all> [options]; `--help` lists them.
//!
//! - `rsocket`: request/response echo, Hodi's RSocket layer against rsocket-js (see [`rsocket`]).
//! - `reminders`: the reminder scheduler at 1k, 100k and 1M pending reminders (see [`reminders`]).
//! - `messaging`: live USSD round trips and send-by-tag throughput (see [`messaging`]).
//! - `payments`: InitiatePayment wallet-to-wallet throughput and latency (see [`payments`]).
//! - `state`: durable customer-state updates and getCustomerState latency (see [`state`]).
//! - `notifications`: notification delivery (see [`notifications`]).
//! - `calls`: SIP calls through the voice executor (see [`calls`]).
//! - `smpp`: SMS through an SMPP provider: submit rate on one bind, SendMessage → submit_sm
//!   latency, send-by-tag (see [`smpp`]).
//! - `conferences`: rooms of five SIP callers mixed by the voice executor (see [`conferences`]).
//! - `webrtc`: browser call setup through the WebRTC gateway (see [`webrtc`]).
//! - `registrar`: SIP REGISTERs with digest authentication (see [`registrar`]).
//! - `hostile`: server memory and a legitimate client's latency while each attack runs (see
//!   [`hostile`]).

mod calls;
mod cluster;
mod cluster_failover;
mod cluster_scaling;
mod conferences;
mod hostile;
mod messaging;
mod notifications;
mod payments;
mod registrar;
mod reminders;
mod rsocket;
mod smpp;
mod state;
mod webrtc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// The allocator `hodi serve` uses (see src/main.rs), so the server measured here is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether `--write` was given: sections go into docs/benchmarks.md only then.
static WRITE: AtomicBool = AtomicBool::new(false);

/// `--postgres <server>`: the PostgreSQL server the benchmarks' stores run on (a fresh database
/// each), instead of the embedded SQLite store.
static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Parser)]
#[command(
    name = "hodi-bench",
    version,
    about = "Hodi's benchmarks: each prints a table; --write also puts it in docs/benchmarks.md"
)]
struct Cli {
    /// Replace the benchmark's section of docs/benchmarks.md with the new table.
    #[arg(long, global = true)]
    write: bool,
    /// Run the server's store on this PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432),
    /// a fresh database per run; sections are written as "… on PostgreSQL".
    #[arg(long, global = true)]
    postgres: Option<String>,
    #[command(subcommand)]
    bench: Bench,
}

/// Options after the benchmark's name (`--rounds 5`, `--seconds 3` …) go to it.
#[derive(clap::Args)]
struct Options {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    options: Vec<String>,
}

#[derive(Subcommand)]
enum Bench {
    /// Request/response echo: Hodi's RSocket layer against rsocket-js [--rounds N --seconds S].
    Rsocket(Options),
    /// The reminder scheduler at 1k, 100k and 1M pending reminders.
    Reminders(Options),
    /// Live USSD round trips and send-by-tag throughput.
    Messaging(Options),
    /// InitiatePayment wallet-to-wallet throughput and latency.
    Payments(Options),
    /// Durable updateCustomerTag/Metadata throughput, getCustomerState latency at a fixed rate.
    State(Options),
    /// Notification delivery to app sockets and subscriptions.
    Notifications(Options),
    /// SIP calls through the voice executor.
    Calls(Options),
    /// Conference rooms of five SIP callers [--participants N].
    Conferences(Options),
    /// SIP REGISTERs with digest authentication [--rate N --seconds S].
    Registrar(Options),
    /// Browser call setup through the WebRTC gateway [--calls N].
    Webrtc(Options),
    /// SMS through an SMPP provider [--messages N --tagged N --latencies N].
    Smpp(Options),
    /// Several nodes on one PostgreSQL and Redis [round-trips|scaling|failover] (--postgres required, --redis URL).
    Cluster(Options),
    /// Server memory and a legitimate client's p99 while each attack runs [--seconds S].
    Hostile(Options),
    /// Every benchmark above, in order.
    All(Options),
    /// Internal: an echo server for the rsocket benchmark.
    #[command(hide = true, name = "--serve-echo")]
    ServeEcho,
    /// Internal: a load client for the rsocket benchmark.
    #[command(hide = true, name = "--client")]
    Client(Options),
    /// Internal: a cluster node in its own process for the failover benchmark.
    #[command(hide = true, name = "--serve-node")]
    ServeNode,
    /// Internal: the load client of the registrar benchmark.
    #[command(hide = true, name = "--register-client")]
    RegisterClient(Options),
    /// Internal: a Hodi server in its own process for the hostile benchmark.
    #[command(hide = true, name = "--serve-hodi")]
    ServeHodi,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    WRITE.store(cli.write, Ordering::Relaxed);
    if let Some(server) = cli.postgres {
        let _ = POSTGRES.set(server.trim_end_matches('/').to_string());
    }
    match cli.bench {
        Bench::ServeEcho => rsocket::serve_echo(),
        Bench::Client(o) => rsocket::client(&[vec!["--client".to_string()], o.options].concat()),
        Bench::ServeHodi => hostile::serve(),
        Bench::RegisterClient(o) => registrar::client(&[vec!["--register-client".to_string()], o.options].concat()),
        Bench::ServeNode => cluster_failover::serve_node(),
        Bench::Rsocket(o) => rsocket::main(&o.options),
        Bench::Reminders(o) => reminders::main(&o.options),
        Bench::Messaging(o) => messaging::main(&o.options),
        Bench::Payments(o) => payments::main(&o.options),
        Bench::State(o) => state::main(&o.options),
        Bench::Notifications(o) => notifications::main(&o.options),
        Bench::Calls(o) => calls::main(&o.options),
        Bench::Registrar(o) => registrar::main(&o.options),
        Bench::Conferences(o) => conferences::main(&o.options),
        Bench::Webrtc(o) => webrtc::main(&o.options),
        Bench::Hostile(o) => hostile::main(&o.options),
        Bench::Smpp(o) => smpp::main(&o.options),
        Bench::Cluster(o) => cluster::main(&o.options),
        Bench::All(o) => {
            rsocket::main(&o.options)?;
            reminders::main(&o.options)?;
            messaging::main(&o.options)?;
            payments::main(&o.options)?;
            state::main(&o.options)?;
            notifications::main(&o.options)?;
            calls::main(&o.options)?;
            conferences::main(&o.options)?;
            registrar::main(&o.options)?;
            webrtc::main(&o.options)?;
            smpp::main(&o.options)?;
            hostile::main(&o.options)
        }
    }
}

/// The `q` quantile (0..1) of a histogram of 1 ms buckets, in ms.
pub fn quantile_ms(hist: &[u64], q: f64) -> usize {
    let total: u64 = hist.iter().sum();
    let target = ((total as f64 * q).ceil() as u64).max(1);
    let mut seen = 0;
    for (ms, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= target {
            return ms;
        }
    }
    hist.len().saturating_sub(1)
}

/// A UDP port free on loopback now (for sipp's signalling and media).
pub fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A sipp injection file of `n` callers, each a valid Kenyan mobile number (customer numbers
/// are checked against the numbering plan, so sipp's `+2547[call_number]` would be refused):
/// scenarios put `[field0]` in From. Written into `dir`; its path.
pub fn write_callers(dir: &Path, n: usize) -> Result<PathBuf> {
    let path = dir.join("callers.csv");
    let lines: String =
        std::iter::once("SEQUENTIAL\n".to_string()).chain((0..n).map(|i| format!("+2547000{i:05}\n"))).collect();
    std::fs::write(&path, lines)?;
    Ok(path)
}

/// A server for one benchmark run: embedded SQLite in a fresh temporary directory, plain TCP on
/// loopback only.
pub struct BenchServer {
    /// The run's name, which also names its PostgreSQL database (`--postgres`).
    name: String,
    pub running: hodi::server::Running,
    pub dir: PathBuf,
    pub addr: String,
    pub dev: hodi::server::DevCredentials,
}

/// A server's configuration for a benchmark: data in `dir` (emptied first), plain TCP on a free
/// loopback port, nothing else listening, quiet logs.
pub fn bench_config(dir: &Path) -> hodi::config::Config {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = hodi::config::Config { data_dir: dir.to_path_buf(), log: "warn".into(), ..Default::default() };
    config.listen.tls.clear();
    config.listen.ws.clear();
    config.listen.wss.clear();
    config.listen.tcp = "127.0.0.1:0".into();
    config.voice.sip_udp.clear();
    config.voice.sip_tcp.clear();
    config.webhooks.listen.clear();
    config.listen.http.clear();
    config
}

impl BenchServer {
    pub async fn start(name: &str, adjust: impl FnOnce(&mut hodi::config::Config)) -> Result<BenchServer> {
        let dir = std::env::temp_dir().join(format!("hodi-bench-{name}-{}", std::process::id()));
        let mut config = bench_config(&dir);
        config.database_url = fresh_database(name)?;
        adjust(&mut config);
        let running = hodi::server::start(config).await?;
        let addr = running.bound.tcp.context("tcp listener")?.to_string();
        let dev = running.dev.clone().context("dev tenant")?;
        Ok(BenchServer { name: name.to_string(), running, dir, addr, dev })
    }

    /// SETUP data for the dev app (an app socket that takes notifications).
    pub fn meta(&self) -> hodi::wire::AppConnectionMetadata {
        hodi::wire::AppConnectionMetadata {
            org_id: self.dev.org_id.clone(),
            app_id: self.dev.app_id.clone(),
            api_key: Some(self.dev.api_key.clone()),
            ..Default::default()
        }
    }

    /// Another node on `first`'s database, with `first`'s dev tenant (provisioned once per database).
    pub async fn join(
        first: &BenchServer,
        name: &str,
        adjust: impl FnOnce(&mut hodi::config::Config),
    ) -> Result<BenchServer> {
        let dir = std::env::temp_dir().join(format!("hodi-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = first.running.hodi.config.as_ref().clone();
        config.data_dir = dir.clone();
        config.listen.tcp = "127.0.0.1:0".into();
        adjust(&mut config);
        let running = hodi::server::start(config).await?;
        let addr = running.bound.tcp.context("tcp listener")?.to_string();
        Ok(BenchServer { name: name.to_string(), running, dir, addr, dev: first.dev.clone() })
    }

    /// Stops a node started by [`BenchServer::join`] (its database is the first node's).
    pub fn stop_joined(self) {
        self.running.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Stops the server and removes its data.
    pub fn stop(self) {
        self.running.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
        drop_database(&self.name);
    }
}

/// With `--postgres`, a new empty database for the run called `name` (an earlier run's is
/// dropped first): its URL. None keeps the embedded store.
pub fn fresh_database(name: &str) -> Result<Option<String>> {
    let Some(server) = POSTGRES.get() else { return Ok(None) };
    let db = database_name(name);
    for statement in [format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), format!("CREATE DATABASE {db}")] {
        psql(server, &statement)?;
    }
    Ok(Some(format!("{server}/{db}")))
}

/// With `--postgres`, drops the database of the run called `name` (its server has stopped).
pub fn drop_database(name: &str) {
    if let Some(server) = POSTGRES.get() {
        if let Err(e) = psql(server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database_name(name))) {
            eprintln!("leaving the database of {name}: {e:#}");
        }
    }
}

fn database_name(run: &str) -> String {
    format!("hodi_bench_{run}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn psql(server: &str, statement: &str) -> Result<()> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &format!("{server}/postgres"), "-c", statement])
        .output()
        .context("running psql (--postgres needs the PostgreSQL client)")?;
    anyhow::ensure!(out.status.success(), "psql {statement}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The store a run used, for the report: `(description, command-line flag)`.
pub fn store_used() -> (&'static str, String) {
    match POSTGRES.get() {
        Some(server) => ("PostgreSQL on this machine (default settings, loopback)", format!(" --postgres {server}")),
        None => ("the embedded SQLite store", String::new()),
    }
}

/// The workspace root (this package lives in `bench/`), where `docs/` and `tests/peers/` are.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The median of `v` (the upper one for an even count).
/// Process CPU time (user + system) in seconds, from /proc (10 ms resolution).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat; after the `)` they are 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p` quantile of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The value after `--name`, or `default`.
pub fn arg(args: &[String], name: &str, default: f64) -> Result<f64> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

/// Prints `section`; with `--write`, also replaces the section starting with `marker` (up to the
/// next `## `) in the report at `path`, or appends it.
pub fn write_section(path: &Path, marker: &str, section: &str) -> Result<()> {
    // A run on PostgreSQL is a section of its own beside the embedded store's.
    let (marker, section) = match POSTGRES.get() {
        Some(_) => {
            let titled = format!("{marker} on PostgreSQL");
            (titled.clone(), section.replacen(marker, &titled, 1))
        }
        None => (marker.to_string(), section.to_string()),
    };
    let (marker, section) = (marker.as_str(), section.as_str());
    println!("{section}");
    if !WRITE.load(Ordering::Relaxed) {
        eprintln!("(not written to {}: pass --write for that)", path.display());
        return Ok(());
    }
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure here is written by a benchmark program; rerun it rather than editing by hand.\n\n".into()
    });
    let updated = match existing.find(marker) {
        Some(start) => {
            let end = existing[start + marker.len()..]
                .find("\n## ")
                .map(|i| start + marker.len() + i + 1)
                .unwrap_or(existing.len());
            let rest = &existing[end..];
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{}{gap}{}", &existing[..start], section.trim_end_matches('\n').to_string() + "\n", rest)
        }
        None => format!("{}\n\n{section}", existing.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}
