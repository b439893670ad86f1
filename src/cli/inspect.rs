//! What an operator looks at first: `hodi outbox` (what waits for each app, how old, the last
//! failure), `hodi work` (by-tag jobs and how far they got), `hodi calls` (call records, with why
//! each ended), `hodi keys` (an org's API keys, and revoking one), `hodi customer` (a customer's state as
//! an app sees it). `--json` prints one JSON document for scripts.

use std::io::Write;

use anyhow::Result;

use crate::config::Config;
use crate::convert::utc;
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

/// Why a call ended as its SIP status says, for people (404 and 480 are both "refused").
fn sip_reason(status: i64) -> &'static str {
    match status {
        200 => "answered",
        404 => "no such number",
        480 => "no app took it",
        486 | 600 => "busy",
        487 => "cancelled",
        488 => "no common codec",
        403 | 603 => "declined",
        408 => "no answer",
        500..=599 => "server error",
        _ => "",
    }
}

pub async fn calls(config: Config, filter: crate::store::calls::CallFilter, limit: i64, json: bool) -> Result<()> {
    let records = store(&config).await?.call_records_where(&filter, limit.clamp(1, 10_000)).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<38} {:<9} {:<16} {:<16} {:>4} {:<16} {:<15} {:>8} {:>6} {:>6} {:>5} {:>7} {:>7} {:>4}",
        "started (UTC)",
        "call",
        "direction",
        "caller",
        "callee",
        "sip",
        "why",
        "ending",
        "seconds",
        "sent",
        "recvd",
        "lost",
        "jitter",
        "rtt",
        "mos"
    )?;
    for r in records {
        writeln!(
            out,
            "{:<20} {:<38} {:<9} {:<16} {:<16} {:>4} {:<16} {:<15} {:>8.1} {:>6} {:>6} {:>5} {:>5.1}ms {:>7} {:>4}",
            utc(r.started_at),
            r.id,
            r.direction,
            r.caller,
            r.callee,
            r.sip_status,
            sip_reason(r.sip_status),
            r.ending,
            r.duration_ms as f64 / 1000.0,
            r.packets_sent,
            r.packets_received,
            r.packets_lost,
            r.jitter_ms,
            r.rtt_ms.map_or("-".to_string(), |ms| format!("{ms:.1}ms")),
            r.mos.map_or("-".to_string(), |m| format!("{m:.2}"))
        )?;
    }
    Ok(())
}

pub async fn org(config: Config, org: &str) -> Result<()> {
    let (apps, numbers) = store(&config).await?.org_inventory(org).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "org {org}: {} app(s), {} channel number(s)", apps.len(), numbers.len())?;
    let off = |disabled: bool| if disabled { "  (disabled)" } else { "" };
    for app in apps {
        writeln!(out, "  app {}  {}{}", app.id, app.name, off(app.disabled))?;
    }
    for n in numbers {
        let via = n.provider.as_deref().unwrap_or("simulator");
        writeln!(out, "  {:<12} {:<24} via {via}{}", n.channel, n.number, off(n.disabled))?;
    }
    Ok(())
}

pub async fn customer(config: Config, org: &str, customer: &str, json: bool) -> Result<()> {
    let store = store(&config).await?;
    let Some(found) = store.find_customer(org, customer).await? else {
        anyhow::bail!("org {org} has no customer with id or number {customer:?}");
    };
    let state = crate::customer::state(&store, org, &found.id).await?;
    let s = crate::customer::summary::summarise(&state);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        return Ok(());
    }
    let gone = if found.decommissioned { " (decommissioned)" } else { "" };
    writeln!(out, "customer {}{gone}", s.customer_id)?;
    writeln!(out, "  numbers        {}", s.numbers.join(", "))?;
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    writeln!(out, "  tags           {}", pairs(&s.tags))?;
    writeln!(out, "  secondary ids  {}", pairs(&s.secondary_ids))?;
    writeln!(out, "  metadata       {}", pairs(&s.metadata))?;
    writeln!(out, "  activity       {} session(s)", s.activity_sessions)?;
    writeln!(out, "messages (latest {}, oldest first)", s.messages.len())?;
    for m in &s.messages {
        let status = m.status.as_deref().map(|st| format!(" [{st}]")).unwrap_or_default();
        writeln!(
            out,
            "  {}  {:<3} {:<8} {:<14} {}{status}",
            utc(m.at),
            m.direction,
            m.channel,
            m.channel_number,
            m.text
        )?;
    }
    writeln!(out, "wallets")?;
    for w in &s.wallets {
        writeln!(out, "  {:<20} {} available {} actual {}", w.wallet_id, w.currency, w.available, w.actual)?;
    }
    writeln!(out, "payments (latest {}, oldest first)", s.payments.len())?;
    for p in &s.payments {
        writeln!(
            out,
            "  {}  {} {} {} -> {}  {}  {}",
            utc(p.at),
            p.currency,
            p.amount,
            p.from,
            p.to,
            p.status,
            p.transaction_id
        )?;
    }
    Ok(())
}

fn switched(switch: super::Switch) -> (String, String, bool) {
    match switch {
        super::Switch::Disable { id, org } => (id, org, true),
        super::Switch::Enable { id, org } => (id, org, false),
    }
}

pub async fn switch_app(config: Config, switch: super::Switch) -> Result<()> {
    let (app, org, disable) = switched(switch);
    if !store(&config).await?.set_app_disabled(&org, &app, disable).await? {
        anyhow::bail!("org {org} has no app {app}");
    }
    let what =
        if disable { "disabled: its SETUPs are refused and open sockets close within seconds" } else { "enabled" };
    writeln!(std::io::stdout().lock(), "app {app} of org {org} {what}")?;
    Ok(())
}

pub async fn switch_number(config: Config, switch: super::Switch, channel: Option<&str>) -> Result<()> {
    let (number, org, disable) = switched(switch);
    let Some(channel) = channel else { anyhow::bail!("--channel is needed (sms, ussd, voice, …)") };
    if !store(&config).await?.set_channel_number_disabled(&org, channel, &number, disable).await? {
        anyhow::bail!("org {org} has no {channel} number {number}");
    }
    let what = if disable { "disabled" } else { "enabled" };
    writeln!(std::io::stdout().lock(), "{channel} number {number} of org {org} {what}")?;
    Ok(())
}
