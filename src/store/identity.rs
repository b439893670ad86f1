//! Identity state: tags, secondary ids and metadata. Expired tags and secondary ids are invisible to
//! every read here and are swept by [`Store::sweep_expired`].

use anyhow::Result;
use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, Row};

use super::batch::Guard;
use super::{now_ms, Store, Write};

/// A tag or secondary id: key, value and optional expiry (unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub key: String,
    pub value: String,
    pub expires_at: Option<i64>,
}

/// A metadata value, as the DataMapValue variant that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// Why a secondary id could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIdTaken {
    pub key: String,
    pub value: String,
    pub owner: String,
}

/// An update refused because the customer would hold more state than the store allows
/// ([`crate::store::Allowances`]); nothing of it was stored.
#[derive(Debug, thiserror::Error)]
#[error("a customer may hold at most {limit} {what}; this update would make {would}")]
pub struct OverAllowance {
    pub what: &'static str,
    pub limit: usize,
    pub would: i64,
}

/// Refuses, inside the transaction that just wrote it, state over what a customer may hold.
/// `sql` measures it, with `$1` the customer and, for indexes that expire, `$2` now.
async fn within(
    conn: &mut AnyConnection,
    what: &'static str,
    sql: &'static str,
    customer_id: &str,
    limit: usize,
) -> Result<()> {
    let mut query = sqlx::query_scalar(sql).bind(customer_id);
    if sql.contains("$2") {
        query = query.bind(now_ms());
    }
    let would: i64 = query.fetch_one(&mut *conn).await?;
    if would > bound(limit) {
        return Err(OverAllowance { what, limit, would }.into());
    }
    Ok(())
}

