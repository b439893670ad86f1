//! Several nodes: the live USSD round trip with the phone and the app on one node against the
//! phone on node A and the app on node B (the ask crosses through Redis), two Hodi nodes in this
//! process on one PostgreSQL database (`--postgres`, required) and the Redis at `--redis`
//! (default redis://127.0.0.1:6379). CPU is this process's (both nodes and the load client) per
//! round trip.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hodi::wire::AppConnectionMetadata;

use super::messaging::{connect, ussd_round_trips, App, Phone};
use super::BenchServer;

struct Row {
    what: &'static str,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
}

async fn measure(what: &'static str, phone: &hodi_rsocket::Requester, n: usize) -> Result<Row> {
    let cpu = super::cpu_seconds();
    let latencies = ussd_round_trips(phone, n).await?;
    let cpu_us = (super::cpu_seconds() - cpu) * 1e6 / (n + 200) as f64;
    Ok(Row { what, p50_us: super::percentile(&latencies, 0.5), p99_us: super::percentile(&latencies, 0.99), cpu_us })
}

async fn run(redis: &str, round_trips: usize) -> Result<Vec<Row>> {
    let cluster = |node: &'static str| {
        let redis = redis.to_string();
        move |c: &mut hodi::config::Config| {
            c.cluster.node_id = node.into();
            c.cluster.redis_url = redis;
            c.cluster.heartbeat_ms = 200;
        }
    };
    let a = BenchServer::start("cluster", cluster("bench-a")).await?;
    let b = BenchServer::join(&a, "cluster-b", cluster("bench-b")).await?;
    let meta = a.meta();
    let simulator = AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..meta.clone() };
    let counter = || Arc::new(AtomicUsize::new(0));

    // The app on node B only; wait until B delivers it.
    let _app = connect(&b.addr, meta.clone(), Arc::new(App(counter()))).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.running.hodi.store.delivery_holder(&a.dev.app_id, hodi::store::now_ms()).await?.as_deref()
        != Some("bench-b")
    {
        anyhow::ensure!(Instant::now() < deadline, "node B never took the app's delivery lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let phone_b = connect(&b.addr, simulator.clone(), Arc::new(Phone(counter()))).await?;
    let phone_a = connect(&a.addr, simulator, Arc::new(Phone(counter()))).await?;
    let mut rows = Vec::new();
    for _ in 0..2 {
        rows.push(measure("phone and app on one node", &phone_b, round_trips).await?);
        rows.push(measure("phone on node A, app on node B (through Redis)", &phone_a, round_trips).await?);
    }
    b.stop_joined();
    a.stop();
    Ok(rows)
}

pub fn main(args: &[String]) -> Result<()> {
    super::POSTGRES.get().context("the cluster benchmark needs --postgres <server>")?;
    let redis = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    // `round-trips`, `scaling` or `failover` alone; all three by default.
    let only = ["round-trips", "scaling", "failover"].into_iter().find(|part| args.iter().any(|a| a == part));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if only.is_none_or(|p| p == "round-trips") {
        round_trip_section(&runtime, &redis, super::arg(args, "--round-trips", 3000.0)? as usize)?;
    }
    if only.is_none_or(|p| p == "scaling") {
        let messages = super::arg(args, "--messages", 4000.0)? as usize;
        let tagged = super::arg(args, "--tagged", 10_000.0)? as usize;
        let rounds = super::arg(args, "--rounds", 3.0)? as usize;
        scaling_section(&runtime, &redis, messages, tagged, rounds)?;
    }
    if only.is_none_or(|p| p == "failover") {
        failover_section(&runtime, &redis, super::arg(args, "--rounds", 3.0)? as usize)?;
    }
    Ok(())
}

fn round_trip_section(runtime: &tokio::runtime::Runtime, redis: &str, round_trips: usize) -> Result<()> {
    let rows = runtime.block_on(run(redis, round_trips))?;
    let mut table =
        String::from("| live USSD round trip | p50 | p99 | CPU/round trip |\n| --- | ---: | ---: | ---: |\n");
    for r in &rows {
        table.push_str(&format!(
            "| {} | {:.2} ms | {:.2} ms | {:.0} µs |\n",
            r.what,
            r.p50_us / 1000.0,
            r.p99_us / 1000.0,
            r.cpu_us
        ));
    }
    eprint!("{table}");
    let (_, flag) = super::store_used();
    let section = format!(
        "## Several nodes (`hodi-bench cluster round-trips`)\n\n\
         Two Hodi nodes in one process on one PostgreSQL database (default settings, loopback) and Redis on loopback;\n\
         our RSocket client plays the app (on node B) and the phone. {round_trips} live USSD inputs one at a time from\n\
         a phone on node B (same node as the app), then from a phone on node A (the ask goes A → Redis → B → the app →\n\
         B → Redis → A), twice over. CPU is this process's (both nodes and the load client; PostgreSQL's and Redis's\n\
         own CPU not included) per round trip.\n\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- cluster round-trips{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Several nodes", &section)
}

fn args_nodes() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--nodes").and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok())
}

