//! The notification outbox: durable, ordered per customer, delivered at least once.
//!
//! Producers insert with [`insert_many`] inside the transaction of the change that causes the
//! notification; the row expires after the store's notification lifetime, and the commit wakes
//! the dispatcher ([`super::Write::commit`]), so producers carry neither duty. The dispatcher
//! ([`crate::notify`]) reads each app's due rows in seq order ([`Store::outbox_due`]; which of
//! them go out is its business, kept in memory), and either completes a row (deleting it and
//! applying the reply in one transaction) or schedules a retry.

use anyhow::Result;
use sqlx::Row;

use super::app_data::AppDataValue;
use super::{list_placeholders, new_id, now_ms, row_placeholders, rows_per_statement, Backend, Store, Write};

/// How long a notification waits for delivery unless config says otherwise (`notify.ttl_secs`).
pub const DEFAULT_TTL_SECS: u64 = 7 * 24 * 3600;

/// One notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub customer_id: String,
    /// An encoded `ServerToAppCustomerNotification`, without app data (attached at delivery).
    pub entry: Vec<u8>,
    pub created_at: i64,
    pub attempts: i64,
    /// A purse notification: `entry` is a `ServerToAppPurseNotification` and `customer_id` the purse id.
    pub purse: bool,
    /// An earlier attempt reached an app, which did not answer in time: sending it is a redelivery.
    pub seen: bool,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
}

/// What to do once an app has answered a notification.
#[derive(Debug, Clone)]
pub struct Completion {
    pub seq: i64,
    pub notification_id: String,
    pub org_id: String,
    pub app_id: String,
    pub customer_id: String,
    pub app_data: Option<AppDataValue>,
    /// When the answer arrived (unix µs): its app-data update is written only if nothing newer
    /// was (a command the app sent after answering, applied while this waited for its batch).
    pub answered_us: i64,
    /// An outbound message the app asked to send, handed to messaging once this is recorded.
    pub message: Option<crate::wire::OutboundMessage>,
    /// Where a reply goes: the channel and number of the notification it answers, if it had one.
    pub reply_to: Option<(crate::wire::MessagingChannelNumber, crate::wire::CustomerNumber)>,
}

const COLUMNS: &str = "seq, id, org_id, app_id, customer_id, entry, created_at, attempts, purse, seen, last_error";

/// A notification to queue with [`insert_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub org_id: &'a str,
    pub app_id: &'a str,
    pub customer_id: &'a str,
    pub entry: &'a [u8],
}

/// Queues many notifications, a hundred rows per statement, in the caller's transaction.
pub async fn insert_many(tx: &mut Write, items: &[NewNotification<'_>]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let expires_at = now.saturating_add(tx.notification_ttl_ms);
    for chunk in items.chunks(rows_per_statement(7)) {
        let sql = format!(
            "INSERT INTO outbox (id, org_id, app_id, customer_id, entry, created_at, expires_at) VALUES {}",
            row_placeholders(chunk.len(), 7)
        );
        // Built from placeholders only; every value is bound.
        let mut query = sqlx::query(Backend::of(tx).bulk(sql));
        for n in chunk {
            query = query
                .bind(new_id("ntf_"))
                .bind(n.org_id)
                .bind(n.app_id)
                .bind(n.customer_id)
                .bind(n.entry)
                .bind(now)
                .bind(expires_at);
        }
        query.execute(&mut **tx).await?;
    }
    tx.queued_notifications();
    Ok(())
}

/// Queues a purse notification (an encoded `ServerToAppPurseNotification`), in the caller's
/// transaction. Ordered per purse as customer notifications are per customer.
pub async fn insert_purse(tx: &mut Write, org_id: &str, app_id: &str, purse_id: &str, entry: &[u8]) -> Result<()> {
    let now = now_ms();
    let expires_at = now.saturating_add(tx.notification_ttl_ms);
    sqlx::query(
        "INSERT INTO outbox (id, org_id, app_id, customer_id, entry, created_at, expires_at, purse)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
    )
    .bind(new_id("ntf_"))
    .bind(org_id)
    .bind(app_id)
    .bind(purse_id)
    .bind(entry)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    tx.queued_notifications();
    Ok(())
}

fn outbox_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        app_id: r.try_get("app_id")?,
        customer_id: r.try_get("customer_id")?,
        entry: r.try_get("entry")?,
        created_at: r.try_get("created_at")?,
        attempts: r.try_get("attempts")?,
        purse: r.try_get::<i64, _>("purse")? != 0,
        seen: r.try_get::<i64, _>("seen")? != 0,
        last_error: r.try_get("last_error")?,
    })
}

