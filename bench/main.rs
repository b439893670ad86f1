//! `hodi-bench`: Hodi's benchmarks. Each writes its section of `docs/benchmarks.md`.
//!
//! Usage: cargo run --release -p hodi-bench [-- rsocket|reminders|messaging|payments] [options]
//!
//! - `rsocket`: request/response echo, Hodi's RSocket layer against rsocket-js (see [`rsocket`]).
//! - `reminders`: the reminder scheduler at 1k, 100k and 1M pending reminders (see [`reminders`]).
//! - `messaging`: live USSD round trips and send-by-tag throughput (see [`messaging`]).
//! - `payments`: InitiatePayment wallet-to-wallet throughput and latency (see [`payments`]).

mod calls;
mod messaging;
mod notifications;
mod payments;
mod reminders;
mod rsocket;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The allocator `hodi serve` uses (see src/main.rs), so the server measured here is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--serve-echo") => rsocket::serve_echo(),
        Some("--client") => rsocket::client(&args),
        Some("rsocket") => rsocket::main(&args),
        Some("reminders") => reminders::main(&args),
        Some("messaging") => messaging::main(&args),
        Some("payments") => payments::main(&args),
        Some("notifications") => notifications::main(&args),
        Some("calls") => calls::main(&args),
        _ => {
            rsocket::main(&args)?;
            reminders::main(&args)?;
            messaging::main(&args)?;
            payments::main(&args)?;
            notifications::main(&args)?;
            calls::main(&args)
        }
    }
}

/// A server for one benchmark run: embedded SQLite in a fresh temporary directory, plain TCP on
/// loopback only.
pub struct BenchServer {
    pub running: hodi::server::Running,
    pub dir: PathBuf,
    pub addr: String,
    pub dev: hodi::server::DevCredentials,
}

impl BenchServer {
    pub async fn start(name: &str, adjust: impl FnOnce(&mut hodi::config::Config)) -> Result<BenchServer> {
        let dir = std::env::temp_dir().join(format!("hodi-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = hodi::config::Config { data_dir: dir.clone(), log: "warn".into(), ..Default::default() };
        config.listen.tls.clear();
        config.listen.ws.clear();
        config.listen.wss.clear();
        config.listen.tcp = "127.0.0.1:0".into();
        config.voice.sip_udp.clear();
        config.voice.sip_tcp.clear();
        adjust(&mut config);
        let running = hodi::server::start(config).await?;
        let addr = running.bound.tcp.context("tcp listener")?.to_string();
        let dev = running.dev.clone().context("dev tenant")?;
        Ok(BenchServer { running, dir, addr, dev })
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

    /// Stops the server and removes its data.
    pub fn stop(self) {
        self.running.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// Replaces the section starting with `marker` (up to the next `## `) in the report, or appends it.
pub fn write_section(path: &Path, marker: &str, section: &str) -> Result<()> {
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
