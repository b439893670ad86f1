//! The reminder scheduler at 1k, 100k and 1M pending reminders: memory and disk per pending
//! reminder, and firing lateness while reminders come due at 10,000 per second.
//!
//! Each size runs a real server (`hodi::server::start`, embedded SQLite, no listeners) in a fresh
//! data directory. Reminders are written through the store (the SDK path adds only protocol
//! overhead): most far in the future, and a burst due at 10k/s starting a few seconds later. No app
//! is connected, so fired reminders stay in the outbox, where each row's `created_at` (when it was
//! fired) against its reminder's `remind_at` gives the lateness.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hodi::store::customers::StoredNumber;
use hodi::store::now_ms;
use hodi::store::reminders::StoredReminder;
use hodi::wire::{server_to_app_customer_notification, ServerToAppCustomerNotification};
use prost::Message;

/// Reminders coming due per second during the burst.
const DUE_RATE: usize = 10_000;
/// Reminders in the burst at most (5 s at 10k/s).
const BURST: usize = 50_000;
const CUSTOMERS: usize = 1_000;

struct Row {
    pending: usize,
    load_seconds: f64,
    rss_bytes_per_reminder: f64,
    rss_growth_mb: f64,
    disk_bytes_per_reminder: f64,
    fired: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    achieved_per_second: f64,
}

fn rss_bytes() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    let kb: f64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kb * 1024.0)
}

