//! Persistence: the sqlx pool, migrations, and one file of queries per kind of record.
//!
//! Owns every SQL statement in the server; other modules call these functions and never write SQL.
//! SQLite (embedded, a file under the data directory) is the default. Queries use `$n` placeholders
//! and portable types so the PostgreSQL backend is a second migrations folder, not a rewrite.

pub mod activity;
pub mod adoption;
pub mod app_data;
pub mod auth;
pub mod calls;
pub mod customers;
pub mod identity;
pub mod messaging;
pub mod outbox;
pub mod payment_requests;
pub mod payments;
pub mod providers;
pub mod provision;
pub mod reminders;
pub mod work;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// The database handle shared by the whole server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    /// Serialises this process's write transactions ([`Store::write`]). SQLite allows one writer;
    /// without this, concurrent `BEGIN IMMEDIATE`s wait in SQLite's busy handler, which sleeps in
    /// steps of up to 100 ms (a p99 of 80 ms at 8 sockets); queued here they run back to back.
    pub(crate) writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How much state one customer may hold; an update over it is refused whole.
    pub(crate) allowances: Allowances,
    /// How long a queued notification is kept for delivery before it expires.
    pub(crate) notification_ttl_ms: i64,
    /// What commits tell the dispatcher and the reminder scheduler.
    pub(crate) signals: std::sync::Arc<Signals>,
}

/// What a committed write tells the rest of the server, shared by every clone of a [`Store`].
/// A write that queued a notification or set a reminder signals on commit by itself, so a producer
/// cannot forget to wake the dispatcher, and nobody is woken for a write that rolled back.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// A commit queued notifications (`outbox::insert_many`, `outbox::insert_purse`).
    outbox: tokio::sync::Notify,
    /// A commit added or moved reminders (`upsert_reminders`, adoption).
    reminders: tokio::sync::Notify,
}

/// How much state one customer may hold (config `customer.max_*`); unlimited unless set.
#[derive(Debug, Clone, Copy)]
pub struct Allowances {
    pub tags: usize,
    pub secondary_ids: usize,
    pub metadata_keys: usize,
    pub metadata_bytes: usize,
}

impl Default for Allowances {
    fn default() -> Self {
        Allowances {
            tags: usize::MAX,
            secondary_ids: usize::MAX,
            metadata_keys: usize::MAX,
            metadata_bytes: usize::MAX,
        }
    }
}

/// A write transaction from [`Store::write`]; used as a connection (`&mut *tx`), ended by
/// [`Write::commit`] (dropping it rolls back).
pub struct Write {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    signals: std::sync::Arc<Signals>,
    /// The store's notification lifetime, for the rows this transaction queues.
    pub(crate) notification_ttl_ms: i64,
    queued_notifications: bool,
    moved_reminders: bool,
}

