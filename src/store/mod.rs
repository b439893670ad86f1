//! Persistence: the sqlx pool, migrations, and one file of queries per kind of record.
//!
//! Owns every SQL statement in the server; other modules call these functions and never write SQL.
//! SQLite (embedded, a file under the data directory) is the default; `database_url =
//! "postgres://…"` selects PostgreSQL. Both run the same statements through sqlx's `Any` driver:
//! queries use `$n` placeholders and portable SQL, each backend has its own migrations folder
//! (`migrations/sqlite`, `migrations/postgres`, the same versions), and the few places where the
//! dialects differ ask [`Backend`] (bulk placeholders, SQLite's index hints, how a writer begins).

pub mod activity;
pub mod adoption;
pub mod app_data;
pub mod auth;
pub mod batch;
pub mod calls;
pub mod cluster;
pub mod customer_state;
pub mod customers;
pub mod identity;
pub mod import;
pub mod messaging;
pub mod outbox;
pub mod payment_requests;
pub mod payments;
pub mod providers;
pub mod provision;
pub mod reminders;
pub mod sip_users;
pub mod work;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, one writer at a time.
    Sqlite,
    /// A PostgreSQL server shared by any number of processes.
    Postgres,
}

impl Backend {
    /// The backend of a `database_url`, or why it names none.
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("database_url {url:?}: expected sqlite://<file> or postgres://<user>@<host>/<database>")
        }
    }

    /// The backend a connection talks to.
    pub(crate) fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// ` INDEXED BY <index>` on SQLite, whose planner sometimes picks a worse index for the
    /// statements that carry one; nothing on PostgreSQL, which plans from statistics.
    pub(crate) fn indexed_by(self, index: &str) -> String {
        match self {
            Backend::Sqlite => format!(" INDEXED BY {index}"),
            Backend::Postgres => String::new(),
        }
    }

    /// The column naming a row physically, for deleting a subquery's rows in batches.
    pub(crate) fn row_id(self) -> &'static str {
        match self {
            Backend::Sqlite => "rowid",
            Backend::Postgres => "ctid",
        }
    }

    /// `sql` with its anonymous `?` parameters numbered `$1, $2, …` on PostgreSQL, which has no
    /// anonymous ones (see [`row_placeholders`] for why SQLite keeps them). `?` never occurs in
    /// the store's string literals, so every one is a parameter.
    pub(crate) fn bulk(self, sql: String) -> sqlx::AssertSqlSafe<String> {
        match self {
            Backend::Sqlite => sqlx::AssertSqlSafe(sql),
            Backend::Postgres => {
                let mut out = String::with_capacity(sql.len() + sql.len() / 2);
                let mut n = 0usize;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                sqlx::AssertSqlSafe(out)
            }
        }
    }
}

/// How a [`Store`] connects (config `[database]`).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Connections in the pool. SQLite writes one at a time whatever this says; readers share the rest.
    pub max_connections: u32,
    /// PostgreSQL only: a statement running longer is cancelled by the server (zero: no limit).
    pub statement_timeout: Duration,
    /// How long a request waits for a connection (from the pool, or a new one) before it fails.
    pub acquire_timeout: Duration,
    /// Share transactions among writes that wait at the same time ([`batch`]); off: one each.
    pub group_commit: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            statement_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
            group_commit: true,
        }
    }
}

/// The PostgreSQL advisory lock every write transaction holds until it ends ("hodiwrit"): one
/// writer at a time across every process on the database, as SQLite has one per file. The store's
/// read-then-write steps (allowance counts, leases, customer creation) were written for that; the
/// dispatcher reads the outbox from a cursor, which is sound only if rows become visible in `seq`
/// order; and a group-committed transaction ([`batch`]) touching many accounts could otherwise
/// deadlock with another process's. Money stays exact without it (every debit is a guarded UPDATE,
/// `tests/ledger_processes.rs`); throughput comes from group commit, and reads never wait for it.
pub const WRITER_LOCK: i64 = 0x0068_6f64_6977_7269;

/// The database handle shared by the whole server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The SQLite database file, for [`Store::checkpoint_wal`] (none in memory or on PostgreSQL).
    sqlite_file: Option<PathBuf>,
    /// Serialises this process's write transactions ([`Store::write`]). SQLite allows one writer;
    /// without this, concurrent `BEGIN IMMEDIATE`s wait in SQLite's busy handler, which sleeps in
    /// steps of up to 100 ms (a p99 of 80 ms at 8 sockets); queued here they run back to back.
    /// On PostgreSQL every write transaction also takes [`WRITER_LOCK`], which holds across
    /// processes.
    pub(crate) writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Group commit ([`batch`]): the writer task's queue. None in the writer task's own clone.
    batcher: Option<batch::Batcher>,
    /// How much state one customer may hold; an update over it is refused whole.
    pub(crate) allowances: Allowances,
    /// How long a queued notification is kept for delivery before it expires.
    pub(crate) notification_ttl_ms: i64,
    /// What commits tell the dispatcher and the reminder scheduler.
    pub(crate) signals: std::sync::Arc<Signals>,
    /// The node this process is among several sharing the database ('' alone): queue claims
    /// are marked with it ([`providers`]).
    pub(crate) node_id: std::sync::Arc<str>,
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
    /// A commit here queued notifications: for the other nodes (`crate::cluster::bus`), which
    /// cannot see this process's `outbox` signal.
    outbox_here: tokio::sync::Notify,
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
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    signals: std::sync::Arc<Signals>,
    /// The store's notification lifetime, for the rows this transaction queues.
    pub(crate) notification_ttl_ms: i64,
    queued_notifications: bool,
    moved_reminders: bool,
    /// Payment rows written in bulk just before commit ([`payments`]).
    deferred_payments: Vec<payments::Deferred>,
}

