//! Three `hodi serve` nodes on one PostgreSQL database and one Redis, used the way apps use them:
//! the official Elarian JS SDK's app on node 1 and its `Simulator` (the customers' phone) on node 2
//! (tests/peers/cluster_e2e.js: SMS in and the reply out, a USSD menu, a checkout, a reminder, an
//! SMS by tag to 10,000 customers with every delivered status back), while a second app, through
//! a hodi-sdk subscription on node 3, sets a reminder on the same 10,000 customers by tag and
//! receives each exactly once, whichever node's scheduler fired it.
//!
//! SQLite is one process's file: on the SQLite run of the suite this has nothing to test and says
//! so; `./scripts/test` runs it on its PostgreSQL run.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use common::redis::Redis;
use common::Hodi;
use hodi_sdk::model::{Reminder, Tag};
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};

const TAGGED: i64 = 10_000;
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_app_and_simulator_and_a_hodi_sdk_subscriber_on_three_nodes() {
    if !common::database::on_postgres() {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
        return;
    }
    let redis = Redis::start(common::free_port());
    let url = redis.url();
    let env = |id: &'static str| {
        vec![
            ("HODI_CLUSTER__NODE_ID", id),
            ("HODI_CLUSTER__HEARTBEAT_MS", "200"),
            ("HODI_CLUSTER__LEASE_MS", "1500"),
            ("HODI_CLUSTER__REDIS_URL", url.as_str()),
        ]
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Hodi::start(&dir.path().join("1"), &env("node-1"));
    let two = Hodi::start_node(&dir.path().join("2"), &one, &env("node-2"));
    let three = Hodi::start_node(&dir.path().join("3"), &one, &env("node-3"));
    let store = one.store().await;
    let creds = one.creds.clone();
    common::tagged::seed(&store, &creds.org_id, "dec", TAGGED, ("campaign", "dec"), 254_720_000_000).await;

    // The second app, on node 3: a reminder on every tagged customer, each received once.
    let reporting = store.create_app(&creds.org_id, None, "reporting").await.expect("second app");
    let subscriber = Elarian::connect(Options::new(
        Endpoint::Tcp(three.listening.tcp.clone().expect("tcp listener")),
        &creds.org_id,
        &reporting,
        Credentials::ApiKey(creds.api_key.clone()),
    ));
    subscriber.connected(WAIT).await.expect("hodi-sdk subscriber connected to node 3");
    let mut stream = subscriber.notifications().expect("the notification stream");
    let received = tokio::spawn(async move {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        // Until every customer's reminder came, then a second more for any sent twice.
        let mut all_since: Option<Instant> = None;
        while all_since.is_none_or(|t| t.elapsed() < Duration::from_secs(1)) && Instant::now() < deadline {
            let Some(n) = stream.next_within(Duration::from_millis(200)).await else { continue };
            if let Event::Reminder(r) = &n.event {
                if r.reminder.as_ref().is_some_and(|r| r.key == "dec-report") {
                    *seen.entry(n.customer_id.clone()).or_default() += 1;
                }
            }
            n.reply(Reply::default()).await.expect("answer taken");
            if all_since.is_none() && seen.len() as i64 == TAGGED {
                all_since = Some(Instant::now());
            }
        }
        seen
    });
    let reminder = Reminder {
        key: "dec-report".into(),
        remind_at: SystemTime::now() + Duration::from_secs(4),
        interval: None,
        payload: Some("december".into()),
    };
    let work = subscriber.add_customer_reminder_by_tag(Tag::new("campaign", "dec"), reminder).await.expect("work");
    assert!(work.work_id.is_some(), "{work:?}");

    // The official SDK's app on node 1 and phone on node 2.
    let phone_port = Hodi::port(&two.listening.tls);
    let tagged = TAGGED.to_string();
    let out = tokio::task::block_in_place(|| {
        one.node_ok("cluster_e2e.js", &[], &[("HODI_PHONE_TLS_PORT", &phone_port), ("HODI_TAGGED", &tagged)])
    });
    assert!(out.contains(&format!("\"reached\":{TAGGED}")), "{out}");
    eprintln!("official SDK across nodes 1 and 2: {}", out.trim());

    let seen = received.await.expect("the subscriber's count");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert_eq!(seen.len() as i64, TAGGED, "every tagged customer's reminder reached the app on node 3");
    assert!(twice.is_empty(), "reminders fired more than once: {twice:?}");
    let fired_by = |node: &Hodi| node.stderr().matches("reminders fired").count();
    eprintln!(
        "10,000 reminders each received once on node 3; batches fired by nodes 1/2/3 (debug log, may be 0): {}/{}/{}",
        fired_by(&one),
        fired_by(&two),
        fired_by(&three)
    );
    drop(redis);
}
