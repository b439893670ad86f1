//! Adoption: one customer takes over another's identity, messaging, payment and activity state; the
//! other is then decommissioned.
//!
//! Where both have a value under the same key (a tag, a metadata key, app data of an app, a reminder
//! key), the adopter's own value is kept. Written with plain UPDATE/DELETE pairs, not SQLite's
//! `UPDATE OR IGNORE`, so it ports to PostgreSQL unchanged.

use anyhow::Result;

use super::{now_ms, Store};

/// Moves rows of `table` from `other` to `keeper` where `keeper` has no row with the same `key_cols`,
/// then deletes what is left of `other`'s.
async fn move_rows(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    customer_col: &str,
    key_cols: &[&str],
    keeper: &str,
    other: &str,
) -> Result<()> {
    let same_key: Vec<String> = key_cols.iter().map(|c| format!("k.{c} = {table}.{c}")).collect();
    let move_sql = format!(
        "UPDATE {table} SET {customer_col} = $1 WHERE {customer_col} = $2
           AND NOT EXISTS (SELECT 1 FROM {table} k WHERE k.{customer_col} = $1 AND {})",
        if same_key.is_empty() { "1 = 1".to_string() } else { same_key.join(" AND ") }
    );
    // Table and column names are this file's literals; ids are bound.
    sqlx::query(sqlx::AssertSqlSafe(move_sql)).bind(keeper).bind(other).execute(&mut *conn).await?;
    let delete_sql = format!("DELETE FROM {table} WHERE {customer_col} = $1");
    sqlx::query(sqlx::AssertSqlSafe(delete_sql)).bind(other).execute(&mut *conn).await?;
    Ok(())
}

impl Store {
    /// Merges `other` into `keeper` (both live customers of `org_id`) and decommissions `other`.
    pub async fn adopt(&self, keeper: &str, other: &str) -> Result<()> {
        let mut tx = self.write().await?;
        // Numbers and secondary ids are unique per org, so they simply change hands.
        sqlx::query("UPDATE customer_numbers SET customer_id = $1 WHERE customer_id = $2")
            .bind(keeper)
            .bind(other)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE customer_secondary_ids SET customer_id = $1 WHERE customer_id = $2")
            .bind(keeper)
            .bind(other)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE activities SET customer_id = $1 WHERE customer_id = $2")
            .bind(keeper)
            .bind(other)
            .execute(&mut *tx)
            .await?;
        move_rows(&mut tx, "customer_tags", "customer_id", &["key"], keeper, other).await?;
        move_rows(&mut tx, "customer_metadata", "customer_id", &["key"], keeper, other).await?;
        move_rows(&mut tx, "app_data", "customer_id", &["app_id"], keeper, other).await?;
        move_rows(&mut tx, "activity_sessions", "customer_id", &["source", "session_id"], keeper, other).await?;
        move_rows(&mut tx, "reminders", "customer_id", &["app_id", "key"], keeper, other).await?;
        sqlx::query("UPDATE customers SET decommissioned_at = $1, adopted_by = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(keeper)
            .bind(other)
            .execute(&mut *tx)
            .await?;
        // The other customer's reminders are the keeper's now: the scheduler's view is stale.
        tx.moved_reminders();
        tx.commit().await?;
        Ok(())
    }
}
