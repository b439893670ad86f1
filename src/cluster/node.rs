//! This node's part in a cluster: register, heartbeat, and claim the delivery of the apps it
//! holds sockets for.
//!
//! Owns the node task ([`run`]) and this node's name. Each heartbeat (and whenever a socket comes
//! or goes) it writes its `cluster_nodes` row and claims or renews a lease for every app it holds
//! sockets of; a lease another node holds is tried again next heartbeat, so when that node dies
//! its apps move here within `lease_ms` plus a heartbeat. Leases of apps it no longer holds
//! sockets of are given up at once. Must not deliver anything: the dispatcher does, for the apps
//! [`crate::notify::leases::Delivery`] says are this node's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Cluster;
use crate::context::Hodi;
use crate::notify::relay::Peer;
use crate::store::cluster::{NodeRow, NodeSockets};
use crate::store::now_ms;

/// This node's name: the configured one, else the host's name and a random part (new each start,
/// so a restarted node never mistakes a dead predecessor's leases for its own).
pub fn node_id(config: &Cluster) -> String {
    if !config.node_id.trim().is_empty() {
        return config.node_id.trim().to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &random[..8])
}

/// Heartbeat and lease length as used: at least 100 ms apart, and a lease at least three
/// heartbeats long so one slow renewal does not lose it.
fn timings(config: &Cluster) -> (Duration, Duration) {
    let heartbeat = Duration::from_millis(config.heartbeat_ms.max(100));
    let lease = Duration::from_millis(config.lease_ms).max(heartbeat * 3);
    (heartbeat, lease)
}

/// Runs this node's membership until `shutdown`, then leaves (its leases go at once).
/// `listeners` is what it serves, as JSON.
pub async fn run(hodi: Arc<Hodi>, node: String, listeners: String, shutdown: CancellationToken) {
    let (heartbeat, lease) = timings(&hodi.config.cluster);
    // Stop delivering a margin before the lease ends in the database: another node may take it
    // then, and this node's clock may be a little behind.
    let margin = lease / 5;
    let started_at = now_ms();
    info!(node = %node, heartbeat_ms = heartbeat.as_millis() as u64, lease_ms = lease.as_millis() as u64, "joined the cluster");
    let mut failing = false;
    for beats in 0u64.. {
        // Every few heartbeats: a dead node's provider claims go back to the queues.
        let sweep = beats % CLAIM_SWEEP_EVERY == 0;
        match beat(&hodi, &node, &listeners, started_at, lease, margin, sweep).await {
            Ok(()) if failing => {
                failing = false;
                info!(node = %node, "cluster heartbeat works again");
            }
            Ok(()) => {}
            // Said once per outage; the leases run out by themselves meanwhile, so this node
            // stops delivering before another starts.
            Err(e) if !failing => {
                failing = true;
                warn!(node = %node, error = %e, "cluster heartbeat failed; retrying every heartbeat");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(heartbeat) => {}
            _ = hodi.sockets.changed.notified() => {}
            _ = hodi.simulators.changed.notified() => {}
        }
    }
    hodi.delivery.lose_all();
    match hodi.store.node_leave(&node).await {
        Ok(()) => info!(node = %node, "left the cluster"),
        Err(e) => warn!(node = %node, error = %e, "leaving the cluster; its leases run out by themselves"),
    }
}

/// How many heartbeats apart dead nodes' provider claims are looked for.
const CLAIM_SWEEP_EVERY: u64 = 5;

/// One heartbeat: the node's row, then a claim for each app it holds sockets of, then giving up
/// the apps it no longer has sockets of; with `sweep`, releasing dead nodes' provider claims.
async fn beat(
    hodi: &Hodi,
    node: &str,
    listeners: &str,
    started_at: i64,
    lease: Duration,
    margin: Duration,
    sweep: bool,
) -> anyhow::Result<()> {
    let counts = hodi.sockets.counts();
    let sockets = NodeSockets { apps: counts.clone(), simulators: hodi.simulators.orgs() };
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    hodi.store
        .node_heartbeat(&NodeRow {
            id: node.to_string(),
            listeners: listeners.to_string(),
            sockets: serde_json::to_string(&sockets)?,
            started_at,
            heartbeat_at: now,
            expires_at: now.saturating_add(lease_ms),
        })
        .await?;
    let mut gained = false;
    for app in counts.keys() {
        // Timed from before the claim: the lease in the database runs from no earlier than this.
        let asked = Instant::now();
        let now = now_ms();
        if hodi.store.claim_delivery(app, node, now, now.saturating_add(lease_ms)).await? {
            gained |= hodi.delivery.hold(app, asked + lease - margin);
        } else {
            hodi.delivery.lose(app);
        }
    }
    for app in hodi.delivery.held().into_iter().filter(|a| !counts.contains_key(a)) {
        hodi.delivery.lose(&app);
        hodi.store.release_delivery(&app, node).await?;
    }
    if gained {
        // Notifications may have waited for a node to take this app.
        hodi.store.outbox_changed().notify_one();
    }
    if let Some(relay) = &hodi.relay {
        let now = now_ms();
        let peers = hodi.store.nodes().await?.into_iter().filter(|n| n.expires_at > now && n.id != node);
        relay.set_peers(
            peers
                .map(|n| {
                    let sockets: NodeSockets = serde_json::from_str(&n.sockets).unwrap_or_default();
                    Peer { node: n.id, simulator_orgs: sockets.simulators.into_keys().collect() }
                })
                .collect(),
        );
    }
    if sweep {
        let released = hodi.store.release_claims_of_dead_nodes().await?;
        if released > 0 {
            info!(node, released, "released provider claims of nodes that are not up");
        }
    }
    Ok(())
}
