//! Copying a whole database into an empty one (`hodi import --from <url>`): how an operator who
//! outgrows the embedded store moves to PostgreSQL without losing history, or moves between any
//! two databases Hodi runs on.
//!
//! Owns the list of tables and their order; reads the source and writes the destination through
//! the same [`Store`] handles the server uses. Both are migrated to this binary's schema before
//! anything is copied, so their columns are the same; the copy is one transaction on the
//! destination (nothing is left half-imported) and checks its row counts before it commits.

use anyhow::{bail, Context, Result};
use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{rows_per_statement, Backend, Store};

/// Every table, parents before the tables whose foreign keys point at them. Not copied:
/// `cluster_nodes` and `delivery_leases`, which running nodes rebuild within a heartbeat.
pub const TABLES: &[&str] = &[
    "orgs",
    "apps",
    "api_keys",
    "auth_tokens",
    "purses",
    "channel_numbers",
    "customers",
    "customer_numbers",
    "app_data",
    "customer_tags",
    "customer_secondary_ids",
    "customer_metadata",
    "activity_sessions",
    "activities",
    "reminders",
    "work",
    "outbox",
    "messages",
    "messaging_sessions",
    "messaging_consent",
    "payment_accounts",
    "payment_transactions",
    "payment_entries",
    "call_records",
    "provider_queue",
    "provider_parts",
    "payment_requests",
];

/// Identity columns whose sequence must continue after the copied rows (PostgreSQL; SQLite's
/// AUTOINCREMENT follows explicit ids by itself).
const IDENTITIES: &[(&str, &str)] = &[("outbox", "seq"), ("payment_entries", "id")];

/// How a column's values are read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Real,
    Text,
    Bytes,
}

impl Kind {
    /// From a declared type, as SQLite's `pragma table_info` or PostgreSQL's catalogue gives it.
    fn of(declared: &str) -> Result<Kind> {
        let t = declared.to_ascii_uppercase();
        Ok(if t.contains("INT") {
            Kind::Integer
        } else if t.contains("DOUBLE") || t.contains("REAL") || t.contains("FLOAT") {
            Kind::Real
        } else if t.contains("TEXT") || t.contains("CHAR") {
            Kind::Text
        } else if t.contains("BLOB") || t.contains("BYTEA") {
            Kind::Bytes
        } else {
            bail!("a column of type {declared:?} cannot be copied")
        })
    }
}

/// One value on its way from the source row to the destination statement.
enum Value {
    Integer(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// What one table's copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: u64,
}

/// How an import is going, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<'a> {
    /// Before the first row: how many rows the source holds in all.
    Started { rows: u64 },
    /// Another batch written.
    Rows(u64),
    /// A table done.
    Table(&'a Copied),
}

impl Store {
    /// Copies every row of `source` into this store, which must hold no org yet. `progress` hears
    /// the rows to copy, each batch written and each table done. Returns the rows copied per table.
    pub async fn import_from(&self, source: &Store, mut progress: impl FnMut(Progress)) -> Result<Vec<Copied>> {
        let (from_version, _) = source.schema_versions().await?;
        let (to_version, _) = self.schema_versions().await?;
        if from_version != to_version {
            bail!("the source is at schema version {from_version} and the destination at {to_version}");
        }
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&self.pool).await?;
        if orgs > 0 {
            bail!("the destination already holds {orgs} org(s): import goes into an empty database");
        }
        let mut tx = self.write().await?;
        if self.backend == Backend::Sqlite {
            // Rows arrive parents first, but a customer adopted by a later one, or a message a
            // queue row points at, may still come in any order within a table: check at commit.
            sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
        }
        let mut total = 0u64;
        for &table in TABLES {
            let count = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count)).fetch_one(&source.pool).await?;
            total += n.max(0) as u64;
        }
        progress(Progress::Started { rows: total });
        let mut done = Vec::with_capacity(TABLES.len());
        for &table in TABLES {
            let columns = self.columns(table).await?;
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let select = format!("SELECT {} FROM {table}", names.join(", "));
            let insert = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
            let per_statement = rows_per_statement(columns.len());
            let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_statement);
            let mut rows = 0u64;
            let mut stream = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&source.pool);
            while let Some(row) = stream.try_next().await.with_context(|| format!("reading {table}"))? {
                batch.push(values(&row, &columns).with_context(|| format!("reading a row of {table}"))?);
                if batch.len() == per_statement {
                    let n = write_rows(&mut tx, &insert, &batch).await.with_context(|| format!("writing {table}"))?;
                    rows += n;
                    progress(Progress::Rows(n));
                    batch.clear();
                }
            }
            drop(stream);
            if !batch.is_empty() {
                let n = write_rows(&mut tx, &insert, &batch).await.with_context(|| format!("writing {table}"))?;
                rows += n;
                progress(Progress::Rows(n));
            }
            let count = format!("SELECT COUNT(*) FROM {table}");
            let there: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone())).fetch_one(&mut *tx).await?;
            let here: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count)).fetch_one(&source.pool).await?;
            if there != here || there as u64 != rows {
                bail!("{table}: {here} rows in the source, {rows} read, {there} in the destination; nothing imported");
            }
            let copied = Copied { table, rows };
            progress(Progress::Table(&copied));
            done.push(copied);
        }
        if self.backend == Backend::Postgres {
            for (table, column) in IDENTITIES {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                         (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
        }
        tx.commit().await.context("committing the import")?;
        Ok(done)
    }

    /// The columns of `table` with how to copy them, in their declared order.
    async fn columns(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let rows = match self.backend {
            Backend::Sqlite => {
                let sql = format!("SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid");
                sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?
            }
            Backend::Postgres => {
                sqlx::query(
                    "SELECT CAST(column_name AS TEXT) AS name, CAST(data_type AS TEXT) AS type FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&self.pool)
                .await?
            }
        };
        if rows.is_empty() {
            bail!("no table {table} in the destination");
        }
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("name")?, Kind::of(&r.try_get::<String, _>("type")?)?)))
            .collect()
    }
}

fn values(row: &AnyRow, columns: &[(String, Kind)]) -> Result<Vec<Value>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Integer => Value::Integer(row.try_get(i)?),
                Kind::Real => Value::Real(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Bytes => Value::Bytes(row.try_get(i)?),
            })
        })
        .collect()
}

/// Inserts `batch` with one statement; how many rows it wrote.
async fn write_rows(tx: &mut super::Write, insert: &str, batch: &[Vec<Value>]) -> Result<u64> {
    let cols = batch.first().map_or(0, Vec::len);
    let sql = format!("{insert}{}", super::row_placeholders(batch.len(), cols));
    // Table and column names come from the schema; every value is bound.
    let mut query = sqlx::query(Backend::of(tx).bulk(sql));
    for row in batch {
        for v in row {
            query = match v {
                Value::Integer(x) => query.bind(*x),
                Value::Real(x) => query.bind(*x),
                Value::Text(x) => query.bind(x.as_deref()),
                Value::Bytes(x) => query.bind(x.as_deref()),
            };
        }
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}
