//! The fast path between nodes: Redis publish/subscribe wake-ups.
//!
//! A commit that queued notifications on this node is published on [`OUTBOX`] (the node's id as
//! payload); every other node, on hearing it, looks at its outbox at once instead of at its next
//! poll. Losing such a message, or Redis itself, costs latency (the poll finds the notification),
//! never a notification. When Redis is unreachable the bus says so once, keeps trying, and says
//! so again when it is back.
//!
//! Live asks ([`crate::notify::relay`]) travel on each node's own channel ([`inbox`]): an ask is
//! served by delivering to a local socket of the app and answering the asking node's channel.
//! Asks cannot wait for a poll: while Redis is down they fail at once (the phone's session ends
//! as it would with no app connected).
//!
//! Owns the Redis connections and the channel names. Must not keep data: PostgreSQL is the truth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::context::Hodi;
use crate::notify::relay::{text_to_bytes, Outgoing, Relayed};
use crate::wire::ServerToAppCustomerNotification;

/// The channel commits that queued notifications are announced on.
pub const OUTBOX: &str = "hodi:outbox";
/// Announcements are at most this often per node: a burst of commits is one wake-up.
const COALESCE: Duration = Duration::from_millis(2);
/// A publish that takes longer is given up (the poll covers it).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// Other nodes' asks served at once at most; more wait their turn.
const SERVING: usize = 256;
/// Other nodes' asks waiting for a turn at most (a bulk send by tag offers a page's messages at
/// once); beyond, they are answered "busy" at once.
const WAITING: usize = crate::notify::relay::MAX_PENDING;

/// How many asks this node serves at once, and how many it holds at all.
struct Turns {
    serving: Arc<Semaphore>,
    held: Arc<Semaphore>,
}

/// The channel a node's asks and answers come in on.
pub fn inbox(node: &str) -> String {
    format!("hodi:node:{node}")
}

/// Waits between attempts to reach Redis: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);

/// Whether Redis is reachable, as each side last found it; a change is logged once.
#[derive(Default)]
struct Reachable {
    down: AtomicBool,
}

impl Reachable {
    fn failed(&self, node: &str, what: &str, error: &dyn std::fmt::Display, poll_ms: u64) {
        if !self.down.swap(true, Ordering::Relaxed) {
            warn!(node, %error, what, poll_ms, "Redis unreachable: other nodes' notifications are found by polling until it is back");
        }
    }

    fn worked(&self, node: &str) {
        if self.down.swap(false, Ordering::Relaxed) {
            info!(node, "Redis reachable again: wake-ups between nodes resume");
        }
    }
}

/// Starts the bus when `cluster.redis_url` is set: one task announcing this node's commits, one
/// listening for the others'. A URL Redis cannot parse is refused at start.
pub fn start(
    hodi: Arc<Hodi>,
    node: String,
    relayed: Option<mpsc::Receiver<Outgoing>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let url = hodi.config.cluster.redis_url.trim().to_string();
    if url.is_empty() {
        return Ok(());
    }
    let client = redis::Client::open(url.as_str())
        .map_err(|e| anyhow::anyhow!("cluster.redis_url {}: {e}", crate::store::redact(&url)))?;
    let reachable = Arc::new(Reachable::default());
    tokio::spawn(announce(hodi.clone(), client.clone(), node.clone(), relayed, reachable.clone(), shutdown.clone()));
    tokio::spawn(listen(hodi, client, node, reachable, shutdown));
    Ok(())
}

/// Publishes a wake-up after each burst of this node's commits that queued notifications, and
/// the asks and answers the relay queues for other nodes.
async fn announce(
    hodi: Arc<Hodi>,
    client: redis::Client,
    node: String,
    mut relayed: Option<mpsc::Receiver<Outgoing>>,
    reachable: Arc<Reachable>,
    shutdown: CancellationToken,
) {
    let poll_ms = hodi.config.notify.outbox_poll_ms;
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut last_wake = tokio::time::Instant::now();
    loop {
        let (channel, payload, ask) = tokio::select! {
            _ = shutdown.cancelled() => return,
            // A burst of commits is one wake-up: the next waits out the rest of COALESCE.
            _ = async {
                tokio::time::sleep_until(last_wake + COALESCE).await;
                hodi.store.outbox_committed_here().notified().await
            } => {
                last_wake = tokio::time::Instant::now();
                (OUTBOX.to_string(), node.clone(), None)
            }
            out = async {
                match relayed.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(out) = out else { relayed = None; continue };
                let ask = match &out.message {
                    Relayed::Ask { id, .. } | Relayed::Offer { id, .. } => Some(*id),
                    Relayed::Answer { .. } => None,
                };
                (inbox(&out.to_node), out.message.encode(), ask)
            }
        };
        let published = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let c = match &mut connection {
                Some(c) => c,
                None => connection.insert(client.get_multiplexed_async_connection().await?),
            };
            redis::cmd("PUBLISH").arg(&channel).arg(&payload).query_async::<i64>(c).await
        })
        .await;
        let failed = match published {
            Ok(Ok(_)) => {
                reachable.worked(&node);
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_string()),
        };
        if let Some(why) = failed {
            connection = None;
            reachable.failed(&node, "publishing", &why, poll_ms);
            // An ask that cannot be sent fails now rather than at the end of its wait.
            if let (Some(id), Some(relay)) = (ask, &hodi.relay) {
                relay.answered(id, Err(format!("Redis unreachable: {why}")));
            }
        }
    }
}

