//! Notification delivery: draining a backlog of `received_message` notifications to an app that
//! answers each at once, over the Elarian path (server-initiated REQUEST_RESPONSE, our RSocket
//! client as the app) and over hodi-sdk's subscription (REQUEST_STREAM with credit) at two
//! window sizes; plus what a stalled hodi-sdk consumer holds in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Responder};
use hodi_sdk::{Credentials, Elarian, Endpoint, Options};
use prost::Message;

/// The Elarian-style app: answers every notification empty, counting them.
pub struct Counting(pub Arc<AtomicUsize>);
impl Responder for Counting {
    fn request_response(&self, _payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(Payload::new(ServerToAppNotificationReply::default().encode_to_vec())) })
    }
}

#[derive(Clone, Copy)]
enum Path {
    Requests,
    Subscription(u32),
}

struct Drained {
    label: String,
    per_second: f64,
    seconds: f64,
    /// hodi-sdk only: notifications held by the client while its consumer read nothing for 1 s.
    held_when_stalled: Option<usize>,
    /// Process CPU (server and app together) per notification drained, in microseconds.
    cpu_us: f64,
}

async fn drain(path: Path, backlog: usize, customers: usize) -> Result<Drained> {
    let server = super::BenchServer::start("notify", |c| c.notify.reply_timeout_ms = 30_000).await?;
    let (running, addr, dev, meta) = (&server.running, server.addr.clone(), server.dev.clone(), server.meta());

    // The backlog: customers text the app while no app is connected (8 phones at once).
    let phone = Arc::new(
        super::messaging::connect(
            &addr,
            AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..meta.clone() },
            Arc::new(hodi_rsocket::echo::Echo::default()),
        )
        .await?,
    );
    let mut tasks = Vec::new();
    for lane in 0..8 {
        let phone = phone.clone();
        tasks.push(tokio::spawn(async move {
            for i in (lane..backlog).step_by(8) {
                let cmd = SimulatorToServerCommand {
                    entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
                        customer_number: format!("+2547{:08}", i % customers),
                        channel_number: Some(MessagingChannelNumber {
                            channel: MessagingChannel::Sms as i32,
                            number: "21356".into(),
                        }),
                        parts: vec![InboundMessageBody {
                            entry: Some(inbound_message_body::Entry::Text(format!("m{i}"))),
                        }],
                        ..Default::default()
                    })),
                };
                phone.request_response(Payload::new(cmd.encode_to_vec())).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    anyhow::ensure!(running.hodi.store.outbox_len().await? as usize == backlog, "backlog not queued");

    let options =
        Options::new(Endpoint::Tcp(addr.clone()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()));
    let started;
    let cpu_started;
    let mut held_when_stalled = None;
    let label;
    let _keep: Box<dyn std::any::Any>;
    match path {
        Path::Requests => {
            label = "server-initiated requests (Elarian SDK path)".to_string();
            let count = Arc::new(AtomicUsize::new(0));
            profile_control("enable");
            cpu_started = super::cpu_seconds();
            started = Instant::now();
            _keep = Box::new(super::messaging::connect(&addr, meta.clone(), Arc::new(Counting(count))).await?);
        }
        Path::Subscription(window) => {
            label = format!("hodi-sdk subscription, window {window}");
            let mut opts = options.clone();
            opts.notification_window = window;
            let client = Elarian::connect(opts);
            client.connected(Duration::from_secs(10)).await?;
            let mut stream = client.notifications()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Sent and unanswered, as the server counts them: the client's buffers included.
            held_when_stalled = Some(running.hodi.sockets.awaiting_on_subscriptions(&dev.org_id, &dev.app_id));
            cpu_started = super::cpu_seconds();
            started = Instant::now();
            tokio::spawn(async move {
                // Answer each as soon as it arrives (dropping answers empty, in the background).
                while let Some(n) = stream.next_within(Duration::from_secs(60)).await {
                    drop(n);
                }
            });
            _keep = Box::new(client);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while running.hodi.store.outbox_len().await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "{label}: backlog not drained in 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_us = (super::cpu_seconds() - cpu_started) * 1e6 / backlog as f64;
    profile_control("disable");
    drop(_keep);
    server.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Drained { label, per_second: backlog as f64 / seconds, seconds, held_when_stalled, cpu_us })
}

/// With `PERF_CTL_FIFO` set (`perf record --control fifo:…  -D -1`), profiles the drain only.
fn profile_control(command: &str) {
    if let Ok(path) = std::env::var("PERF_CTL_FIFO") {
        if let Err(e) = std::fs::write(path, format!("{command}\n")) {
            eprintln!("perf control: {e}");
        }
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let backlog = super::arg(args, "--backlog", 20_000.0)? as usize;
    let customers = super::arg(args, "--customers", 2_000.0)? as usize;
    let rounds = super::arg(args, "--rounds", 3.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // `--only requests`: the Elarian path alone (for profiling).
    let only_requests = args.iter().any(|a| a == "requests");
    let paths: &[Path] = if only_requests {
        &[Path::Requests]
    } else {
        &[Path::Requests, Path::Subscription(4), Path::Subscription(32)]
    };
    let mut rows = Vec::new();
    for &path in paths {
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        let mut held = None;
        let mut label = String::new();
        for _ in 0..rounds.max(1) {
            let d = runtime.block_on(drain(path, backlog, customers))?;
            eprintln!(
                "{}: {:.0}/s ({:.1} s), {:.1} µs CPU each, held when stalled {:?}",
                d.label, d.per_second, d.seconds, d.cpu_us, d.held_when_stalled
            );
            rates.push(d.per_second);
            cpus.push(d.cpu_us);
            held = d.held_when_stalled.max(held);
            label = d.label;
        }
        rows.push((label, super::median(rates), super::median(cpus), held));
    }
    if only_requests {
        return Ok(());
    }
    let base = rows[0].1;
    let mut table = String::new();
    for (label, rate, cpu, held) in &rows {
        let held = held.map_or("—".to_string(), |h| h.to_string());
        table.push_str(&format!("| {label} | {rate:.0}/s | {:.2}× | {cpu:.1} µs | {held} |\n", rate / base));
    }
    let (store, flag) = super::store_used();
    let section = format!(
        "## Notification delivery (`hodi-bench notifications`)\n\n\
         On {store}: a backlog of {backlog} `received_message` notifications ({customers} customers) is queued while no app is\n\
         connected; then an app connects and answers each at once. Requests: the default per-customer window (32\n\
         unanswered per customer), at most what the socket's outbound queue takes per look; subscriptions: one per\n\
         customer at a time, the client's credit window as given. Timed until the outbox is empty. Median of {rounds} runs,\n\
         a fresh server each; the app and the server share the 2 cores (one process: \"CPU\" is both together, per\n\
         notification, from /proc at 10 ms resolution). \"Held when stalled\": notifications the hodi-sdk client had in\n\
         memory after its consumer read nothing for 1 s — the rest waited in the server's outbox.\n\n\
         | path | drained | vs requests | CPU per notification | held when stalled |\n| --- | ---: | ---: | ---: | ---: |\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- notifications{flag}`.\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Notification delivery", &section)
}