/// An allowance as a bound value (unlimited is `usize::MAX`, beyond what SQL integers hold).
fn bound(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// How a job of `statements` guarded upserts stays all-or-nothing inside a group commit: one
/// statement is by itself (refused, it writes nothing), so it needs no savepoint — two statements
/// fewer; several need one, so that a refusal after the first takes the others back.
fn all_or_nothing(statements: usize) -> Guard {
    if statements == 1 {
        Guard::Transaction
    } else {
        Guard::Savepoint
    }
}

/// Refuses a job run under `guard`: as a value when nothing of it was written (an error there
/// would fail every job of the group commit), as an error when the savepoint must take back what
/// its earlier statements wrote.
fn refuse(guard: Guard, over: OverAllowance) -> Result<Result<(), OverAllowance>> {
    match guard {
        Guard::Transaction => Ok(Err(over)),
        Guard::Savepoint => Err(over.into()),
    }
}

impl Store {
    /// The customer a live secondary id names in `org_id`.
    pub async fn customer_by_secondary_id(&self, org_id: &str, key: &str, value: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT customer_id FROM customer_secondary_ids
             WHERE org_id = $1 AND key = $3 AND value = $4 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(org_id)
        .bind(now_ms())
        .bind(key)
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("customer_id")).transpose().map_err(Into::into)
    }

    /// Sets tags (a tag key has one value per customer; setting it again replaces value and expiry).
    /// Group-committed ([`super::batch`]), like every identity write here. Each tag is one
    /// statement that checks the allowance itself; [`all_or_nothing`] says how a job is guarded.
    pub async fn upsert_tags(&self, org_id: &str, customer_id: &str, tags: &[Index]) -> Result<()> {
        let (org_id, customer_id, tags, limit) =
            (org_id.to_string(), customer_id.to_string(), tags.to_vec(), self.allowances.tags);
        let guard = all_or_nothing(tags.len());
        self.batched(guard, move |tx: &mut Write| -> BoxFuture<'_, Result<Result<(), OverAllowance>>> {
            Box::pin(async move {
                let now = now_ms();
                for tag in &tags {
                    let stored = sqlx::query(
                        "INSERT INTO customer_tags (customer_id, key, value, org_id, expires_at, updated_at)
                         SELECT $1, $2, $3, $4, $5, $6
                         WHERE (SELECT COUNT(*) FROM customer_tags
                                WHERE customer_id = $1 AND key <> $2 AND (expires_at IS NULL OR expires_at > $6)) < $7
                         ON CONFLICT (customer_id, key) DO UPDATE SET value = $3, expires_at = $5, updated_at = $6",
                    )
                    .bind(&customer_id)
                    .bind(&tag.key)
                    .bind(&tag.value)
                    .bind(&org_id)
                    .bind(tag.expires_at)
                    .bind(now)
                    .bind(bound(limit))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if stored == 0 {
                        let live = "SELECT COUNT(*) + 1 FROM customer_tags
                                    WHERE customer_id = $1 AND key <> $3 AND (expires_at IS NULL OR expires_at > $2)";
                        let would = sqlx::query_scalar(live)
                            .bind(&customer_id)
                            .bind(now)
                            .bind(&tag.key)
                            .fetch_one(&mut **tx)
                            .await?;
                        return refuse(guard, OverAllowance { what: "tags", limit, would });
                    }
                }
                Ok(Ok(()))
            })
        })
        .await?
        .map_err(Into::into)
    }

    pub async fn delete_tags(&self, customer_id: &str, keys: &[String]) -> Result<u64> {
        self.delete_keys("customer_tags", customer_id, keys).await
    }

    /// Sets secondary ids, all or none: an id already naming another customer (and not expired)
    /// refuses the whole update.
    pub async fn upsert_secondary_ids(
        &self,
        org_id: &str,
        customer_id: &str,
        ids: &[Index],
    ) -> Result<Result<(), SecondaryIdTaken>> {
        let (org_id, customer_id, ids, limit) =
            (org_id.to_string(), customer_id.to_string(), ids.to_vec(), self.allowances.secondary_ids);
        self.batched(Guard::Savepoint, move |tx: &mut Write| -> BoxFuture<'_, Result<Result<(), SecondaryIdTaken>>> {
            Box::pin(async move {
                let now = now_ms();
                // Every id is checked before any is written: a refusal leaves nothing behind.
                for id in &ids {
                    let owner = sqlx::query(
                        "SELECT customer_id FROM customer_secondary_ids
                         WHERE org_id = $1 AND key = $2 AND value = $3 AND (expires_at IS NULL OR expires_at > $4)",
                    )
                    .bind(&org_id)
                    .bind(&id.key)
                    .bind(&id.value)
                    .bind(now)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if let Some(owner) = owner {
                        let owner: String = owner.try_get("customer_id")?;
                        if owner != customer_id {
                            return Ok(Err(SecondaryIdTaken { key: id.key.clone(), value: id.value.clone(), owner }));
                        }
                    }
                }
                for id in &ids {
                    sqlx::query(
                        "INSERT INTO customer_secondary_ids (org_id, key, value, customer_id, expires_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (org_id, key, value) DO UPDATE SET customer_id = $4, expires_at = $5, updated_at = $6",
                    )
                    .bind(&org_id)
                    .bind(&id.key)
                    .bind(&id.value)
                    .bind(&customer_id)
                    .bind(id.expires_at)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                let count = "SELECT COUNT(*) FROM customer_secondary_ids
                             WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > $2)";
                within(tx, "secondary ids", count, &customer_id, limit).await?;
                Ok(Ok(()))
            })
        })
        .await
    }

    pub async fn delete_secondary_ids(&self, org_id: &str, customer_id: &str, ids: &[(String, String)]) -> Result<u64> {
        let (org_id, customer_id, ids) = (org_id.to_string(), customer_id.to_string(), ids.to_vec());
        self.batched(Guard::Savepoint, move |tx: &mut Write| -> BoxFuture<'_, Result<u64>> {
            Box::pin(async move {
                let mut n = 0;
                for (key, value) in &ids {
                    n += sqlx::query(
                        "DELETE FROM customer_secondary_ids
                         WHERE org_id = $1 AND key = $2 AND value = $3 AND customer_id = $4",
                    )
                    .bind(&org_id)
                    .bind(key)
                    .bind(value)
                    .bind(&customer_id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                }
                Ok(n)
            })
        })
        .await
    }

    /// Sets metadata keys, all or none, within the customer's allowances of keys and bytes. Each key
    /// is one statement that checks both allowances itself.
    pub async fn upsert_metadata(&self, customer_id: &str, entries: &[(String, MetaValue)]) -> Result<()> {
        // Bytes, not characters: SQLite counts a text's bytes once it is cast to a blob.
        let size = match self.backend {
            super::Backend::Sqlite => {
                "COALESCE(SUM(length(CAST(key AS BLOB)) + COALESCE(length(CAST(text_value AS BLOB)), 0)
                     + COALESCE(length(bytes_value), 0)), 0)"
            }
            super::Backend::Postgres => {
                "CAST(COALESCE(SUM(octet_length(key) + COALESCE(octet_length(text_value), 0)
                     + COALESCE(octet_length(bytes_value), 0)), 0) AS BIGINT)"
            }
        };
        let upsert = format!(
            "INSERT INTO customer_metadata (customer_id, key, text_value, bytes_value, updated_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COUNT(*) FROM customer_metadata WHERE customer_id = $1 AND key <> $2) < $6
               AND (SELECT {size} FROM customer_metadata WHERE customer_id = $1 AND key <> $2) + $7 <= $8
             ON CONFLICT (customer_id, key) DO UPDATE SET text_value = $3, bytes_value = $4, updated_at = $5"
        );
        let others = format!("SELECT COUNT(*), {size} FROM customer_metadata WHERE customer_id = $1 AND key <> $2");
        let (customer_id, entries, allowances) = (customer_id.to_string(), entries.to_vec(), self.allowances);
        let guard = all_or_nothing(entries.len());
        self.batched(guard, move |tx: &mut Write| -> BoxFuture<'_, Result<Result<(), OverAllowance>>> {
            Box::pin(async move {
                let now = now_ms();
                for (key, value) in &entries {
                    let (text, bytes) = match value {
                        MetaValue::Text(t) => (Some(t.as_str()), None),
                        MetaValue::Bytes(b) => (None, Some(b.as_slice())),
                    };
                    let own = i64::try_from(key.len() + text.map_or(0, str::len) + bytes.map_or(0, <[u8]>::len))?;
                    // `upsert` and `others` are built from this function's literals; values are bound.
                    let stored = sqlx::query(sqlx::AssertSqlSafe(upsert.as_str()))
                        .bind(&customer_id)
                        .bind(key)
                        .bind(text)
                        .bind(bytes)
                        .bind(now)
                        .bind(bound(allowances.metadata_keys))
                        .bind(own)
                        .bind(bound(allowances.metadata_bytes))
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    if stored == 0 {
                        let (keys, size): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(others.as_str()))
                            .bind(&customer_id)
                            .bind(key)
                            .fetch_one(&mut **tx)
                            .await?;
                        let over = if keys >= bound(allowances.metadata_keys) {
                            OverAllowance { what: "metadata keys", limit: allowances.metadata_keys, would: keys + 1 }
                        } else {
                            let limit = allowances.metadata_bytes;
                            OverAllowance { what: "bytes of metadata", limit, would: size + own }
                        };
                        return refuse(guard, over);
                    }
                }
                Ok(Ok(()))
            })
        })
        .await?
        .map_err(Into::into)
    }

    pub async fn delete_metadata(&self, customer_id: &str, keys: &[String]) -> Result<u64> {
        self.delete_keys("customer_metadata", customer_id, keys).await
    }

    /// Deletes a customer's rows of `table` (keyed by customer and key) for `keys`; returns how many.
    async fn delete_keys(&self, table: &'static str, customer_id: &str, keys: &[String]) -> Result<u64> {
        let sql = format!("DELETE FROM {table} WHERE customer_id = $1 AND key = $2");
        let (customer_id, keys) = (customer_id.to_string(), keys.to_vec());
        // Nothing to refuse: only a database fault can fail a delete, and that fails its turn.
        self.batched(Guard::Transaction, move |tx: &mut Write| -> BoxFuture<'_, Result<u64>> {
            Box::pin(async move {
                let mut n = 0;
                for key in &keys {
                    // `table` is one of this file's literals; values are bound.
                    n += sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(&customer_id)
                        .bind(key)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                }
                Ok(n)
            })
        })
        .await
    }

    /// Live customers carrying tag (key, value) in `org_id`, after `after` (exclusive), in id order:
    /// by-tag work pages through them.
    /// How many customers of `org_id` carry the tag now (what by-tag work would reach).
    pub async fn count_tagged(&self, org_id: &str, key: &str, value: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM customer_tags t JOIN customers c ON c.id = t.customer_id
             WHERE t.org_id = $1 AND t.key = $3 AND t.value = $4 AND (t.expires_at IS NULL OR t.expires_at > $2)
               AND c.decommissioned_at IS NULL",
        )
        .bind(org_id)
        .bind(now_ms())
        .bind(key)
        .bind(value)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn customers_tagged(
        &self,
        org_id: &str,
        key: &str,
        value: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.customer_id FROM customer_tags t JOIN customers c ON c.id = t.customer_id
             WHERE t.org_id = $1 AND t.key = $3 AND t.value = $4 AND (t.expires_at IS NULL OR t.expires_at > $2)
               AND c.decommissioned_at IS NULL AND t.customer_id > $5
             ORDER BY t.customer_id LIMIT $6",
        )
        .bind(org_id)
        .bind(now_ms())
        .bind(key)
        .bind(value)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("customer_id").map_err(Into::into)).collect()
    }

    /// Deletes expired tags and secondary ids; returns how many.
    pub async fn sweep_expired(&self) -> Result<u64> {
        let now = now_ms();
        let a = sqlx::query("DELETE FROM customer_tags WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM customer_secondary_ids WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(a + b)
    }
}
