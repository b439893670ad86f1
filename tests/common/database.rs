//! The database a test's server runs on: the embedded SQLite file under its data directory, or,
//! with `HODI_TEST_DATABASE=postgres`, a fresh PostgreSQL database of its own.
//!
//! `./scripts/test` runs the suite once per backend. A PostgreSQL database is made per data
//! directory (a server restarted on the same directory finds its data again) and dropped when the
//! last holder of its [`TestDatabase`] goes; databases of test processes that died without
//! dropping theirs are swept by the next one to make a database, and by `./scripts/test` at the
//! end. The server the tests reach is `HODI_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth, as on these machines).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Whether this run stores on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("HODI_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

fn server() -> String {
    std::env::var("HODI_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A test's database; a PostgreSQL one is dropped when the last clone goes.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// The database for a server whose data directory is `data_dir`: the same one for as long as
    /// someone holds it.
    pub fn for_data_dir(data_dir: &Path) -> Arc<TestDatabase> {
        if !on_postgres() {
            return Arc::new(TestDatabase {
                url: format!("sqlite://{}", data_dir.join("hodi.db").display()),
                postgres_name: None,
            });
        }
        static LIVE: OnceLock<Mutex<HashMap<PathBuf, Weak<TestDatabase>>>> = OnceLock::new();
        let mut live = LIVE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = live.get(data_dir).and_then(Weak::upgrade) {
            return db;
        }
        let db = Arc::new(Self::new_postgres());
        live.insert(data_dir.to_path_buf(), Arc::downgrade(&db));
        db
    }

    fn new_postgres() -> TestDatabase {
        static MADE: AtomicU32 = AtomicU32::new(0);
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(sweep_orphans);
        let name = format!("hodi_t_{}_{}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed));
        psql(&format!("CREATE DATABASE {name}"));
        TestDatabase { url: format!("{}/{name}", server()), postgres_name: Some(name) }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            // FORCE: a server the test left running (in-process ones outlive their directory by a
            // moment) would otherwise keep it.
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs one statement as the superuser on the `postgres` database, panicking with its error.
fn psql(statement: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", &format!("{}/postgres", server()), "-c", statement])
        .output()
        .expect("running psql (HODI_TEST_DATABASE=postgres needs the PostgreSQL client)");
    assert!(out.status.success(), "psql {statement:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drops the test databases of processes that are gone (a test binary killed mid-run).
fn sweep_orphans() {
    let names = psql("SELECT datname FROM pg_database WHERE datname LIKE 'hodi\\_t\\_%'");
    for name in names.lines() {
        let pid =
            name.strip_prefix("hodi_t_").and_then(|rest| rest.split('_').next()).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}
