//! The fast path between nodes: Redis publish/subscribe wake-ups.
//!
//! A commit that queued notifications on this node is published on [`OUTBOX`] (the node's id as
//! payload); every other node, on hearing it, looks at its outbox at once instead of at its next
//! poll. That is all Redis carries here: losing a message, or Redis itself, costs latency (the
//! poll finds the notification), never a notification. When Redis is unreachable the bus says so
//! once, keeps trying, and says so again when it is back.
//!
//! Owns the Redis connections and the channel names. Must not carry data: PostgreSQL is the truth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::Hodi;

/// The channel commits that queued notifications are announced on.
pub const OUTBOX: &str = "hodi:outbox";
/// Announcements are at most this often per node: a burst of commits is one wake-up.
const COALESCE: Duration = Duration::from_millis(2);
/// A publish that takes longer is given up (the poll covers it).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
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
pub fn start(hodi: Arc<Hodi>, node: String, shutdown: CancellationToken) -> anyhow::Result<()> {
    let url = hodi.config.cluster.redis_url.trim().to_string();
    if url.is_empty() {
        return Ok(());
    }
    let client = redis::Client::open(url.as_str())
        .map_err(|e| anyhow::anyhow!("cluster.redis_url {}: {e}", crate::store::redact(&url)))?;
    let reachable = Arc::new(Reachable::default());
    tokio::spawn(announce(hodi.clone(), client.clone(), node.clone(), reachable.clone(), shutdown.clone()));
    tokio::spawn(listen(hodi, client, node, reachable, shutdown));
    Ok(())
}

/// Publishes a wake-up after each burst of this node's commits that queued notifications.
async fn announce(
    hodi: Arc<Hodi>,
    client: redis::Client,
    node: String,
    reachable: Arc<Reachable>,
    shutdown: CancellationToken,
) {
    let poll_ms = hodi.config.notify.outbox_poll_ms;
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hodi.store.outbox_committed_here().notified() => {}
        }
        let published = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let c = match &mut connection {
                Some(c) => c,
                None => connection.insert(client.get_multiplexed_async_connection().await?),
            };
            redis::cmd("PUBLISH").arg(OUTBOX).arg(&node).query_async::<i64>(c).await
        })
        .await;
        match published {
            Ok(Ok(_)) => reachable.worked(&node),
            Ok(Err(e)) => {
                connection = None;
                reachable.failed(&node, "publishing", &e, poll_ms);
            }
            Err(_) => {
                connection = None;
                reachable.failed(&node, "publishing", &"timed out", poll_ms);
            }
        }
        tokio::time::sleep(COALESCE).await;
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
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(OUTBOX).await?;
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
                    let from: String = message.get_payload().unwrap_or_default();
                    if from != node {
                        hodi.store.outbox_changed().notify_one();
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
