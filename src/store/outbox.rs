//! The notification outbox: durable, ordered per customer, delivered at least once.
//!
//! Producers insert with [`insert_many`] inside the transaction of the change that causes the
//! notification. The dispatcher ([`crate::notify`]) reads, per app, the due unclaimed rows that
//! are among the first `window` of their customer ([`Store::outbox_due`]), claims what it sends
//! ([`Store::outbox_claim`]), and either completes a row (deleting it and applying the reply in
//! one transaction) or schedules a retry, which releases the claim.

use anyhow::Result;
use sqlx::{Row, SqliteConnection};

use super::app_data::AppDataValue;
use super::{list_placeholders, new_id, now_ms, row_placeholders, rows_per_statement, Store};

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
pub async fn insert_many(conn: &mut SqliteConnection, items: &[NewNotification<'_>], ttl_ms: i64) -> Result<()> {
    let now = now_ms();
    for chunk in items.chunks(rows_per_statement(7)) {
        let sql = format!(
            "INSERT INTO outbox (id, org_id, app_id, customer_id, entry, created_at, expires_at) VALUES {}",
            row_placeholders(chunk.len(), 7)
        );
        // Built from placeholders only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in chunk {
            query = query
                .bind(new_id("ntf_"))
                .bind(n.org_id)
                .bind(n.app_id)
                .bind(n.customer_id)
                .bind(n.entry)
                .bind(now)
                .bind(now.saturating_add(ttl_ms));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Queues a purse notification (an encoded `ServerToAppPurseNotification`), in the caller's
/// transaction. Ordered per purse as customer notifications are per customer.
pub async fn insert_purse(
    conn: &mut SqliteConnection,
    org_id: &str,
    app_id: &str,
    purse_id: &str,
    entry: &[u8],
    ttl_ms: i64,
) -> Result<()> {
    let now = now_ms();
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
    .bind(now.saturating_add(ttl_ms))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn outbox_row(r: &sqlx::sqlite::SqliteRow) -> Result<OutboxRow> {
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

impl Store {
    /// Queues notifications that report no other change of their own (a delivery status, a consent
    /// update already stored), in one transaction.
    pub async fn queue_notifications(&self, items: &[NewNotification<'_>], ttl_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_many(&mut tx, items, ttl_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notifications to send now: per app in `apps`, up to `limit` rows, oldest first, that are due,
    /// unclaimed, and among the first `window` queued for their customer (in flight or not), so a
    /// customer never has more than `window` out at once and later ones never overtake them.
    pub async fn outbox_due(&self, apps: &[String], window: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let now = now_ms();
        let mut due = Vec::new();
        // One query per app: each walks `outbox_ready` (unclaimed rows only) in seq order and stops
        // at `limit`; the window test looks at no more than `window` earlier rows of the customer.
        for app in apps {
            let sql = format!(
                "SELECT {COLUMNS} FROM outbox o INDEXED BY outbox_ready
                 WHERE o.app_id = $1 AND o.claimed = 0 AND o.next_attempt_at <= $2
                   AND (SELECT COUNT(*) FROM (SELECT 1 FROM outbox p
                        WHERE p.app_id = o.app_id AND p.customer_id = o.customer_id AND p.seq < o.seq LIMIT $4)) < $4
                 ORDER BY o.seq LIMIT $3"
            );
            // Built from a constant column list; every value is bound.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .bind(now)
                .bind(limit)
                .bind(window.max(1))
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                due.push(outbox_row(row)?);
            }
        }
        Ok(due)
    }

    /// Claims rows for delivery (they leave the dispatcher's reads until completed or released).
    pub async fn outbox_claim(&self, seqs: &[i64]) -> Result<()> {
        self.set_claimed(seqs, true).await
    }

    /// Releases claims without counting an attempt (nothing was sent, or nobody could take it).
    pub async fn outbox_unclaim(&self, seqs: &[i64]) -> Result<()> {
        self.set_claimed(seqs, false).await
    }

    async fn set_claimed(&self, seqs: &[i64], claimed: bool) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in seqs.chunks(rows_per_statement(1)) {
            let sql = format!(
                "UPDATE outbox SET claimed = {} WHERE seq IN ({})",
                i64::from(claimed),
                list_placeholders(chunk.len())
            );
            // Built from a constant and placeholders only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for seq in chunk {
                query = query.bind(seq);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Releases every claim: at start-up nothing is in flight (a crash left them claimed).
    pub async fn outbox_release_claims(&self) -> Result<u64> {
        Ok(sqlx::query("UPDATE outbox SET claimed = 0 WHERE claimed = 1").execute(&self.pool).await?.rows_affected())
    }

    /// Applies answered notifications in one transaction: each is deleted and its app-data update stored.
    pub async fn outbox_complete(&self, done: &[Completion]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in done.chunks(rows_per_statement(1)) {
            let sql = format!("DELETE FROM outbox WHERE seq IN ({})", list_placeholders(chunk.len()));
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in chunk {
                query = query.bind(c.seq);
            }
            query.execute(&mut *tx).await?;
        }
        for c in done {
            if let Some(value) = &c.app_data {
                super::app_data::force_set(&mut tx, &c.app_id, &c.customer_id, value).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt and releases the claim; the notification is tried again at
    /// `retry_at` (unix ms). `seen`: the attempt reached an app (it timed out unanswered).
    pub async fn outbox_failed(&self, seq: i64, error: &str, retry_at: i64, seen: bool) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, claimed = 0,
             seen = seen OR $4 WHERE seq = $3",
        )
        .bind(retry_at)
        .bind(error)
        .bind(seq)
        .bind(seen)
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
