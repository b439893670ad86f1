//! Reminders: per (app, customer, key), with the next firing time and an optional interval.

use anyhow::Result;
use sqlx::Row;

use super::Store;

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
}

impl Store {
    /// Adds or replaces the reminder with the same (app, customer, key).
    pub async fn upsert_reminder(&self, r: &StoredReminder) -> Result<()> {
        sqlx::query(
            "INSERT INTO reminders (app_id, customer_id, key, org_id, remind_at, interval_secs, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (app_id, customer_id, key) DO UPDATE SET remind_at = $5, interval_secs = $6, payload = $7, retry_at = 0",
        )
        .bind(&r.app_id)
        .bind(&r.customer_id)
        .bind(&r.key)
        .bind(&r.org_id)
        .bind(r.remind_at)
        .bind(r.interval_secs)
        .bind(&r.payload)
        .execute(&self.pool)
        .await?;
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

    /// Reminders due at `now_ms`, earliest first.
    pub async fn due_reminders(&self, now_ms: i64, limit: i64) -> Result<Vec<StoredReminder>> {
        let rows = sqlx::query(
            "SELECT org_id, app_id, customer_id, key, remind_at, interval_secs, payload FROM reminders
             WHERE remind_at <= $1 AND retry_at <= $1 ORDER BY remind_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredReminder {
                    org_id: r.try_get("org_id")?,
                    app_id: r.try_get("app_id")?,
                    customer_id: r.try_get("customer_id")?,
                    key: r.try_get("key")?,
                    remind_at: r.try_get("remind_at")?,
                    interval_secs: r.try_get("interval_secs")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    /// After a firing: re-arm an interval reminder, delete a one-shot. Only touches the row if it still
    /// has the `remind_at` that fired, so a concurrent update by the app wins.
    pub async fn reminder_fired(&self, r: &StoredReminder, now_ms: i64) -> Result<()> {
        match r.interval_secs.filter(|s| *s > 0) {
            Some(secs) => {
                let step = secs.saturating_mul(1000);
                // Skip missed periods rather than firing a burst after downtime.
                let mut next = r.remind_at.saturating_add(step);
                if next <= now_ms {
                    next = now_ms.saturating_add(step - (now_ms - r.remind_at) % step);
                }
                self.update_unchanged(r, "remind_at = $1, retry_at = 0", next).await
            }
            None => {
                sqlx::query(
                    "DELETE FROM reminders WHERE app_id = $1 AND customer_id = $2 AND key = $3 AND remind_at = $4",
                )
                .bind(&r.app_id)
                .bind(&r.customer_id)
                .bind(&r.key)
                .bind(r.remind_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    }

    /// Holds back a reminder whose delivery failed until `retry_at_ms`, keeping its `remind_at`.
    pub async fn postpone_reminder_retry(&self, r: &StoredReminder, retry_at_ms: i64) -> Result<()> {
        self.update_unchanged(r, "retry_at = $1", retry_at_ms).await
    }

    /// `UPDATE … SET <assignment>` (with `$1` = `value`) on `r`'s row, if its `remind_at` is unchanged.
    async fn update_unchanged(&self, r: &StoredReminder, assignment: &str, value: i64) -> Result<()> {
        let sql = format!(
            "UPDATE reminders SET {assignment} WHERE app_id = $2 AND customer_id = $3 AND key = $4 AND remind_at = $5"
        );
        // `assignment` is one of this file's literals, never input.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(&r.app_id)
            .bind(&r.customer_id)
            .bind(&r.key)
            .bind(r.remind_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
