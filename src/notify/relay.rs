//! Asking an app whose sockets are on another node: live USSD and voice sessions cannot wait for
//! the outbox, so a phone on node A that needs an answer from an app connected only to node B
//! sends the notification to B and waits for B's answer (several nodes with Redis). Likewise what
//! an app sends to a customer is offered to the simulator sockets on the other nodes
//! ([`Relay::offer`]), so a phone on any node receives it.
//!
//! Owns the other nodes' names as last seen, the asks in flight (bounded, each with the reply timeout) and the form of the messages
//! between nodes ([`Relayed`]). Must not touch Redis: [`crate::cluster::bus`] carries what
//! [`Relay::ask`] queues and hands back what comes in ([`Relay::answered`]), and serves the other
//! nodes' asks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Asks in flight from this node at most; more are refused at once.
pub const MAX_PENDING: usize = 4096;
/// Messages waiting for the bus to publish them at most.
pub const OUTGOING: usize = 1024;

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Relayed {
    /// Deliver this notification to one of the app's sockets and answer `from`.
    Ask {
        id: u64,
        from: String,
        org_id: String,
        app_id: String,
        notification_id: String,
        /// The encoded `ServerToAppCustomerNotification`, base64.
        notification: String,
    },
    /// Offer this to the org's simulator sockets and answer `from` whether one took it.
    Offer {
        id: u64,
        from: String,
        org_id: String,
        /// The encoded `ServerToSimulatorNotification`, base64.
        notification: String,
    },
    /// The app's reply (an encoded `ServerToAppNotificationReply`, base64; for an offer one byte,
    /// 1 when a simulator took it), or why there is none.
    Answer { id: u64, reply: Result<String, String> },
}

impl Relayed {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Relayed, String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable message between nodes: {e}"))
    }
}

pub fn bytes_to_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn text_to_bytes(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("unreadable payload between nodes: {e}"))
}

/// An app's encoded reply, or why there is none.
pub type Reply = Result<Vec<u8>, String>;

/// Asks in flight, by id: where each one's answer goes.
type Pending = HashMap<u64, oneshot::Sender<Reply>>;

/// A message for the bus to publish to one node.
#[derive(Debug)]
pub struct Outgoing {
    pub to_node: String,
    pub message: Relayed,
}

/// Another node that is up, and the orgs it holds simulator sockets of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub simulator_orgs: std::collections::HashSet<String>,
}

/// This node's asks in flight.
pub struct Relay {
    node: String,
    outgoing: mpsc::Sender<Outgoing>,
    pending: Mutex<Pending>,
    next: AtomicU64,
    /// The other nodes that are up, as the last heartbeat found them.
    peers: Mutex<Vec<Peer>>,
}

impl Relay {
    /// A relay for node `node`; the bus publishes what comes out of the receiver.
    pub fn new(node: &str) -> (Relay, mpsc::Receiver<Outgoing>) {
        let (outgoing, rx) = mpsc::channel(OUTGOING);
        let relay = Relay {
            node: node.to_string(),
            outgoing,
            pending: Mutex::default(),
            next: AtomicU64::new(1),
            peers: Mutex::default(),
        };
        (relay, rx)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The other nodes that are up (set each heartbeat).
    pub fn set_peers(&self, peers: Vec<Peer>) {
        *self.peers.lock().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// The other nodes holding simulator sockets of `org_id`, as of the last heartbeat.
    pub fn simulator_nodes(&self, org_id: &str) -> Vec<String> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.iter().filter(|p| p.simulator_orgs.contains(org_id)).map(|p| p.node.clone()).collect()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks node `to_node` to deliver `notification` (encoded) to one of `app_id`'s sockets there;
    /// the app's encoded reply, or why there is none, within `wait`.
    pub async fn ask(
        &self,
        to_node: &str,
        org_id: &str,
        app_id: &str,
        notification_id: &str,
        notification: &[u8],
        wait: Duration,
    ) -> Reply {
        let from = self.node.clone();
        let (org_id, app_id, notification_id) = (org_id.to_string(), app_id.to_string(), notification_id.to_string());
        let notification = bytes_to_text(notification);
        self.request(to_node, wait, |id| Relayed::Ask { id, from, org_id, app_id, notification_id, notification }).await
    }

    /// Offers `notification` (an encoded `ServerToSimulatorNotification`) to `org_id`'s simulator
    /// sockets on node `to_node`; whether one of them took it within `wait`.
    pub async fn offer(
        &self,
        to_node: &str,
        org_id: &str,
        notification: &[u8],
        wait: Duration,
    ) -> Result<bool, String> {
        let (from, org_id, notification) = (self.node.clone(), org_id.to_string(), bytes_to_text(notification));
        let reply = self.request(to_node, wait, |id| Relayed::Offer { id, from, org_id, notification }).await?;
        Ok(reply == [1])
    }

    /// Sends the message `make` builds with a fresh id to `to_node` and waits for its answer.
    async fn request(&self, to_node: &str, wait: Duration, make: impl FnOnce(u64) -> Relayed) -> Reply {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending();
            if pending.len() >= MAX_PENDING {
                return Err(format!("{MAX_PENDING} asks to other nodes are already waiting"));
            }
            pending.insert(id, tx);
        }
        let message = make(id);
        if self.outgoing.try_send(Outgoing { to_node: to_node.to_string(), message }).is_err() {
            self.pending().remove(&id);
            return Err("too many messages waiting to go to other nodes".into());
        }
        let answer = tokio::time::timeout(wait, rx).await;
        self.pending().remove(&id);
        match answer {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err("the ask was dropped".into()),
            Err(_) => Err(format!("node {to_node} did not answer within {} ms", wait.as_millis())),
        }
    }

    /// Queues this node's answer to another node's ask `id`; dropped when too many messages are
    /// waiting (the asker's wait runs out instead).
    pub fn answer(&self, to_node: &str, id: u64, reply: Reply) {
        let message = Relayed::Answer { id, reply: reply.map(|bytes| bytes_to_text(&bytes)) };
        let _ = self.outgoing.try_send(Outgoing { to_node: to_node.to_string(), message });
    }

    /// The answer to ask `id` (from the other node, or from the bus when it could not be sent).
    pub fn answered(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.pending().remove(&id) {
            let _ = tx.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ask_is_queued_for_the_bus_and_its_answer_returned_and_a_silent_node_times_out() {
        let (relay, mut out) = Relay::new("node-a");
        let relay = std::sync::Arc::new(relay);
        let asking = {
            let relay = relay.clone();
            tokio::spawn(async move {
                relay.ask("node-b", "org", "app", "ntf_1", b"\x01\x02", Duration::from_secs(5)).await
            })
        };
        let sent = out.recv().await.expect("queued for the bus");
        assert_eq!(sent.to_node, "node-b");
        let Relayed::Ask { id, from, notification, .. } = Relayed::decode(&sent.message.encode()).expect("round trip")
        else {
            panic!("not an ask")
        };
        assert_eq!((from.as_str(), text_to_bytes(&notification).expect("bytes")), ("node-a", vec![1, 2]));
        relay.answered(id, Ok(vec![9]));
        assert_eq!(asking.await.expect("joined"), Ok(vec![9]));

        let silent = relay.ask("node-c", "org", "app", "ntf_2", b"", Duration::from_millis(50)).await;
        assert!(silent.is_err_and(|e| e.contains("did not answer")));
        assert!(relay.pending().is_empty(), "a timed-out ask is forgotten");
        assert!(Relayed::decode("{not json").is_err());
    }
}
