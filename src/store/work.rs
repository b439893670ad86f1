//! Background work started by by-tag commands: the reply carries the work id at once; this table
//! says how it went, how far it got, and what to do again if the node running it dies.

use anyhow::Result;
use sqlx::Row;

use super::{new_id, now_ms, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkRecord {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub customers: i64,
    pub error: Option<String>,
}

/// A work as `hodi work` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkSummary {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub kind: String,
    pub state: String,
    pub tag: (String, String),
    /// Customers handled so far (all of them once done).
    pub customers: i64,
    pub error: Option<String>,
    /// The node running it ('' on a single node).
    pub node: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// What a by-tag command asked for, kept with its work so that it can be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrder {
    pub org_id: String,
    pub app_id: String,
    pub kind: String,
    pub tag: (String, String),
    /// The by-tag command, encoded; what rebuilds the action on resume.
    pub command: Vec<u8>,
}

/// Which running work a node takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    /// All of it: one process owns the database, and a previous run left it.
    All,
    /// Its own (a node restarted under the same name runs none of it yet) and that of nodes that
    /// are not up in `cluster_nodes`: at start on a shared database.
    DeadOrMine,
    /// That of nodes that are not up: as nodes die.
    Dead,
}

/// Running work this node took over: its order and how far it had got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableWork {
    pub id: String,
    pub order: WorkOrder,
    /// Every customer up to this id (in id order) has been handled.
    pub after_customer: String,
    /// How many customers that was.
    pub customers: i64,
}

impl Store {
    /// Records new running work, claimed by this node.
    pub async fn start_work(&self, order: &WorkOrder) -> Result<String> {
        let id = new_id("wrk_");
        sqlx::query(
            "INSERT INTO work (id, org_id, app_id, kind, state, created_at, command, tag_key, tag_value, claimed_by)
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&order.org_id)
        .bind(&order.app_id)
        .bind(&order.kind)
        .bind(now_ms())
        .bind(&order.command)
        .bind(&order.tag.0)
        .bind(&order.tag.1)
        .bind(&*self.node_id)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records that every customer up to `after_customer` has been handled (`customers` of
    /// them). False when the work is no longer this node's (another took it over, thinking this
    /// one dead) or no longer running: the caller stops.
    pub async fn advance_work(&self, id: &str, after_customer: &str, customers: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE work SET after_customer = $1, customers = $2
             WHERE id = $3 AND claimed_by = $4 AND state = 'running'",
        )
        .bind(after_customer)
        .bind(customers)
        .bind(id)
        .bind(&*self.node_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the end of work this node runs; false when it was no longer this node's.
    pub async fn finish_work(&self, id: &str, customers: i64, error: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE work SET state = $1, customers = $2, error = $3, finished_at = $4
             WHERE id = $5 AND claimed_by = $6 AND state = 'running'",
        )
        .bind(if error.is_some() { "failed" } else { "done" })
        .bind(customers)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .bind(&*self.node_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes over running work whose node is gone, up to `limit` of them (see [`Orphans`]).
    pub async fn claim_orphan_work(&self, orphans: Orphans, limit: i64) -> Result<Vec<ResumableWork>> {
        // Only the statement's own parameters are numbered: PostgreSQL refuses one it cannot type.
        let dead = "claimed_by NOT IN (SELECT id FROM cluster_nodes WHERE expires_at > $2)";
        let (orphaned, limit_at) = match orphans {
            Orphans::All => ("TRUE".to_string(), "$2"),
            Orphans::DeadOrMine => (format!("(claimed_by = $1 OR {dead})"), "$3"),
            Orphans::Dead => (format!("claimed_by <> $1 AND {dead}"), "$3"),
        };
        let sql = format!(
            "UPDATE work SET claimed_by = $1 WHERE id IN (
                 SELECT id FROM work WHERE state = 'running' AND {orphaned} ORDER BY created_at LIMIT {limit_at})
             AND state = 'running' AND {orphaned}
             RETURNING id, org_id, app_id, kind, command, tag_key, tag_value, after_customer, customers"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&*self.node_id);
        if orphans != Orphans::All {
            query = query.bind(now_ms());
        }
        let mut tx = self.write().await?;
        let rows = query.bind(limit).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(ResumableWork {
                    id: r.try_get("id")?,
                    order: WorkOrder {
                        org_id: r.try_get("org_id")?,
                        app_id: r.try_get("app_id")?,
                        kind: r.try_get("kind")?,
                        tag: (r.try_get("tag_key")?, r.try_get("tag_value")?),
                        command: r.try_get("command")?,
                    },
                    after_customer: r.try_get("after_customer")?,
                    customers: r.try_get("customers")?,
                })
            })
            .collect()
    }

    /// The newest `limit` works, newest first (`hodi work`).
    pub async fn recent_work(&self, limit: i64) -> Result<Vec<WorkSummary>> {
        let rows = sqlx::query(
            "SELECT id, org_id, app_id, kind, state, tag_key, tag_value, customers, error, claimed_by, created_at,
                    finished_at
             FROM work ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkSummary {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    app_id: r.try_get("app_id")?,
                    kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    tag: (r.try_get("tag_key")?, r.try_get("tag_value")?),
                    customers: r.try_get("customers")?,
                    error: r.try_get("error")?,
                    node: r.try_get("claimed_by")?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                })
            })
            .collect()
    }

    pub async fn work(&self, id: &str) -> Result<Option<WorkRecord>> {
        let row = sqlx::query("SELECT id, kind, state, customers, error FROM work WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(WorkRecord {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                customers: r.try_get("customers")?,
                error: r.try_get("error")?,
            })
        })
        .transpose()
    }
}
