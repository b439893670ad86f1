//! Customer state: durable updates (`updateCustomerTag`, `updateCustomerMetadata`) as fast as 8 app
//! sockets with 16 in flight each can send them, and `getCustomerState` latency at a fixed offered
//! rate (open loop: requests leave on schedule whether or not earlier ones were answered, and a
//! latency counts from the scheduled time, so a stall is not hidden by the client slowing down).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester};
use prost::Message;

const SOCKETS: usize = 8;
const IN_FLIGHT: usize = 16;
const CUSTOMERS: usize = 1_000;

fn number(i: usize) -> CustomerNumber {
    CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: format!("+2547004{:05}", i % CUSTOMERS),
        partition: None,
    }
}

async fn send(app: &Requester, cmd: Cmd) -> Result<()> {
    let reply = app.request_response(Payload::new(AppToServerCommand { entry: Some(cmd) }.encode_to_vec())).await?;
    let reply = AppToServerCommandReply::decode(reply.data)?;
    match reply.entry {
        Some(app_to_server_command_reply::Entry::UpdateCustomerState(r)) if r.status => Ok(()),
        Some(app_to_server_command_reply::Entry::GetCustomerState(r)) if r.status => Ok(()),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}

fn tag(i: usize) -> Cmd {
    Cmd::UpdateCustomerTag(UpdateCustomerTagCommand {
        customer: Some(update_customer_tag_command::Customer::CustomerNumber(number(i))),
        updates: vec![CustomerIndex {
            mapping: Some(IndexMapping { key: format!("k{}", i % 7), value: Some(format!("v{i}")) }),
            expires_at: None,
        }],
    })
}

fn metadata(i: usize) -> Cmd {
    Cmd::UpdateCustomerMetadata(UpdateCustomerMetadataCommand {
        customer: Some(update_customer_metadata_command::Customer::CustomerNumber(number(i))),
        updates: [(
            format!("m{}", i % 5),
            DataMapValue { value: Some(data_map_value::Value::StringVal(format!("{i}"))) },
        )]
        .into_iter()
        .collect(),
    })
}

fn get_state(i: usize) -> Cmd {
    Cmd::GetCustomerState(GetCustomerStateCommand {
        customer: Some(get_customer_state_command::Customer::CustomerNumber(number(i))),
    })
}

struct Row {
    what: String,
    group_commit: bool,
    requests: usize,
    per_second: f64,
    cpu_us: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Closed loop: `SOCKETS` x `IN_FLIGHT` senders, each sending its next command once answered.
async fn closed(apps: &[Requester], per_sender: usize, make: fn(usize) -> Cmd) -> Result<(usize, f64, f64, Vec<f64>)> {
    let cpu = super::cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, app) in apps.iter().enumerate() {
        for lane in 0..IN_FLIGHT {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_sender);
                for k in 0..per_sender {
                    let i = (s * IN_FLIGHT + lane) * per_sender + k;
                    let t = Instant::now();
                    send(&app, make(i)).await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                anyhow::Ok(latencies)
            }));
        }
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((latencies.len(), seconds, super::cpu_seconds() - cpu, latencies))
}

/// Open loop: `rate` getCustomerState per second for `seconds`, spread over the sockets. Requests
/// the server refused (it sheds load it cannot take) are counted apart, not timed.
async fn open(apps: &[Requester], rate: f64, seconds: f64) -> Result<(usize, f64, f64, Vec<f64>, usize)> {
    let total = (rate * seconds) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let cpu = super::cpu_seconds();
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + period * i as u32;
        tokio::time::sleep_until(due).await;
        let app = apps[i % apps.len()].clone();
        tasks.push(tokio::spawn(
            async move { send(&app, get_state(i)).await.map(|()| due.elapsed().as_secs_f64() * 1e6) },
        ));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut refused = 0;
    for t in tasks {
        match t.await? {
            Ok(latency) => latencies.push(latency),
            Err(_) => refused += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((latencies.len(), elapsed, super::cpu_seconds() - cpu, latencies, refused))
}

async fn run(per_sender: usize, rate: f64, seconds: f64, group_commit: bool) -> Result<Vec<Row>> {
    let server = super::BenchServer::start("state", |c| c.database.group_commit = group_commit).await?;
    let meta = AppConnectionMetadata { simplex_mode: true, ..server.meta() };
    let echo: Arc<dyn hodi_rsocket::Responder> = Arc::new(hodi_rsocket::echo::Echo::default());
    let mut apps = Vec::new();
    for _ in 0..SOCKETS {
        apps.push(super::messaging::connect(&server.addr, meta.clone(), echo.clone()).await?);
    }
    // The customers exist first, so that every measured update is an update.
    for i in 0..CUSTOMERS {
        send(&apps[i % SOCKETS], tag(i)).await?;
    }
    let mut rows = Vec::new();
    let mut push = |what: String, (requests, seconds, cpu, mut latencies): (usize, f64, f64, Vec<f64>)| {
        latencies.sort_by(|a, b| a.total_cmp(b));
        rows.push(Row {
            what,
            group_commit,
            requests,
            per_second: requests as f64 / seconds,
            cpu_us: cpu * 1e6 / requests.max(1) as f64,
            p50_us: super::percentile(&latencies, 0.5),
            p99_us: super::percentile(&latencies, 0.99),
        });
    };
    push("updateCustomerTag".into(), closed(&apps, per_sender, tag).await?);
    push("updateCustomerMetadata".into(), closed(&apps, per_sender, metadata).await?);
    if group_commit {
        let (answered, elapsed, cpu, latencies, refused) = open(&apps, rate, seconds).await?;
        let what = format!("getCustomerState at {rate:.0}/s offered (open loop; {refused} refused)");
        push(what, (answered, elapsed, cpu, latencies));
    }
    server.stop();
    Ok(rows)
}

pub fn main(args: &[String]) -> Result<()> {
    let per_sender = super::arg(args, "--updates", 400.0)? as usize;
    let rate = super::arg(args, "--rate", 10_000.0)?;
    let seconds = super::arg(args, "--seconds", 3.0)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = runtime.block_on(run(per_sender, rate, seconds, false))?;
    rows.extend(runtime.block_on(run(per_sender, rate, seconds, true))?);
    let mut table = String::from(
        "| command | group commit | requests | per second | CPU/request | p50 | p99 |\n\
         | --- | :---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        eprintln!(
            "{} (group commit {}): {} in {:.0}/s, {:.0} us CPU each, p50 {:.0} us, p99 {:.0} us",
            r.what, r.group_commit, r.requests, r.per_second, r.cpu_us, r.p50_us, r.p99_us
        );
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} µs | {:.2} ms | {:.2} ms |\n",
            r.what,
            if r.group_commit { "on" } else { "off" },
            r.requests,
            r.per_second,
            r.cpu_us,
            r.p50_us / 1000.0,
            r.p99_us / 1000.0
        ));
    }
    let (store, flag) = super::store_used();
    let section = format!(
        "## Customer state (`hodi-bench state`)\n\n\
         Durable updates on {store}: {SOCKETS} app sockets with {IN_FLIGHT} commands in flight each (closed loop), one tag or\n\
         one metadata key per command over {CUSTOMERS} customers, each update committed before its reply; with group commit\n\
         off and on. Then getCustomerState offered at {rate:.0}/s for {seconds:.0} s (open loop: a latency counts from the\n\
         request's scheduled time). CPU is the bench process's (server and load client) per request.\n\n\
         {table}\n\
         Measured by `cargo run --release -p hodi-bench -- state{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Customer state", &section)
}
