//! App data: one value per (app, customer), text or bytes, with an optional lease.
//!
//! A lease is held by one connection until a deadline. While it is held, another connection can
//! neither lease nor change the value; the holder's update or delete releases it. Notification
//! replies ([`force_set`]) write regardless: the app answering a notification speaks for itself.

use std::collections::HashMap;

use anyhow::Result;
use sqlx::{AnyConnection, Row};

use super::{now_ms, Store};

/// A stored app-data value, as the DataMapValue variant that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppDataValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// Someone else holds the lease, until this time (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseHeld {
    pub until: i64,
}

fn split(value: &AppDataValue) -> (Option<&str>, Option<&[u8]>) {
    match value {
        AppDataValue::Text(t) => (Some(t.as_str()), None),
        AppDataValue::Bytes(b) => (None, Some(b.as_slice())),
    }
}

impl Store {
    pub async fn app_data(&self, app_id: &str, customer_id: &str) -> Result<Option<AppDataValue>> {
        let row = sqlx::query("SELECT text_value, bytes_value FROM app_data WHERE app_id = $1 AND customer_id = $2")
            .bind(app_id)
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if let Some(text) = row.try_get::<Option<String>, _>("text_value")? {
            return Ok(Some(AppDataValue::Text(text)));
        }
        Ok(row.try_get::<Option<Vec<u8>>, _>("bytes_value")?.map(AppDataValue::Bytes))
    }

    /// App data of many (app, customer) pairs at once (the dispatcher attaches it to each notification).
    pub async fn app_data_many(&self, pairs: &[(String, String)]) -> Result<HashMap<(String, String), AppDataValue>> {
        let mut out = HashMap::new();
        for chunk in pairs.chunks(super::rows_per_statement(2)) {
            let sql = format!(
                "SELECT app_id, customer_id, text_value, bytes_value FROM app_data WHERE (app_id, customer_id) IN (VALUES {})",
                super::row_placeholders(chunk.len(), 2)
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for (app, customer) in chunk {
                query = query.bind(app).bind(customer);
            }
            for row in query.fetch_all(&self.pool).await? {
                let value = match row.try_get::<Option<String>, _>("text_value")? {
                    Some(t) => Some(AppDataValue::Text(t)),
                    None => row.try_get::<Option<Vec<u8>>, _>("bytes_value")?.map(AppDataValue::Bytes),
                };
                if let Some(value) = value {
                    out.insert((row.try_get("app_id")?, row.try_get("customer_id")?), value);
                }
            }
        }
        Ok(out)
    }

    /// Takes the lease for `owner` until `until`, unless another owner holds it; returns the value.
    pub async fn lease_app_data(
        &self,
        app_id: &str,
        customer_id: &str,
        owner: &str,
        until: i64,
    ) -> Result<Result<Option<AppDataValue>, LeaseHeld>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let taken = sqlx::query(
            "INSERT INTO app_data (app_id, customer_id, updated_at, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (app_id, customer_id) DO UPDATE SET lease_owner = $4, lease_until = $5
             WHERE app_data.lease_until IS NULL OR app_data.lease_until <= $3 OR app_data.lease_owner = $4",
        )
        .bind(app_id)
        .bind(customer_id)
        .bind(now)
        .bind(owner)
        .bind(until)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let row = sqlx::query(
            "SELECT text_value, bytes_value, lease_until FROM app_data WHERE app_id = $1 AND customer_id = $2",
        )
        .bind(app_id)
        .bind(customer_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if taken == 0 {
            return Ok(Err(LeaseHeld { until: row.try_get::<Option<i64>, _>("lease_until")?.unwrap_or(now) }));
        }
        let value = match row.try_get::<Option<String>, _>("text_value")? {
            Some(t) => Some(AppDataValue::Text(t)),
            None => row.try_get::<Option<Vec<u8>>, _>("bytes_value")?.map(AppDataValue::Bytes),
        };
        Ok(Ok(value))
    }

    /// Releases every lease `owner` holds (its connection closed); returns how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE app_data{} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            self.backend.indexed_by("app_data_by_lease_owner")
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).execute(&self.pool).await?.rows_affected())
    }

    /// Replaces the value and releases the lease, unless another owner holds the lease.
    pub async fn set_app_data(
        &self,
        app_id: &str,
        customer_id: &str,
        owner: &str,
        value: &AppDataValue,
    ) -> Result<Result<(), LeaseHeld>> {
        let now = now_ms();
        let (text, bytes) = split(value);
        // One transaction: the refusal must report the lease that refused it, not one taken or
        // released by another writer between the statements.
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "INSERT INTO app_data (app_id, customer_id, text_value, bytes_value, updated_at, written_us)
             VALUES ($1, $2, $3, $4, $5, $7)
             ON CONFLICT (app_id, customer_id) DO UPDATE SET text_value = $3, bytes_value = $4, updated_at = $5,
                 written_us = $7, lease_owner = NULL, lease_until = NULL
             WHERE app_data.lease_until IS NULL OR app_data.lease_until <= $5 OR app_data.lease_owner = $6",
        )
        .bind(app_id)
        .bind(customer_id)
        .bind(text)
        .bind(bytes)
        .bind(now)
        .bind(owner)
        .bind(super::now_us())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if done == 0 { Err(lease_until(&mut tx, app_id, customer_id, now).await?) } else { Ok(()) };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Deletes the value (and any lease of `owner`), unless another owner holds the lease.
    /// `Ok(Ok(false))` when there was nothing to delete.
    pub async fn delete_app_data(
        &self,
        app_id: &str,
        customer_id: &str,
        owner: &str,
    ) -> Result<Result<bool, LeaseHeld>> {
        let now = now_ms();
        // One transaction: between a delete that found nothing and the look at why, another
        // writer could insert the row (a concurrent update once read as "leased for 0 ms more").
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM app_data WHERE app_id = $1 AND customer_id = $2
               AND (lease_until IS NULL OR lease_until <= $3 OR lease_owner = $4)",
        )
        .bind(app_id)
        .bind(customer_id)
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if done > 0 {
            Ok(true)
        } else {
            let exists = sqlx::query("SELECT 1 FROM app_data WHERE app_id = $1 AND customer_id = $2")
                .bind(app_id)
                .bind(customer_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                Err(lease_until(&mut tx, app_id, customer_id, now).await?)
            } else {
                Ok(false)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Replaces the value whatever the lease (see [`force_set`]).
    pub async fn force_set_app_data(&self, app_id: &str, customer_id: &str, value: &AppDataValue) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        force_set(&mut conn, app_id, customer_id, value, super::now_us()).await
    }
}