/// Listens for other nodes' wake-ups and wakes this node's dispatcher; reconnects for as long as
/// the node runs.
async fn listen(
    hodi: Arc<Hodi>,
    client: redis::Client,
    node: String,
    reachable: Arc<Reachable>,
    shutdown: CancellationToken,
) {
    let poll_ms = hodi.config.notify.outbox_poll_ms;
    let mut retry = RETRY_FIRST;
    let turns = Turns { serving: Arc::new(Semaphore::new(SERVING)), held: Arc::new(Semaphore::new(SERVING + WAITING)) };
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(OUTBOX).await?;
            pubsub.subscribe(inbox(&node)).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = tokio::time::timeout(PUBLISH_TIMEOUT * 4, subscribed) => p,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                reachable.worked(&node);
                retry = RETRY_FIRST;
                // Whatever was announced while we were away: look now.
                hodi.store.outbox_changed().notify_one();
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else { break };
                    let payload: String = message.get_payload().unwrap_or_default();
                    if message.get_channel_name() == OUTBOX {
                        if payload != node {
                            hodi.store.outbox_changed().notify_one();
                        }
                        continue;
                    }
                    match Relayed::decode(&payload) {
                        Ok(relayed) => take(&hodi, relayed, &turns),
                        Err(e) => warn!(node = %node, error = %e, "ignored a message from another node"),
                    }
                }
                reachable.failed(&node, "listening", &"connection closed", poll_ms);
            }
            Ok(Err(e)) => reachable.failed(&node, "subscribing", &e, poll_ms),
            Err(_) => reachable.failed(&node, "subscribing", &"timed out", poll_ms),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_LAST);
    }
}

/// What another node sent this one: an answer completes this node's ask; an ask is served in a
/// task of its own (at most [`SERVING`] at once, [`WAITING`] more waiting for a turn, beyond
/// which it is answered "busy").
fn take(hodi: &Arc<Hodi>, relayed: Relayed, turns: &Turns) {
    let Some(relay) = hodi.relay.clone() else { return };
    let (id, from) = match &relayed {
        Relayed::Answer { id, reply } => {
            return relay.answered(*id, reply.clone().and_then(|text| text_to_bytes(&text)));
        }
        Relayed::Ask { id, from, .. } | Relayed::Offer { id, from, .. } => (*id, from.clone()),
    };
    let Ok(held) = turns.held.clone().try_acquire_owned() else {
        relay.answer(&from, id, Err(format!("node {} holds {} asks already", relay.node(), SERVING + WAITING)));
        return;
    };
    let serving = turns.serving.clone();
    let hodi = hodi.clone();
    tokio::spawn(async move {
        let _held = held;
        let Ok(_turn) = serving.acquire_owned().await else { return };
        let reply = match relayed {
            Relayed::Ask { org_id, app_id, notification_id, notification, .. } => {
                serve(&hodi, &org_id, &app_id, &notification_id, &notification).await
            }
            Relayed::Offer { org_id, notification, .. } => offer_here(&hodi, &org_id, &notification).await,
            Relayed::Answer { .. } => return,
        };
        debug!(node = %relay.node(), from = %from, ok = reply.is_ok(), "served another node's ask or offer");
        relay.answer(&from, id, reply);
    });
}

/// Offers another node's message to this node's simulator sockets of the org: one byte, 1 when
/// one of them took it.
async fn offer_here(hodi: &Hodi, org_id: &str, encoded: &str) -> Result<Vec<u8>, String> {
    let bytes = text_to_bytes(encoded)?;
    let notification = crate::wire::ServerToSimulatorNotification::decode(bytes.as_slice())
        .map_err(|e| format!("unreadable simulator notification from another node: {e}"))?;
    let sockets = hodi.simulators.all_in_org(org_id);
    Ok(vec![u8::from(crate::notify::offer_to(hodi, &sockets, &notification).await)])
}

/// Delivers another node's ask to one of the app's sockets here; the app's encoded reply.
async fn serve(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    notification_id: &str,
    encoded: &str,
) -> Result<Vec<u8>, String> {
    let bytes = text_to_bytes(encoded)?;
    let notification = ServerToAppCustomerNotification::decode(bytes.as_slice())
        .map_err(|e| format!("unreadable notification from another node: {e}"))?;
    let wait = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    match crate::notify::send(hodi, org_id, app_id, notification_id, notification, wait).await {
        Ok(reply) => Ok(reply.encode_to_vec()),
        Err(e) => Err(e.to_string()),
    }
}
