//! What an operator looks at first: `hodi outbox` (what waits for each app, how old, the last
//! failure), `hodi work` (by-tag jobs and how far they got), `hodi keys` (an org's API keys, and
//! revoking one). `--json` prints one JSON document for scripts.

use std::io::Write;

use anyhow::Result;

use crate::config::Config;
use crate::store::{now_ms, Store};

async fn store(config: &Config) -> Result<Store> {
    Store::open_existing(&config.database_url()).await
}

/// "4.2 s", "3 min", "2.5 h": how long ago `at` (unix ms) was.
fn ago(at: i64) -> String {
    let ms = (now_ms() - at).max(0) as f64;
    match ms {
        ms if ms < 60_000.0 => format!("{:.1} s", ms / 1000.0),
        ms if ms < 3_600_000.0 => format!("{:.0} min", ms / 60_000.0),
        ms => format!("{:.1} h", ms / 3_600_000.0),
    }
}

pub async fn outbox(config: Config, json: bool) -> Result<()> {
    let summary = store(&config).await?.outbox_summary().await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(());
    }
    if summary.is_empty() {
        writeln!(out, "no notifications waiting")?;
        return Ok(());
    }
    writeln!(out, "{:<28} {:>10} {:>12} {:>10}  last error", "app", "waiting", "oldest", "retrying")?;
    for s in summary {
        let error = s.last_error.unwrap_or_else(|| "-".into());
        writeln!(out, "{:<28} {:>10} {:>12} {:>10}  {error}", s.app_id, s.depth, ago(s.oldest_at), s.retrying)?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Progress {
    #[serde(flatten)]
    work: crate::store::work::WorkSummary,
    /// Customers tagged now: what a running work is heading for.
    tagged_now: Option<i64>,
}

pub async fn work(config: Config, limit: i64, json: bool) -> Result<()> {
    let store = store(&config).await?;
    let mut works = Vec::new();
    for w in store.recent_work(limit.clamp(1, 10_000)).await? {
        let tagged_now = match w.state.as_str() {
            "running" => Some(store.count_tagged(&w.org_id, &w.tag.0, &w.tag.1).await?),
            _ => None,
        };
        works.push(Progress { work: w, tagged_now });
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&works)?)?;
        return Ok(());
    }
    if works.is_empty() {
        writeln!(out, "no by-tag work yet")?;
        return Ok(());
    }
    for Progress { work: w, tagged_now } in works {
        let progress = match tagged_now {
            Some(total) if total > 0 => {
                format!("{} of {total} customers ({:.0}%)", w.customers, 100.0 * w.customers as f64 / total as f64)
            }
            _ => format!("{} customers", w.customers),
        };
        let node = if w.node.is_empty() { String::new() } else { format!(" on {}", w.node) };
        let error = w.error.map(|e| format!(": {e}")).unwrap_or_default();
        writeln!(
            out,
            "{}  {:<24} {:<8} {}={}  {progress}  started {} ago{node}{error}",
            w.id,
            w.kind,
            w.state,
            w.tag.0,
            w.tag.1,
            ago(w.created_at)
        )?;
    }
    Ok(())
}

pub async fn keys(config: Config, command: super::KeysCommand) -> Result<()> {
    let store = store(&config).await?;
    let mut out = std::io::stdout().lock();
    match command {
        super::KeysCommand::List { org } => {
            for key in store.api_keys(&org).await? {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {} ago", ago(at)),
                    None => "active".into(),
                };
                writeln!(out, "{}  {}…  made {} ago  {state}", key.id, key.prefix, ago(key.created_at))?;
            }
        }
        super::KeysCommand::Revoke { id } => {
            if !store.revoke_api_key(&id).await? {
                anyhow::bail!("no active API key {id} (hodi keys list --org <org> shows them)");
            }
            writeln!(
                out,
                "revoked API key {id}: SETUPs with it are refused from now on; open sockets stay until they close"
            )?;
        }
    }
    Ok(())
}