impl Write {
    /// Commits, then wakes whoever waits for what this transaction queued.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        if self.queued_notifications {
            self.signals.outbox.notify_one();
        }
        if self.moved_reminders {
            self.signals.reminders.notify_one();
        }
        Ok(())
    }

    /// Notes that this transaction queued notifications: the dispatcher is woken on commit.
    pub(crate) fn queued_notifications(&mut self) {
        self.queued_notifications = true;
    }

    /// Notes that this transaction added or moved reminders: the scheduler looks again on commit.
    pub(crate) fn moved_reminders(&mut self) {
        self.moved_reminders = true;
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for Write {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Write {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl Store {
    /// Begins a write transaction: every transaction that writes starts here. It begins as the
    /// writer (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// "database is locked" when another writer got in between, and SQLite cannot wait that out
    /// for it. It waits for this process's other writers first (see `writer`). A store function
    /// holding one must not call another that begins one.
    pub async fn write(&self) -> Result<Write> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Write {
            tx,
            _turn: turn,
            signals: self.signals.clone(),
            notification_ttl_ms: self.notification_ttl_ms,
            queued_notifications: false,
            moved_reminders: false,
        })
    }

    /// This store with `allowances` enforced.
    pub fn with_allowances(self, allowances: Allowances) -> Store {
        Store { allowances, ..self }
    }

    /// This store with queued notifications kept `ttl_ms` for delivery (config `notify.ttl_secs`).
    pub fn with_notification_ttl(self, ttl_ms: i64) -> Store {
        Store { notification_ttl_ms: ttl_ms, ..self }
    }

    /// Signalled after each commit that queued notifications: the dispatcher waits on it.
    pub fn outbox_changed(&self) -> &tokio::sync::Notify {
        &self.signals.outbox
    }

    /// Signalled after each commit that added or moved reminders: the scheduler waits on it.
    pub fn reminders_changed(&self) -> &tokio::sync::Notify {
        &self.signals.reminders
    }

    /// The pool, for store functions that take a connection (`&mut SqliteConnection`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens the database at `url`, refusing to create one: for the operator's commands, where a
    /// new empty database would only hide that they ran in the wrong directory.
    pub async fn open_existing(url: &str) -> Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if !std::path::Path::new(path).exists() {
                anyhow::bail!(
                    "no Hodi database at {path}: run `hodi serve` here first, or point at the server's data \
                     (--config, HODI_DATA_DIR or HODI_DATABASE_URL)"
                );
            }
        }
        Self::open(url).await
    }

    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
            }
        } else if !url.starts_with("sqlite:") {
            anyhow::bail!("database_url {url:?}: only sqlite is supported in this version (PostgreSQL comes with the scale-out work)");
        }
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("database_url {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Checkpoints normally run in the background (`checkpoint_wal`), keeping the log short so
            // that a request's commit rarely pays for one; SQLite's own checkpoint at 4,000 pages
            // (16 MB) stays as the bound under bulk writes the background pass cannot keep up with.
            .pragma("wal_autocheckpoint", "4000");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .with_context(|| format!("opening {url}"))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("applying migrations")?;
        Ok(Store {
            pool,
            writer: Default::default(),
            allowances: Allowances::default(),
            notification_ttl_ms: secs_to_ms(outbox::DEFAULT_TTL_SECS),
            signals: Default::default(),
        })
    }
}

impl Store {
    /// Copies the write-ahead log into the database file without blocking readers or writers
    /// (PASSIVE); run periodically by [`crate::server`].
    pub async fn checkpoint_wal(&self) -> Result<()> {
        if self.pool.connect_options().get_filename().as_os_str().is_empty() {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch: the unit of every time column.
/// A number of seconds (from config) as milliseconds, saturating.
pub fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// SHA-256 of a secret, hex encoded: what is stored for API keys and auth tokens.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random secret with `prefix`, 256 bits of entropy.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A new id with a type prefix, e.g. `cst_…`: a UUIDv7, so ids made one after another sort one
/// after another and land side by side in the primary-key B-trees (random ids touched a random
/// page per insert once tables outgrew the cache). Ids are not secrets; [`new_secret`] is.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

// Bulk statements (many rows per statement) use SQLite's anonymous `?` parameters throughout, bound
// in the order they appear. Not `$n`: SQLite finds a named parameter by walking the statement's list
// of names and sqlx asks for every name when it binds, so binding n named values costs n² (at 1,200
// values per statement that was a quarter of send-by-tag's CPU). Single-row statements keep `$n`.
// Every statement is a round trip to SQLite's worker thread, so fewer, larger ones are cheaper.

/// `(?, ?, …), (…)`: `rows` rows of `cols` anonymous parameters.
pub(crate) fn row_placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", list_placeholders(cols));
    vec![row; rows].join(", ")
}

/// `?, ?, …`: `n` anonymous parameters, for `IN (…)` lists.
pub(crate) fn list_placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Values bound per bulk statement: well under SQLite's 32,766.
pub(crate) const VALUES_PER_STATEMENT: usize = 960;

/// Rows per multi-row statement for rows of `values_per_row` bound values.
pub(crate) const fn rows_per_statement(values_per_row: usize) -> usize {
    let rows = VALUES_PER_STATEMENT / values_per_row;
    if rows == 0 {
        1
    } else {
        rows
    }
}
