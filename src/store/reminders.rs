//! Reminders: per (app, customer, key), with the next firing time, an optional interval, and the
//! tag and work that set them when they came from a by-tag command.
//!
//! The `reminders_due` index on `remind_at` is the scheduler's priority queue: nothing about pending
//! reminders is held in memory, so a million of them cost disk, not RAM.

use std::collections::HashSet;

use anyhow::Result;
use sqlx::Row;

use super::{row_placeholders, rows_per_statement, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReminder {
    pub org_id: String,
    pub app_id: String,
    pub customer_id: String,
    pub key: String,
    /// Unix milliseconds.
    pub remind_at: i64,
    pub interval_secs: Option<i64>,
    pub payload: Option<String>,
    /// (key, value) of the tag a by-tag command matched.
    pub tag: Option<(String, String)>,
    pub work_id: Option<String>,
}

/// A due reminder and the notification its firing queues.
#[derive(Debug, Clone)]
pub struct Firing {
    pub reminder: StoredReminder,
    /// The encoded notification entry for the outbox.
    pub entry: Vec<u8>,
}

const COLUMNS: &str =
    "org_id, app_id, customer_id, key, remind_at, interval_secs, payload, tag_key, tag_value, work_id";

fn reminder_row(r: &sqlx::any::AnyRow) -> Result<StoredReminder> {
    let tag_key: Option<String> = r.try_get("tag_key")?;
    let tag_value: Option<String> = r.try_get("tag_value")?;
    Ok(StoredReminder {
        org_id: r.try_get("org_id")?,
        app_id: r.try_get("app_id")?,
        customer_id: r.try_get("customer_id")?,
        key: r.try_get("key")?,
        remind_at: r.try_get("remind_at")?,
        interval_secs: r.try_get("interval_secs")?,
        payload: r.try_get("payload")?,
        tag: tag_key.zip(tag_value),
        work_id: r.try_get("work_id")?,
    })
}

impl Store {
    /// Adds or replaces the reminder with the same (app, customer, key).
    pub async fn upsert_reminder(&self, r: &StoredReminder) -> Result<()> {
        self.upsert_reminders(std::slice::from_ref(r)).await
    }

    /// Sets many reminders in one transaction, a hundred rows per statement (by-tag work, imports).
    pub async fn upsert_reminders(&self, reminders: &[StoredReminder]) -> Result<()> {
        let mut tx = self.write().await?;
        for chunk in reminders.chunks(rows_per_statement(10)) {
            let sql = format!(
                "INSERT INTO reminders (app_id, customer_id, key, org_id, remind_at, interval_secs, payload, tag_key, tag_value, work_id)
                 VALUES {} ON CONFLICT (app_id, customer_id, key) DO UPDATE SET remind_at = excluded.remind_at,
                 interval_secs = excluded.interval_secs, payload = excluded.payload, tag_key = excluded.tag_key,
                 tag_value = excluded.tag_value, work_id = excluded.work_id",
                row_placeholders(chunk.len(), 10)
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for r in chunk {
                let (tag_key, tag_value) = r.tag.clone().unzip();
                query = query
                    .bind(&r.app_id)
                    .bind(&r.customer_id)
                    .bind(&r.key)
                    .bind(&r.org_id)
                    .bind(r.remind_at)
                    .bind(r.interval_secs)
                    .bind(&r.payload)
                    .bind(tag_key)
                    .bind(tag_value)
                    .bind(&r.work_id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.moved_reminders();
        tx.commit().await?;
        Ok(())
    }

    /// Removes a reminder; returns whether one existed.
    pub async fn delete_reminder(&self, app_id: &str, customer_id: &str, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM reminders WHERE app_id = $1 AND customer_id = $2 AND key = $3")
            .bind(app_id)
            .bind(customer_id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes reminder `key` of `app_id` for each of `customers`; returns how many existed.
    pub async fn delete_reminders(&self, app_id: &str, customers: &[String], key: &str) -> Result<u64> {
        let mut tx = self.write().await?;
        let mut n = 0;
        for customer in customers {
            n += sqlx::query("DELETE FROM reminders WHERE app_id = $1 AND customer_id = $2 AND key = $3")
                .bind(app_id)
                .bind(customer)
                .bind(key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Reminders due at `now_ms`, earliest first.
    pub async fn due_reminders(&self, now_ms: i64, limit: i64) -> Result<Vec<StoredReminder>> {
        let sql = format!("SELECT {COLUMNS} FROM reminders WHERE remind_at <= $1 ORDER BY remind_at LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(reminder_row).collect()
    }

    /// The earliest `remind_at` of all reminders.
    pub async fn next_reminder_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(remind_at) AS t FROM reminders").fetch_one(&self.pool).await?.try_get("t")?)
    }

    pub async fn count_reminders(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM reminders").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Fires up to `limit` reminders due at `now_ms` in one transaction, read inside it: each is
    /// re-armed (interval) or deleted (one-shot) and the notification `entry` makes of it queued in
    /// the outbox. Returns how many fired. Read after the transaction has begun, so a node that
    /// waited for another's firing (several nodes share the write turn) reads what is still due
    /// then, not the batch the other node just fired.
    pub async fn fire_due_reminders(
        &self,
        now_ms: i64,
        limit: i64,
        entry: impl Fn(&StoredReminder) -> Vec<u8>,
    ) -> Result<usize> {
        let mut tx = self.write().await?;
        let sql = format!("SELECT {COLUMNS} FROM reminders WHERE remind_at <= $1 ORDER BY remind_at LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(limit).fetch_all(&mut *tx).await?;
        let firings: Vec<Firing> = rows
            .iter()
            .map(|r| reminder_row(r).map(|reminder| Firing { entry: entry(&reminder), reminder }))
            .collect::<Result<_>>()?;
        if firings.is_empty() {
            return Ok(0);
        }
        let fired = fire(&mut tx, self.backend, &firings, now_ms).await?;
        tx.commit().await?;
        Ok(fired)
    }

    /// Fires `firings` in one transaction (see [`fire`]). Returns how many fired.
    pub async fn fire_reminders(&self, firings: &[Firing], now_ms: i64) -> Result<usize> {
        let mut tx = self.write().await?;
        let fired = fire(&mut tx, self.backend, firings, now_ms).await?;
        tx.commit().await?;
        Ok(fired)
    }
}

/// Fires reminders: each still unchanged since it was read is re-armed (interval) or deleted
/// (one-shot), and its notification queued in the outbox. A reminder the app changed meanwhile is
/// left alone. Returns how many fired.
///
/// Works a hundred rows per statement, keyed by (app, customer, key, remind_at) row values and
/// `RETURNING` what actually changed; both are PostgreSQL syntax too.
async fn fire(tx: &mut super::Write, backend: super::Backend, firings: &[Firing], now_ms: i64) -> Result<usize> {
    let (repeating, once): (Vec<&Firing>, Vec<&Firing>) =
        firings.iter().partition(|f| f.reminder.interval_secs.is_some_and(|s| s > 0));
    let mut fired: HashSet<(String, String, String)> = HashSet::with_capacity(firings.len());
    for (rows, repeat) in [(&once, false), (&repeating, true)] {
        for chunk in rows.chunks(rows_per_statement(4)) {
            // The re-arming UPDATE binds `now` three times first; the DELETE needs no time.
            let keys = row_placeholders(chunk.len(), 4);
            let sql = if repeat {
                // Re-arm one period later; after downtime, skip the missed periods instead of
                // firing a burst.
                format!(
                    "UPDATE reminders SET remind_at = CASE
                             WHEN remind_at + interval_secs * 1000 > ? THEN remind_at + interval_secs * 1000
                             ELSE ? + interval_secs * 1000 - ((? - remind_at) % (interval_secs * 1000)) END
                         WHERE (app_id, customer_id, key, remind_at) IN (VALUES {keys})
                         RETURNING app_id, customer_id, key"
                )
            } else {
                format!(
                    "DELETE FROM reminders WHERE (app_id, customer_id, key, remind_at) IN (VALUES {keys})
                         RETURNING app_id, customer_id, key"
                )
            };
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(backend.bulk(sql));
            if repeat {
                query = query.bind(now_ms).bind(now_ms).bind(now_ms);
            }
            for f in chunk {
                let r = &f.reminder;
                query = query.bind(&r.app_id).bind(&r.customer_id).bind(&r.key).bind(r.remind_at);
            }
            for row in query.fetch_all(&mut **tx).await? {
                fired.insert((row.try_get("app_id")?, row.try_get("customer_id")?, row.try_get("key")?));
            }
        }
    }
    let to_queue: Vec<&Firing> = firings
        .iter()
        .filter(|f| {
            fired.contains(&(f.reminder.app_id.clone(), f.reminder.customer_id.clone(), f.reminder.key.clone()))
        })
        .collect();
    let items: Vec<super::outbox::NewNotification<'_>> = to_queue
        .iter()
        .map(|f| super::outbox::NewNotification {
            org_id: &f.reminder.org_id,
            app_id: &f.reminder.app_id,
            customer_id: &f.reminder.customer_id,
            entry: &f.entry,
        })
        .collect();
    super::outbox::insert_many(tx, &items).await?;
    Ok(to_queue.len())
}
