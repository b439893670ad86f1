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
    let round_trips = super::arg(args, "--round-trips", 3000.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(run(&redis, round_trips))?;
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
        "## Several nodes (`hodi-bench cluster`)\n\n\
         Two Hodi nodes in one process on one PostgreSQL database (default settings, loopback) and Redis on loopback;\n\
         our RSocket client plays the app (on node B) and the phone. {round_trips} live USSD inputs one at a time from\n\
         a phone on node B (same node as the app), then from a phone on node A (the ask goes A → Redis → B → the app →\n\
         B → Redis → A), twice over. CPU is this process's (both nodes and the load client; PostgreSQL's and Redis's\n\
         own CPU not included) per round trip.\n\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- cluster{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Several nodes", &section)
}