/// One app's waiting notifications (`hodi outbox`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxSummary {
    pub app_id: String,
    pub depth: i64,
    /// When the oldest was queued (unix ms).
    pub oldest_at: i64,
    /// How many have been tried and went unanswered or failed at least once.
    pub retrying: i64,
    /// The newest failure's reason.
    pub last_error: Option<String>,
}

impl Store {
    /// Queues notifications that report no other change of their own (a delivery status, a consent
    /// update already stored), in one transaction.
    pub async fn queue_notifications(&self, items: &[NewNotification<'_>]) -> Result<()> {
        let mut tx = self.write().await?;
        insert_many(&mut tx, items).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Due notifications of `app_id` after `after` (a seq), oldest first, up to `limit`, each with
    /// the app data to send with it (read in the same statement).
    pub async fn outbox_due(
        &self,
        app_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(OutboxRow, Option<AppDataValue>)>> {
        // outbox_by_app is (app_id, rowid) on SQLite: a range walk in seq order that stops at
        // `limit`; (app_id, seq) on PostgreSQL.
        let sql = format!(
            "SELECT o.seq, o.id, o.org_id, o.customer_id, o.entry, o.created_at, o.attempts, o.purse, o.seen,
                    o.last_error, d.text_value, d.bytes_value
             FROM outbox o{}
             LEFT JOIN app_data d ON d.app_id = o.app_id AND d.customer_id = o.customer_id AND o.purse = 0
             WHERE o.app_id = $1 AND o.seq > $2 AND o.next_attempt_at <= $3
             ORDER BY o.seq LIMIT $4",
            self.backend.indexed_by("outbox_by_app")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(after)
            .bind(now_ms())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        // By position (the SELECT's order): this runs for every notification sent.
        for r in &rows {
            let row = OutboxRow {
                seq: r.try_get(0)?,
                id: r.try_get(1)?,
                org_id: r.try_get(2)?,
                app_id: app_id.to_string(),
                customer_id: r.try_get(3)?,
                entry: r.try_get(4)?,
                created_at: r.try_get(5)?,
                attempts: r.try_get(6)?,
                purse: r.try_get::<i64, _>(7)? != 0,
                seen: r.try_get::<i64, _>(8)? != 0,
                last_error: r.try_get(9)?,
            };
            let data = match r.try_get::<Option<String>, _>(10)? {
                Some(t) => Some(AppDataValue::Text(t)),
                None => r.try_get::<Option<Vec<u8>>, _>(11)?.map(AppDataValue::Bytes),
            };
            due.push((row, data));
        }
        Ok(due)
    }

    /// Makes every queued notification due now: at start-up, retries scheduled before a restart
    /// are not known to the new dispatcher, so they go again at once (in order, within windows).
    pub async fn outbox_all_due(&self) -> Result<u64> {
        Ok(sqlx::query("UPDATE outbox SET next_attempt_at = 0 WHERE next_attempt_at > 0")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Applies answered notifications in one transaction: each is deleted and its app-data update stored.
    pub async fn outbox_complete(&self, done: &[Completion]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in done.chunks(rows_per_statement(1)) {
            let sql = format!("DELETE FROM outbox WHERE seq IN ({})", list_placeholders(chunk.len()));
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for c in chunk {
                query = query.bind(c.seq);
            }
            query.execute(&mut *tx).await?;
        }
        for c in done {
            if let Some(value) = &c.app_data {
                super::app_data::force_set(&mut tx, &c.app_id, &c.customer_id, value, c.answered_us).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt; the notification is tried again at `retry_at` (unix ms). `seen`:
    /// the attempt reached an app (it timed out unanswered).
    pub async fn outbox_failed(&self, seq: i64, error: &str, retry_at: i64, seen: bool) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2,
             seen = CASE WHEN $4 <> 0 THEN 1 ELSE seen END WHERE seq = $3",
        )
        .bind(retry_at)
        .bind(error)
        .bind(seq)
        .bind(i64::from(seen))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops notifications past their time to live; returns them for the log.
    pub async fn outbox_expire(&self) -> Result<Vec<OutboxRow>> {
        let now = now_ms();
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE expires_at <= $1");
        // Built from a constant column list; the time is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&self.pool).await?;
        sqlx::query("DELETE FROM outbox WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        rows.iter().map(outbox_row).collect()
    }

    /// How many notifications wait, for tests and metrics.
    pub async fn outbox_len(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM outbox").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Per app with notifications waiting: how many, and when the oldest was queued (metrics).
    pub async fn outbox_by_app(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query("SELECT app_id, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY app_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("app_id")?, r.try_get("n")?, r.try_get("oldest")?))).collect()
    }

    /// Per org with notifications waiting: how many (the console's chart).
    pub async fn outbox_by_org(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT org_id, COUNT(*) AS n FROM outbox GROUP BY org_id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("org_id")?, r.try_get("n")?))).collect()
    }

    /// Per app with notifications waiting: what an operator looks at first (`hodi outbox`).
    pub async fn outbox_summary(&self) -> Result<Vec<OutboxSummary>> {
        let rows = sqlx::query(
            "SELECT o.app_id, COUNT(*) AS depth, MIN(o.created_at) AS oldest,
                    SUM(CASE WHEN o.attempts > 0 THEN 1 ELSE 0 END) AS retrying,
                    (SELECT e.last_error FROM outbox e WHERE e.app_id = o.app_id AND e.last_error IS NOT NULL
                     ORDER BY e.seq DESC LIMIT 1) AS last_error
             FROM outbox o GROUP BY o.app_id ORDER BY o.app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxSummary {
                    app_id: r.try_get("app_id")?,
                    depth: r.try_get("depth")?,
                    oldest_at: r.try_get("oldest")?,
                    retrying: r.try_get("retrying")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// By-tag works still running (metrics).
    pub async fn running_work(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM work WHERE state = 'running'")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }
}

impl Store {
    /// Every queued notification, oldest first (benchmarks and tests inspect what was queued).
    pub async fn outbox_rows(&self, limit: i64) -> Result<Vec<OutboxRow>> {
        let sql = format!("SELECT {COLUMNS} FROM outbox ORDER BY seq LIMIT $1");
        // Built from a constant column list; the limit is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(outbox_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `signal` has a wake-up stored for its next waiter.
    async fn woken(signal: &tokio::sync::Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(50), signal.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn a_commit_that_queued_wakes_the_dispatcher_and_a_rollback_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("hodi.db").display());
        let store = Store::open(&url).await.expect("open").with_notification_ttl(60_000);
        let org = store.create_org(None, "org").await.expect("org");
        let app = store.create_app(&org, None, "app").await.expect("app");
        let item = NewNotification { org_id: &org, app_id: &app, customer_id: "cst_1", entry: b"n" };

        let mut tx = store.write().await.expect("write");
        insert_many(&mut tx, &[item]).await.expect("insert");
        tx.rollback().await.expect("rollback");
        assert!(!woken(store.outbox_changed()).await, "a rolled-back notification woke the dispatcher");

        let mut tx = store.write().await.expect("write");
        insert_many(&mut tx, &[]).await.expect("insert nothing");
        tx.commit().await.expect("commit");
        assert!(!woken(store.outbox_changed()).await, "a commit that queued nothing woke the dispatcher");

        let before = now_ms();
        store.queue_notifications(&[item]).await.expect("queue");
        assert!(woken(store.outbox_changed()).await, "a queued notification did not wake the dispatcher");
        assert!(!woken(store.reminders_changed()).await, "a notification woke the reminder scheduler");
        let expires: i64 =
            sqlx::query_scalar("SELECT expires_at FROM outbox").fetch_one(store.pool()).await.expect("row");
        assert!(
            (before + 60_000..=now_ms() + 60_000).contains(&expires),
            "expires_at {expires} is not now + the store's TTL"
        );
    }
}
