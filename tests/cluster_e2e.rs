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

/// Short heartbeats and leases (a dead node's apps move within seconds), and the test's Redis.
fn node_env<'a>(id: &'a str, redis_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("HODI_CLUSTER__NODE_ID", id),
        ("HODI_CLUSTER__HEARTBEAT_MS", "200"),
        ("HODI_CLUSTER__LEASE_MS", "1500"),
        ("HODI_CLUSTER__REDIS_URL", redis_url),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_app_and_simulator_and_a_hodi_sdk_subscriber_on_three_nodes() {
    if !common::database::on_postgres() {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
        return;
    }
    let redis = Redis::start(common::free_port());
    let url = redis.url();
    let env = |id| node_env(id, &url);
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

/// The app's customers tagged `list=jan` get a reminder and then an SMS by tag; the node holding
/// the app's socket (and running the work) is killed during the send. Behind a load balancer the
/// app reconnects to the other node, which takes the work over: every customer's delivered status
/// reaches the app at least once, and the reminders (due while both nodes were up) exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_behind_a_balancer_survives_kill_9_of_its_node_during_a_by_tag_send() {
    if !common::database::on_postgres() {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
        return;
    }
    const CUSTOMERS: i64 = 5_000;
    let redis = Redis::start(common::free_port());
    let url = redis.url();
    let env = |id| node_env(id, &url);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut one = Hodi::start(&dir.path().join("1"), &env("node-1"));
    let two = Hodi::start_node(&dir.path().join("2"), &one, &env("node-2"));
    let store = one.store().await;
    let creds = one.creds.clone();
    common::tagged::seed(&store, &creds.org_id, "jan", CUSTOMERS, ("list", "jan"), 254_730_000_000).await;
    let tcp = |node: &Hodi| node.listening.tcp.clone().expect("tcp listener");
    let (balanced, _balancer) = common::balancer::start(vec![tcp(&one), tcp(&two)]).await;

    // The phone on node 2; the app through the balancer (so on node 1 while it lives).
    let phone = hodi_sdk::Simulator::connect(Options::new(
        Endpoint::Tcp(tcp(&two)),
        &creds.org_id,
        &creds.app_id,
        Credentials::ApiKey(creds.api_key.clone()),
    ));
    phone.connected(WAIT).await.expect("phone connected to node 2");
    let mut phone_events = phone.events().expect("simulator events");
    tokio::spawn(async move { while phone_events.recv().await.is_some() {} });
    let mut options =
        Options::new(Endpoint::Tcp(balanced), &creds.org_id, &creds.app_id, Credentials::ApiKey(creds.api_key.clone()));
    options.notification_window = 32;
    let app = Elarian::connect(options);
    app.connected(WAIT).await.expect("app connected through the balancer");
    let mut stream = app.notifications().expect("the notification stream");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(n) = stream.next_within(Duration::from_secs(300)).await {
            let what = match &n.event {
                Event::Reminder(_) => Some("reminder"),
                Event::MessageStatus(s) if s.status == 300 => Some("delivered"),
                _ => None,
            };
            if let Some(what) = what {
                let _ = seen_tx.send((what, n.customer_id.clone()));
            }
            let _ = n.reply(Reply::default()).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await; // node 1 learns of node 2's phone

    // Reminders, due while both nodes are up: each arrives once.
    let reminder = Reminder {
        key: "jan-due".into(),
        remind_at: SystemTime::now() + Duration::from_secs(2),
        interval: None,
        payload: None,
    };
    app.add_customer_reminder_by_tag(Tag::new("list", "jan"), reminder).await.expect("reminders by tag");
    let mut reminders: HashMap<String, usize> = HashMap::new();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    let started = Instant::now();
    while (reminders.len() as i64) < CUSTOMERS {
        assert!(started.elapsed() < Duration::from_secs(120), "{} of {CUSTOMERS} reminders arrived", reminders.len());
        if let Ok(Some((what, customer))) = tokio::time::timeout(Duration::from_millis(200), seen_rx.recv()).await {
            let counts = if what == "reminder" { &mut reminders } else { &mut delivered };
            *counts.entry(customer).or_default() += 1;
        }
    }

    // The send by tag, run by node 1 until it is killed.
    let work = app
        .send_message_by_tag(
            Tag::new("list", "jan"),
            hodi_sdk::model::channel::sms("21356"),
            hodi_sdk::model::message::text("january sale"),
        )
        .await
        .expect("work started");
    let work_id = work.work_id.expect("a work id");
    loop {
        let record = store.work(&work_id).await.expect("work").expect("recorded");
        assert_eq!(record.state, "running", "the work ended before the kill: {record:?}");
        if record.customers > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "no progress recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    one.kill();
    let killed = Instant::now();

    while (delivered.len() as i64) < CUSTOMERS {
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "{} of {CUSTOMERS} delivered statuses reached the app after the kill",
            delivered.len()
        );
        if let Ok(Some((what, customer))) = tokio::time::timeout(Duration::from_millis(200), seen_rx.recv()).await {
            let counts = if what == "reminder" { &mut reminders } else { &mut delivered };
            *counts.entry(customer).or_default() += 1;
        }
    }
    let all_delivered = killed.elapsed();
    // A little longer, for any reminder sent twice.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        if let Ok(Some(("reminder", customer))) = tokio::time::timeout(Duration::from_millis(100), seen_rx.recv()).await
        {
            *reminders.entry(customer).or_default() += 1;
        }
    }
    let twice: Vec<_> = reminders.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "reminders received more than once: {twice:?}");
    let record = store.work(&work_id).await.expect("work").expect("recorded");
    assert_eq!((record.state.as_str(), record.customers), ("done", CUSTOMERS), "node 2 finished the work");
    let repeated = delivered.values().filter(|n| **n > 1).count();
    eprintln!(
        "killed node 1 during the send; every delivered status at the app {all_delivered:?} later \
         ({repeated} customers' statuses came more than once)"
    );
    drop(redis);
}