/// Until when another owner's lease holds the row, read inside the transaction that was refused.
async fn lease_until(conn: &mut AnyConnection, app_id: &str, customer_id: &str, now: i64) -> Result<LeaseHeld> {
    let row = sqlx::query("SELECT lease_until FROM app_data WHERE app_id = $1 AND customer_id = $2")
        .bind(app_id)
        .bind(customer_id)
        .fetch_optional(conn)
        .await?;
    let until = row.and_then(|r| r.try_get::<Option<i64>, _>("lease_until").ok().flatten()).unwrap_or(now);
    Ok(LeaseHeld { until })
}

/// Replaces the value whatever the lease, releasing it (a notification reply's app-data update),
/// as of `at_us` (unix µs, when the answer arrived): a value written after that — the app's own
/// command, sent after it answered and applied while the answer waited for its batch — is kept.
pub async fn force_set(
    conn: &mut AnyConnection,
    app_id: &str,
    customer_id: &str,
    value: &AppDataValue,
    at_us: i64,
) -> Result<()> {
    let (text, bytes) = split(value);
    sqlx::query(
        "INSERT INTO app_data (app_id, customer_id, text_value, bytes_value, updated_at, written_us)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (app_id, customer_id) DO UPDATE SET text_value = $3, bytes_value = $4, updated_at = $5,
             written_us = $6, lease_owner = NULL, lease_until = NULL
         WHERE app_data.written_us <= $6",
    )
    .bind(app_id)
    .bind(customer_id)
    .bind(text)
    .bind(bytes)
    .bind(at_us / 1000)
    .bind(at_us)
    .execute(conn)
    .await?;
    Ok(())
}