impl Write {
    /// Writes what was deferred, commits, then wakes whoever waits for what this transaction queued.
    pub async fn commit(mut self) -> Result<()> {
        payments::write_deferred(&mut self).await?;
        self.tx.commit().await?;
        if self.queued_notifications {
            self.signals.outbox.notify_one();
            self.signals.outbox_here.notify_one();
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
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Write {
    fn deref_mut(&mut self) -> &mut AnyConnection {
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
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITER_LOCK).execute(&mut *tx).await?;
                tx
            }
        };
        Ok(Write {
            tx,
            _turn: turn,
            signals: self.signals.clone(),
            notification_ttl_ms: self.notification_ttl_ms,
            queued_notifications: false,
            moved_reminders: false,
            deferred_payments: Vec::new(),
        })
    }

    /// This store with `allowances` enforced.
    pub fn with_allowances(self, allowances: Allowances) -> Store {
        Store { allowances, ..self }
    }

    /// This store as node `node_id` of several sharing the database: its queue claims carry the id.
    pub fn with_node_id(self, node_id: &str) -> Store {
        Store { node_id: node_id.into(), ..self }
    }

    /// This store with queued notifications kept `ttl_ms` for delivery (config `notify.ttl_secs`).
    pub fn with_notification_ttl(self, ttl_ms: i64) -> Store {
        Store { notification_ttl_ms: ttl_ms, ..self }
    }

    /// Signalled after each commit that queued notifications: the dispatcher waits on it.
    pub fn outbox_changed(&self) -> &tokio::sync::Notify {
        &self.signals.outbox
    }

    /// Signalled after each commit by this process that queued notifications (not by another
    /// node's wake-up, unlike [`Store::outbox_changed`]): the cluster bus passes it on.
    pub fn outbox_committed_here(&self) -> &tokio::sync::Notify {
        &self.signals.outbox_here
    }

    /// Signalled after each commit that added or moved reminders: the scheduler waits on it.
    pub fn reminders_changed(&self) -> &tokio::sync::Notify {
        &self.signals.reminders
    }

    /// The pool, for store functions that take a connection (`&mut AnyConnection`).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Opens the database at `url`, refusing to create one: for the operator's commands, where a
    /// new empty database would only hide that they ran in the wrong directory.
    pub async fn open_existing(url: &str) -> Result<Store> {
        if let Some(path) = sqlite_path(url) {
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
        Self::open_with(url, &StoreOptions::default()).await
    }

    /// Opens the database at `url` with `options`, refusing one whose schema is newer than this
    /// binary, and applies pending migrations.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store> {
        let (pool, backend, sqlite_file) = connect(url, options).await?;
        let version = schema_version(&pool, backend).await?;
        let known = known_version(backend);
        if version > known {
            anyhow::bail!(
                "the database at {} has schema version {version}, newer than this hodi knows (up to {known}): \
                 a newer release upgraded it; run that release (or a later one) against it",
                redact(url)
            );
        }
        migrator(backend).run(&pool).await.context("applying migrations")?;
        let store = Store {
            pool,
            backend,
            sqlite_file,
            writer: Default::default(),
            batcher: None,
            allowances: Allowances::default(),
            notification_ttl_ms: secs_to_ms(outbox::DEFAULT_TTL_SECS),
            signals: Default::default(),
            node_id: "".into(),
        };
        let batcher = options.group_commit.then(|| batch::Batcher::start(store.clone()));
        Ok(Store { batcher, ..store })
    }

    /// The schema version of the database at `url` without changing it (0: none yet, and an
    /// embedded database that does not exist is not created).
    pub async fn schema_version_at(url: &str) -> Result<i64> {
        if sqlite_path(url).is_some_and(|path| !std::path::Path::new(path).exists()) {
            return Ok(0);
        }
        let (pool, backend, _) = connect(url, &StoreOptions { max_connections: 1, ..StoreOptions::default() }).await?;
        let version = schema_version(&pool, backend).await;
        pool.close().await;
        version
    }

    /// The schema version the database is at, and the newest this binary knows.
    pub async fn schema_versions(&self) -> Result<(i64, i64)> {
        Ok((schema_version(&self.pool, self.backend).await?, known_version(self.backend)))
    }
}

