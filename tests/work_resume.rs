//! By-tag work survives its process: `hodi serve` is killed (SIGKILL) while it sets a reminder on
//! each of 200,000 tagged customers, and the restarted server finishes the work from the last
//! page it had recorded, so every customer has the reminder exactly once and the work says done.
//! (Across nodes, another node resumes it: tests/cluster.rs.)

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Hodi;
use hodi_sdk::model::{Reminder, Tag};
use hodi_sdk::{Credentials, Elarian, Endpoint, Options};

const CUSTOMERS: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_tag_work_killed_mid_way_is_finished_by_the_restarted_server_exactly_once_per_customer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("HODI_LOG", "info")];
    let mut first = Hodi::start(dir.path(), &env);
    let store = first.store().await;
    let creds = first.creds.clone();
    common::tagged::seed(&store, &creds.org_id, "wave", CUSTOMERS, ("wave", "one"), 254_700_000_000).await;

    let addr = first.listening.tcp.clone().expect("tcp listener");
    let app = Elarian::connect(Options::new(
        Endpoint::Tcp(addr),
        &creds.org_id,
        &creds.app_id,
        Credentials::ApiKey(creds.api_key.clone()),
    ));
    app.connected(Duration::from_secs(20)).await.expect("app connected");
    let reminder = Reminder {
        key: "renewal".into(),
        remind_at: SystemTime::now() + Duration::from_secs(3600),
        interval: None,
        payload: Some("due".into()),
    };
    let work = app.add_customer_reminder_by_tag(Tag::new("wave", "one"), reminder).await.expect("work started");
    let work_id = work.work_id.expect("a work id");

    // Killed once it has recorded some progress, long before the end.
    let started = Instant::now();
    loop {
        let record = store.work(&work_id).await.expect("work").expect("recorded");
        assert_eq!(
            record.state, "running",
            "the work ended before the kill ({} customers): {record:?}",
            record.customers
        );
        if record.customers > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress recorded in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    drop(app);
    let at_kill = store.work(&work_id).await.expect("work").expect("recorded");
    assert_eq!(at_kill.state, "running");
    assert!(at_kill.customers < CUSTOMERS, "killed before the end: {at_kill:?}");

    let second = Hodi::start(dir.path(), &env);
    let started = Instant::now();
    let done = loop {
        let record = store.work(&work_id).await.expect("work").expect("recorded");
        if record.state != "running" {
            break record;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not finished 120 s after the restart: {record:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((done.state.as_str(), done.customers, done.error.as_deref()), ("done", CUSTOMERS, None));
    let with_reminder: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM reminders WHERE key = 'renewal' AND work_id = $1")
            .bind(&work_id)
            .fetch_one(store.pool())
            .await
            .expect("count");
    assert_eq!(with_reminder, CUSTOMERS, "every tagged customer has the reminder once");
    let log = second.stderr();
    let resumed = format!("customers={}", at_kill.customers);
    assert!(
        log.lines().any(|l| l.contains("resuming work") && l.contains(&resumed)),
        "the restarted server says it resumed the work from where it was killed:\n{log}"
    );
    eprintln!(
        "killed after {} of {CUSTOMERS} customers; the restarted server finished in {:?}",
        at_kill.customers,
        started.elapsed()
    );
    drop(first);
}
