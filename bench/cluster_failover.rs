//! Failover: `hodi serve` nodes in processes of their own (`hodi-bench --serve-node`), one
//! PostgreSQL database and Redis; the app has a socket on node A (which holds its delivery lease)
//! and one on node B; a phone on node B texts the app every 5 ms. Node A is killed (SIGKILL) and
//! the time is taken from the kill to the first notification node B delivers; every message texted
//! before, during and after must reach the app (at least once). Run with the default heartbeat and
//! lease and with short ones.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Responder};
use prost::Message;
use tokio::io::AsyncReadExt;

use super::messaging::connect;

/// `hodi-bench --serve-node`: a node on the database, node name, Redis and timings given in the
/// environment; prints its address (and the dev tenant's org, app and key, if it made them), then
/// serves until killed or its stdin closes.
pub fn serve_node() -> Result<()> {
    let env = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let node = env("HODI_BENCH_NODE")?;
        let dir = std::env::temp_dir().join(format!("hodi-bench-node-{node}-{}", std::process::id()));
        let mut config = super::bench_config(&dir);
        config.database_url = Some(env("HODI_BENCH_DATABASE")?);
        config.cluster.node_id = node;
        config.cluster.redis_url = env("HODI_BENCH_REDIS")?;
        config.cluster.heartbeat_ms = env("HODI_BENCH_HEARTBEAT_MS")?.parse()?;
        config.cluster.lease_ms = env("HODI_BENCH_LEASE_MS")?.parse()?;
        let running = hodi::server::start(config).await?;
        let addr = running.bound.tcp.context("tcp listener")?;
        let mut out = std::io::stdout();
        match &running.dev {
            Some(d) => writeln!(out, "{addr} {} {} {}", d.org_id, d.app_id, d.api_key)?,
            None => writeln!(out, "{addr}")?,
        }
        out.flush()?;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while stdin.read(&mut buf).await.unwrap_or(0) > 0 {}
        running.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}

struct Node {
    child: Child,
    line: Vec<String>,
}

impl Node {
    fn start(node: &str, database: &str, redis: &str, timings: (u64, u64)) -> Result<Node> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve-node")
            .env("HODI_BENCH_NODE", node)
            .env("HODI_BENCH_DATABASE", database)
            .env("HODI_BENCH_REDIS", redis)
            .env("HODI_BENCH_HEARTBEAT_MS", timings.0.to_string())
            .env("HODI_BENCH_LEASE_MS", timings.1.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning a node")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        if line.trim().is_empty() {
            let _ = child.kill();
            bail!("node {node} did not start");
        }
        Ok(Node { child, line: line.split_whitespace().map(str::to_string).collect() })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app: records which texts it was given, and when, on this socket.
struct Recording(Arc<Mutex<Vec<(String, Instant)>>>);
impl Responder for Recording {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let seen = self.0.clone();
        Box::pin(async move {
            let n = ServerToAppNotification::decode(payload.data).map_err(|e| RemoteError::invalid(e.to_string()))?;
            if let Some(server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
                entry: Some(server_to_app_customer_notification::Entry::ReceivedMessage(m)),
                ..
            })) = n.entry
            {
                let text = m.parts.iter().find_map(|p| match &p.entry {
                    Some(inbound_message_body::Entry::Text(t)) => Some(t.clone()),
                    _ => None,
                });
                seen.lock().unwrap_or_else(|p| p.into_inner()).push((text.unwrap_or_default(), Instant::now()));
            }
            Ok(Payload::new(ServerToAppNotificationReply::default().encode_to_vec()))
        })
    }
}

pub struct Failover {
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
    /// From the kill to the first notification the surviving node delivered.
    pub first_after_kill: Duration,
    /// Messages texted in the run; all arrived.
    pub messages: usize,
}

/// One failover with `timings` (heartbeat, lease) on a fresh database.
pub async fn run(redis: &str, timings: (u64, u64), round: usize) -> Result<Failover> {
    let name = format!("failover{}_{round}", timings.1);
    let database = super::fresh_database(&name)?.context("the failover benchmark needs --postgres")?;
    let mut a = Node::start("failover-a", &database, redis, timings)?;
    let [_, org, app, key] = &a.line[..] else { bail!("node A said {:?}", a.line) };
    let meta = AppConnectionMetadata {
        org_id: org.clone(),
        app_id: app.clone(),
        api_key: Some(key.clone()),
        ..Default::default()
    };
    let b = Node::start("failover-b", &database, redis, timings)?;
    let store = hodi::store::Store::open(&database).await?;

    let on_a = Arc::new(Mutex::new(Vec::new()));
    let on_b = Arc::new(Mutex::new(Vec::new()));
    let _app_a = connect(&a.line[0], meta.clone(), Arc::new(Recording(on_a.clone()))).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.delivery_holder(app, hodi::store::now_ms()).await?.as_deref() != Some("failover-a") {
        anyhow::ensure!(Instant::now() < deadline, "node A never took the app's lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _app_b = connect(&b.line[0], meta.clone(), Arc::new(Recording(on_b.clone()))).await?;
    let simulator = AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..meta };
    let phone = connect(&b.line[0], simulator, Arc::new(hodi_rsocket::echo::Echo::default())).await?;

    // Text every 5 ms: 1 s before the kill, then until the lease has run out and 3 s more.
    let texting = Duration::from_millis(1000 + timings.1 + 3000);
    let texts = tokio::spawn(async move {
        let started = Instant::now();
        let mut sent = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while started.elapsed() < texting {
            tick.tick().await;
            let cmd = SimulatorToServerCommand {
                entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
                    customer_number: format!("+2547300{:05}", sent % 100),
                    channel_number: Some(MessagingChannelNumber {
                        channel: MessagingChannel::Sms as i32,
                        number: "21356".into(),
                    }),
                    parts: vec![InboundMessageBody {
                        entry: Some(inbound_message_body::Entry::Text(format!("t{sent}"))),
                    }],
                    ..Default::default()
                })),
            };
            phone.request_response(Payload::new(cmd.encode_to_vec())).await?;
            sent += 1;
        }
        anyhow::Ok(sent)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.child.kill()?;
    let killed = Instant::now();
    let _ = a.child.wait();
    let sent = texts.await??;

    let want: HashSet<String> = (0..sent).map(|i| format!("t{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: HashSet<String> = on_a
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .chain(on_b.lock().unwrap_or_else(|p| p.into_inner()).iter())
            .map(|(t, _)| t.clone())
            .collect();
        if want.is_subset(&seen) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {sent} texts never reached the app",
            want.difference(&seen).count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = on_b
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at > killed)
        .min()
        .context("node B delivered nothing after the kill")?;
    drop((a, b));
    store.pool().close().await;
    super::drop_database(&name);
    Ok(Failover { heartbeat_ms: timings.0, lease_ms: timings.1, first_after_kill: first - killed, messages: sent })
}
