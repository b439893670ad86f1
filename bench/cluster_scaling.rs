//! Scaling out: the same work on 1, 2 and 3 Hodi nodes (in this process, one PostgreSQL database
//! each run, Redis for wake-ups), with the CPU it took per operation, which must not grow with
//! the number of nodes.
//!
//! Three apps of the dev org, app i's socket on node i mod n, and app i's phone (a simulator
//! socket) on node i+1 mod n: with two or three nodes every notification is produced on one node
//! and delivered by another. Notification delivery: each phone texts its app `--messages` times
//! (8 at once); timed until every app has answered every one. Send-by-tag: each app sends one SMS
//! by tag to its own `--tagged` customers at once (no simulator takes them: each is stored QUEUED,
//! the store path alone); timed until the three works are done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{StreamExt, TryStreamExt};
use hodi::store::customers::StoredNumber;
use hodi::store::identity::Index;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester};
use prost::Message;

use super::messaging::{connect, sms_by_tag};
use super::notifications::Counting;
use super::BenchServer;

const APPS: usize = 3;

pub struct Scale {
    pub notifications: usize,
    pub notify_seconds: f64,
    pub notify_cpu_us: f64,
    pub messages: usize,
    pub tag_seconds: f64,
    pub tag_cpu_us: f64,
}

fn node_config(redis: &str, node: String) -> impl FnOnce(&mut hodi::config::Config) {
    let redis = redis.to_string();
    move |c| {
        c.cluster.node_id = node;
        // `--redis none`: nodes without the fast path (for comparison).
        c.cluster.redis_url = if redis == "none" { String::new() } else { redis };
        c.cluster.heartbeat_ms = 200;
    }
}

fn sms_from(number: String, text: String) -> SimulatorToServerCommand {
    SimulatorToServerCommand {
        entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
            customer_number: number,
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Sms as i32,
                number: "21356".into(),
            }),
            parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Text(text)) }],
            ..Default::default()
        })),
    }
}

/// Waits until `done` holds, checking every 5 ms, for at most `limit`.
async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done().await? {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub async fn run(nodes: usize, redis: &str, messages: usize, tagged: usize) -> Result<Scale> {
    let name = format!("scale{nodes}");
    let first = BenchServer::start(&name, node_config(redis, format!("{name}-0"))).await?;
    let mut servers = vec![first];
    for i in 1..nodes {
        let joined =
            BenchServer::join(&servers[0], &format!("{name}-{i}"), node_config(redis, format!("{name}-{i}"))).await?;
        servers.push(joined);
    }
    let store = servers[0].running.hodi.store.clone();
    let dev = servers[0].dev.clone();
    let mut apps = vec![dev.app_id.clone()];
    for i in 1..APPS {
        apps.push(store.create_app(&dev.org_id, None, &format!("bench app {i}")).await?);
    }
    let meta = |app: &str| AppConnectionMetadata { app_id: app.to_string(), ..servers[0].meta() };

    // Apps, each delivered by its own node (wait for the leases), and phones on the next node.
    let answered: Vec<Arc<AtomicUsize>> = (0..APPS).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut sockets = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        sockets.push(connect(&servers[i % nodes].addr, meta(app), Arc::new(Counting(answered[i].clone()))).await?);
    }
    for (i, app) in apps.iter().enumerate() {
        let node = servers[i % nodes].running.hodi.config.cluster.node_id.clone();
        until("the app's delivery lease", Duration::from_secs(10), async || {
            Ok(store.delivery_holder(app, hodi::store::now_ms()).await?.as_deref() == Some(node.as_str()))
        })
        .await?;
    }
    let mut phones = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let simulator = AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..meta(app) };
        let echo = Arc::new(hodi_rsocket::echo::Echo::default());
        phones.push(Arc::new(connect(&servers[(i + 1) % nodes].addr, simulator, echo).await?));
    }

    // Notification delivery: a warm-up of 100 per app, then the measured run.
    let text_all = |round: &'static str, count: usize| {
        let phones = phones.clone();
        async move {
            let mut tasks = Vec::new();
            for (app, phone) in phones.iter().enumerate() {
                for lane in 0..8 {
                    let phone: Arc<Requester> = phone.clone();
                    tasks.push(tokio::spawn(async move {
                        for m in (lane..count).step_by(8) {
                            let cmd = sms_from(format!("+2547{app}{:07}", m % 1000), format!("{round}{m}"));
                            phone.request_response(Payload::new(cmd.encode_to_vec())).await?;
                        }
                        anyhow::Ok(())
                    }));
                }
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        }
    };
    let all_answered = |want: usize| {
        let answered = answered.clone();
        async move || Ok(answered.iter().all(|a| a.load(Ordering::Relaxed) >= want))
    };
    text_all("w", 100).await?;
    until("warm-up notifications", Duration::from_secs(60), all_answered(100)).await?;
    let cpu = super::cpu_seconds();
    let started = Instant::now();
    text_all("m", messages).await?;
    until("notifications", Duration::from_secs(600), all_answered(100 + messages)).await?;
    let notify_seconds = started.elapsed().as_secs_f64();
    let notifications = APPS * messages;
    let notify_cpu_us = (super::cpu_seconds() - cpu) * 1e6 / notifications as f64;

    // Send-by-tag with no simulator connected (every node forgets the phones within a heartbeat):
    // each app's own customers, tagged `app<i>`.
    for phone in &phones {
        phone.close();
    }
    drop(phones);
    until("the phones gone from every node", Duration::from_secs(10), async || {
        let nodes = store.nodes().await?;
        Ok(nodes.iter().all(|n| !n.sockets.contains("\"simulators\":{\"")))
    })
    .await?;
    let org = dev.org_id.as_str();
    futures_util::stream::iter(0..APPS * tagged)
        .map(|i| {
            let store = store.clone();
            async move {
                let n = StoredNumber { provider: 2, number: format!("+2548{i:08}"), partition: String::new() };
                let (c, _) = store.customer_by_number(org, &n).await?;
                let tag = Index { key: format!("app{}", i / tagged), value: "yes".into(), expires_at: None };
                store.upsert_tags(org, &c.id, &[tag]).await
            }
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = super::cpu_seconds();
    let started = Instant::now();
    let mut works = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        let reply = socket.request_response(Payload::new(sms_by_tag(&format!("app{i}")).encode_to_vec())).await?;
        match AppToServerCommandReply::decode(reply.data)?.entry {
            Some(app_to_server_command_reply::Entry::TagCommand(TagCommandReply {
                status: true,
                work_id: Some(work),
                ..
            })) => works.push(work),
            other => anyhow::bail!("send by tag refused: {other:?}"),
        }
    }
    until("send-by-tag", Duration::from_secs(600), async || {
        for work in &works {
            if store.work(work).await?.is_none_or(|w| w.state == "running") {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let tag_seconds = started.elapsed().as_secs_f64();
    let messages_sent = APPS * tagged;
    let tag_cpu_us = (super::cpu_seconds() - cpu) * 1e6 / messages_sent as f64;
    for work in &works {
        let w = store.work(work).await?;
        anyhow::ensure!(
            w.as_ref().is_some_and(|w| w.state == "done" && w.customers == tagged as i64),
            "work {work}: {w:?}"
        );
    }

    drop(sockets);
    let mut servers = servers.into_iter();
    let first = servers.next();
    for joined in servers {
        joined.stop_joined();
    }
    if let Some(first) = first {
        first.stop();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Scale { notifications, notify_seconds, notify_cpu_us, messages: messages_sent, tag_seconds, tag_cpu_us })
}