/// A pool on `url`, each connection set up for its backend; nothing migrated yet.
async fn connect(url: &str, options: &StoreOptions) -> Result<(AnyPool, Backend, Option<PathBuf>)> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let mut sqlite_file = None;
    let connect_url = match (backend, sqlite_path(url)) {
        (Backend::Sqlite, Some(path)) => {
            let query = url.split_once('?').map_or("", |(_, q)| q);
            if path != ":memory:" {
                if let Some(parent) = std::path::Path::new(path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                    }
                }
                sqlite_file = Some(PathBuf::from(path));
            }
            // `mode=rwc`: create the file if missing (the Any driver passes the URL through).
            match query {
                "" => format!("sqlite://{path}?mode=rwc"),
                q if q.contains("mode=") => url.to_string(),
                q => format!("sqlite://{path}?{q}&mode=rwc"),
            }
        }
        _ => url.to_string(),
    };
    let statement_timeout_ms = options.statement_timeout.as_millis();
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        // No ping on every acquire: it was a round trip to the connection (a thread hand-off on
        // SQLite, a network one on PostgreSQL) before every statement; a dead connection shows
        // as the statement's own error, and the pool replaces it.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                match backend {
                    Backend::Sqlite => {
                        // Checkpoints normally run in the background (`checkpoint_wal`), keeping
                        // the log short so that a request's commit rarely pays for one; SQLite's
                        // own checkpoint at 4,000 pages (16 MB) stays as the bound under bulk
                        // writes the background pass cannot keep up with.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
                                 PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 4000;",
                        )
                        .await?;
                    }
                    Backend::Postgres => {
                        let sql = format!("SET statement_timeout = {statement_timeout_ms}");
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&connect_url)
        .await
        .with_context(|| format!("opening {}", redact(url)))?;
    if backend == Backend::Sqlite {
        for warning in sqlite_build_warnings(&pool).await? {
            tracing::warn!("{warning}");
        }
    }
    Ok((pool, backend, sqlite_file))
}

/// The compile-time options Hodi's SQLite is built with (`.cargo/config.toml`), each with what
/// its absence costs; one warning per option the linked SQLite lacks.
pub(crate) async fn sqlite_build_warnings(pool: &AnyPool) -> Result<Vec<String>> {
    const WANTED: [(&str, &str); 2] = [
        ("ENABLE_QPSG", "every statement with a bound LIMIT is parsed and planned again on each run"),
        ("DEFAULT_MEMSTATUS=0", "every allocation takes one global mutex"),
    ];
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(pool).await?;
    Ok(WANTED
        .iter()
        .filter(|(option, _)| !options.iter().any(|o| o == option))
        .map(|(option, cost)| {
            format!("SQLite was built without SQLITE_{option} (LIBSQLITE3_FLAGS in .cargo/config.toml): {cost}")
        })
        .collect())
}

/// The migrations of `backend`, embedded in the binary.
fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// The newest schema version this binary knows for `backend`.
fn known_version(backend: Backend) -> i64 {
    migrator(backend).iter().map(|m| m.version).max().unwrap_or(0)
}

/// The file of a `sqlite:` URL (`sqlite://path?options` or `sqlite:path`); None for other URLs or
/// no path.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then_some(path)
}

/// The highest migration applied to the database (0 for a new one).
async fn schema_version(pool: &AnyPool, backend: Backend) -> Result<i64> {
    let exists: i64 = match backend {
        Backend::Sqlite => {
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(pool)
                .await?
        }
        Backend::Postgres => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_tables WHERE tablename = '_sqlx_migrations' AND schemaname = current_schema()",
            )
            .fetch_one(pool)
            .await?
        }
    };
    if exists == 0 {
        return Ok(0);
    }
    Ok(sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?
        .unwrap_or(0))
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

impl Store {
    /// Bytes the database takes on disk: the SQLite file and its log, or the PostgreSQL database.
    pub async fn database_bytes(&self) -> Result<u64> {
        match (&self.sqlite_file, self.backend) {
            (Some(file), _) => {
                let mut wal = file.clone().into_os_string();
                wal.push("-wal");
                Ok([file.clone(), PathBuf::from(wal)]
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok())
                    .map(|m| m.len())
                    .sum())
            }
            (None, Backend::Postgres) => {
                let bytes: i64 =
                    sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&self.pool).await?;
                Ok(u64::try_from(bytes).unwrap_or(0))
            }
            (None, Backend::Sqlite) => Ok(0),
        }
    }

    /// Copies the write-ahead log into the database file without blocking readers or writers
    /// (PASSIVE); run periodically by [`crate::server`]. Nothing to do on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<()> {
        if self.sqlite_file.is_none() {
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

/// Wall-clock microseconds: orders app-data writes (see [`app_data::force_set`]).
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite carries the options `.cargo/config.toml` asks for: without them every
    /// statement with a bound LIMIT is re-prepared on each run, which no test would notice.
    #[tokio::test]
    async fn sqlite_is_built_with_the_options_hodi_relies_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("hodi.db").display())).await.expect("open");
        let warnings = sqlite_build_warnings(store.pool()).await.expect("compile options");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