fn scaling_section(
    runtime: &tokio::runtime::Runtime,
    redis: &str,
    messages: usize,
    tagged: usize,
    rounds: usize,
) -> Result<()> {
    let mut table = String::from(
        "| nodes | notifications delivered | CPU/notification (runs) | by-tag messages stored | CPU/message |\n\
         | ---: | ---: | ---: | ---: | ---: |\n",
    );
    // `--nodes N`: that many only (for profiling).
    let only_nodes = args_nodes();
    for nodes in (1..=3).filter(|n| only_nodes.is_none_or(|only| only == *n)) {
        let runs: Vec<super::cluster_scaling::Scale> = (0..rounds.max(1))
            .map(|_| runtime.block_on(super::cluster_scaling::run(nodes, redis, messages, tagged)))
            .collect::<Result<_>>()?;
        let median = |f: &dyn Fn(&super::cluster_scaling::Scale) -> f64| super::median(runs.iter().map(f).collect());
        let (notifications, tag_messages) = (runs[0].notifications, runs[0].messages);
        let notify_seconds = median(&|s| s.notify_seconds);
        let tag_seconds = median(&|s| s.tag_seconds);
        let cpu_runs: Vec<String> = runs.iter().map(|s| format!("{:.0}", s.notify_cpu_us)).collect();
        let row = format!(
            "| {nodes} | {:.0}/s ({notifications} in {notify_seconds:.1} s) | {:.0} µs ({}) | {:.0}/s ({tag_messages} in {tag_seconds:.1} s) | {:.0} µs |\n",
            notifications as f64 / notify_seconds,
            median(&|s| s.notify_cpu_us),
            cpu_runs.join(", "),
            tag_messages as f64 / tag_seconds,
            median(&|s| s.tag_cpu_us),
        );
        eprint!("{row}");
        table.push_str(&row);
    }
    let (_, flag) = super::store_used();
    let section = format!(
        "## Scaling out (`hodi-bench cluster scaling`)\n\n\
         1, 2 and 3 Hodi nodes in one process on one PostgreSQL database (a fresh one each) and Redis, on this 2-core\n\
         machine: more nodes here add no cores, so what this shows is the cost of spreading the work (CPU per operation,\n\
         which must not grow with nodes), not more throughput. Three apps of one org; app i's socket on node i mod n, its\n\
         phone on node i+1 mod n, so with 2 or 3 nodes every notification is produced on one node and delivered by\n\
         another (outbox in PostgreSQL, wake-up through Redis). Notifications: each phone texts its app {messages} times, 8 at\n\
         once, timed until every app has answered every one. By tag: each app sends one SMS to its own {tagged} tagged\n\
         customers, all three at once, with no simulator connected (each message stored QUEUED: the store path), timed\n\
         until the three works are done. CPU is this process's (nodes and clients; PostgreSQL's and Redis's not\n\
         included), per operation, from /proc at 10 ms resolution. Median of {rounds} runs, a fresh database each; this\n\
         machine's run-to-run spread is wide (the runs are listed), so read differences under a third as noise.\n\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- cluster scaling{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Scaling out", &section)
}

fn failover_section(runtime: &tokio::runtime::Runtime, redis: &str, rounds: usize) -> Result<()> {
    let mut table = String::from(
        "| heartbeat / lease | kill -9 → first notification from the other node (median, runs) | texts, all delivered |\n\
         | --- | ---: | ---: |\n",
    );
    for timings in [(1000, 5000), (200, 1500)] {
        let mut times = Vec::new();
        let mut messages = 0;
        for round in 0..rounds.max(1) {
            let f = runtime.block_on(super::cluster_failover::run(redis, timings, round))?;
            eprintln!(
                "heartbeat {} ms, lease {} ms: first notification {:?} after the kill; {} texts all delivered",
                f.heartbeat_ms, f.lease_ms, f.first_after_kill, f.messages
            );
            times.push(f.first_after_kill.as_secs_f64());
            messages = f.messages;
        }
        let runs: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
        table.push_str(&format!(
            "| {} ms / {} ms | {:.2} s ({} s) | {messages} |\n",
            timings.0,
            timings.1,
            super::median(times.clone()),
            runs.join(", ")
        ));
    }
    eprint!("{table}");
    let (_, flag) = super::store_used();
    let section = format!(
        "## Failover (`hodi-bench cluster failover`)\n\n\
         Two `hodi serve` nodes in processes of their own (`hodi-bench --serve-node`) on one PostgreSQL database and\n\
         Redis. The app has a socket on node A, which holds its delivery lease, and one on node B; a phone on node B\n\
         texts the app every 5 ms. Node A is killed (SIGKILL); timed from the kill to the first notification node B\n\
         delivers (what was queued or unanswered on A waits for A's lease to run out). Every text sent before, during\n\
         and after reached the app. The default cluster settings (heartbeat 1 s, lease 5 s), then short ones.\n\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- cluster failover{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Failover", &section)
}
