//! The nodes sharing one database, and which of them delivers each app's notifications.
//!
//! Owns `cluster_nodes` and `delivery_leases`. Must not decide when a node heartbeats or which
//! apps it claims: that is [`crate::cluster`]. Lease times are the nodes' wall clocks (kept in step
//! by NTP); a lease is claimed only once the previous holder's has passed.

use anyhow::Result;
use sqlx::Row;

use super::Store;

/// A node as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    /// JSON: the listeners it serves.
    pub listeners: String,
    /// JSON: the sockets it holds, [`NodeSockets`].
    pub sockets: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Past this, the node counts as dead.
    pub expires_at: i64,
}

/// The sockets a node holds, as its row stores them (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NodeSockets {
    /// App id → notification-capable app sockets.
    pub apps: std::collections::BTreeMap<String, usize>,
    /// Org id → simulator sockets.
    pub simulators: std::collections::BTreeMap<String, usize>,
}

/// Who delivers an app's notifications, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLease {
    pub app_id: String,
    pub node_id: String,
    pub expires_at: i64,
}

impl Store {
    /// Writes `node`'s row (a first heartbeat registers it).
    pub async fn node_heartbeat(&self, node: &NodeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_nodes (id, listeners, sockets, started_at, heartbeat_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET listeners = excluded.listeners, sockets = excluded.sockets,
                 heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
        )
        .bind(&node.id)
        .bind(&node.listeners)
        .bind(&node.sockets)
        .bind(node.started_at)
        .bind(node.heartbeat_at)
        .bind(node.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every registered node, live or not (`expires_at` says), oldest first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT id, listeners, sockets, started_at, heartbeat_at, expires_at FROM cluster_nodes
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    id: r.try_get(0)?,
                    listeners: r.try_get(1)?,
                    sockets: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    heartbeat_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// A node leaving cleanly: its row and its leases go, so others take its apps at once.
    pub async fn node_leave(&self, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM delivery_leases WHERE node_id = $1").bind(node_id).execute(&self.pool).await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE id = $1").bind(node_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Claims (or renews) the delivery of `app_id`'s notifications for `node_id` until `until`:
    /// granted when no node holds it, this one does, or the holder's lease ended before `now`.
    /// One statement, so two nodes claiming at once cannot both win.
    pub async fn claim_delivery(&self, app_id: &str, node_id: &str, now: i64, until: i64) -> Result<bool> {
        let granted = sqlx::query(
            "INSERT INTO delivery_leases (app_id, node_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (app_id) DO UPDATE SET node_id = excluded.node_id, expires_at = excluded.expires_at
             WHERE delivery_leases.node_id = excluded.node_id OR delivery_leases.expires_at < $4
             RETURNING app_id",
        )
        .bind(app_id)
        .bind(node_id)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(granted.is_some())
    }

    /// Gives up `node_id`'s delivery of `app_id` (its sockets are gone), so another node's can
    /// take it without waiting for the lease to run out.
    pub async fn release_delivery(&self, app_id: &str, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM delivery_leases WHERE app_id = $1 AND node_id = $2")
            .bind(app_id)
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The node whose lease on `app_id` runs at `now`, if any.
    pub async fn delivery_holder(&self, app_id: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT node_id FROM delivery_leases WHERE app_id = $1 AND expires_at > $2")
            .bind(app_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Every delivery lease, by app.
    pub async fn delivery_leases(&self) -> Result<Vec<DeliveryLease>> {
        let rows = sqlx::query("SELECT app_id, node_id, expires_at FROM delivery_leases ORDER BY app_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(DeliveryLease { app_id: r.try_get(0)?, node_id: r.try_get(1)?, expires_at: r.try_get(2)? }))
            .collect()
    }
}