async fn run_one(pending: usize) -> Result<Row> {
    let dir = std::env::temp_dir().join(format!("hodi-bench-reminders-{}-{pending}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = hodi::config::Config { data_dir: dir.clone(), log: "warn".into(), ..Default::default() };
    config.database_url = super::fresh_database(&format!("reminders_{pending}"))?;
    for addr in [
        &mut config.listen.tls,
        &mut config.listen.tcp,
        &mut config.listen.ws,
        &mut config.listen.wss,
        &mut config.voice.sip_udp,
        &mut config.voice.sip_tcp,
        &mut config.webhooks.listen,
        &mut config.listen.http,
    ] {
        addr.clear();
    }
    let running = hodi::server::start(config).await?;
    let store = running.hodi.store.clone();
    let dev = running.dev.clone().context("dev tenant")?;

    let customers = CUSTOMERS.min(pending);
    let mut ids = Vec::with_capacity(customers);
    for i in 0..customers {
        let n = StoredNumber { provider: 2, number: format!("+2547{i:08}"), partition: String::new() };
        ids.push(store.customer_by_number(&dev.org_id, &n).await?.0.id);
    }
    let burst = BURST.min(pending);
    let reminder = |i: usize, remind_at: i64| StoredReminder {
        org_id: dev.org_id.clone(),
        app_id: dev.app_id.clone(),
        customer_id: ids[i % customers].clone(),
        key: format!("k{}", i / customers),
        remind_at,
        interval_secs: None,
        payload: Some("bench".into()),
        tag: None,
        work_id: None,
    };
    let rss0 = rss_bytes()?;
    let disk0 = store.database_bytes().await? as f64;
    let loading = Instant::now();
    let far = now_ms() + 86_400_000;
    let chunk = 10_000;
    for start in (burst..pending).step_by(chunk) {
        let batch: Vec<_> = (start..(start + chunk).min(pending)).map(|i| reminder(i, far)).collect();
        store.upsert_reminders(&batch).await?;
    }
    // The burst: due from t0, DUE_RATE per second. Its own writing must end before t0: allow twice
    // what the far reminders took per reminder, and at least 3 s.
    let per_reminder_ms = loading.elapsed().as_secs_f64() * 1000.0 / (pending - burst).max(1) as f64;
    let t0 = now_ms() + 3_000i64.max((2.0 * per_reminder_ms * burst as f64) as i64 + 1_000);
    for start in (0..burst).step_by(chunk) {
        let batch: Vec<_> =
            (start..(start + chunk).min(burst)).map(|i| reminder(i, t0 + (i * 1000 / DUE_RATE) as i64)).collect();
        store.upsert_reminders(&batch).await?;
    }
    let load_seconds = loading.elapsed().as_secs_f64();
    anyhow::ensure!(now_ms() < t0, "loading took past the start of the burst; raise the lead time");
    running.hodi.store.reminders_changed().notify_one();
    let rss1 = rss_bytes()?;
    let disk1 = store.database_bytes().await? as f64;

    let deadline = Instant::now() + Duration::from_millis((t0 - now_ms()).max(0) as u64) + Duration::from_secs(60);
    while store.outbox_len().await? < burst as i64 {
        anyhow::ensure!(Instant::now() < deadline, "the burst did not fire within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = store.outbox_rows(burst as i64 + 1).await?;
    let mut lateness = Vec::with_capacity(rows.len());
    let mut last_fired = i64::MIN;
    for row in &rows {
        let n = ServerToAppCustomerNotification::decode(row.entry.as_slice())?;
        let Some(server_to_app_customer_notification::Entry::Reminder(r)) = n.entry else { continue };
        let at = r.reminder.and_then(|r| r.remind_at).context("remind_at")?;
        let remind_at = at.seconds * 1000 + i64::from(at.nanos / 1_000_000);
        lateness.push((row.created_at - remind_at) as f64);
        last_fired = last_fired.max(row.created_at);
    }
    lateness.sort_by(|a, b| a.total_cmp(b));
    let remaining = store.count_reminders().await? as usize;
    anyhow::ensure!(remaining == pending - burst, "expected {} reminders left, found {remaining}", pending - burst);
    running.shutdown.cancel();
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
    super::drop_database(&format!("reminders_{pending}"));
    let span_ms = (last_fired - t0).max(1) as f64;
    Ok(Row {
        pending,
        load_seconds,
        rss_bytes_per_reminder: (rss1 - rss0) / pending as f64,
        rss_growth_mb: (rss1 - rss0) / 1_048_576.0,
        disk_bytes_per_reminder: (disk1 - disk0) / pending as f64,
        fired: lateness.len(),
        p50_ms: super::percentile(&lateness, 0.50),
        p99_ms: super::percentile(&lateness, 0.99),
        max_ms: lateness.last().copied().unwrap_or(f64::NAN),
        achieved_per_second: lateness.len() as f64 * 1000.0 / span_ms,
    })
}

pub fn main(args: &[String]) -> Result<()> {
    let max = super::arg(args, "--max-pending", 1_000_000.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for pending in [1_000, 100_000, 1_000_000].into_iter().filter(|n| *n <= max) {
        let row = runtime.block_on(run_one(pending))?;
        eprintln!(
            "{pending} pending: loaded in {:.1} s, {:.1} B RSS and {:.0} B disk per reminder; {} fired at {}/s offered: lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({:.0}/s achieved)",
            row.load_seconds, row.rss_bytes_per_reminder, row.disk_bytes_per_reminder, row.fired, DUE_RATE, row.p50_ms, row.p99_ms, row.max_ms, row.achieved_per_second
        );
        rows.push(row);
    }
    let mut table = String::from(
        "| pending reminders | fired in the burst | due rate offered | lateness p50 | lateness p99 | lateness max | firing rate achieved | RSS growth while loading | RSS growth per pending reminder | disk per pending reminder | load time |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {}/s | {:.0} ms | {:.0} ms | {:.0} ms | {:.0}/s | {:.1} MB | {:.1} B | {:.0} B | {:.1} s |\n",
            r.pending,
            r.fired,
            DUE_RATE,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.achieved_per_second,
            r.rss_growth_mb,
            r.rss_bytes_per_reminder,
            r.disk_bytes_per_reminder,
            r.load_seconds
        ));
    }
    let (store, flag) = super::store_used();
    let section = format!(
        "## Reminder scheduler (`hodi-bench reminders`)\n\n\
         A real server on {store}, no app connected. For each size, all but the burst are due in a day;\n\
         the burst (up to {BURST}) comes due at {DUE_RATE} per second. Lateness is when the reminder's notification was\n\
         written to the outbox minus its `remind_at` (fired = durable; delivery to an app is the outbox's, measured separately).\n\
         Pending reminders live only in the database (the `remind_at` index is the queue), so RSS growth is page cache, not per-reminder state.\n\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- reminders{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Reminder scheduler", &section)
}
