//! Several `hodi serve` processes on one PostgreSQL database: a notification produced on one node
//! is delivered by the node holding the app's socket, `hodi cluster` shows who is up and who
//! delivers what, and when the delivering node is killed (`kill -9`) another node holding a
//! socket of the app takes its lease over and delivers what was queued, nothing lost. With Redis,
//! a commit on one node wakes the delivering node at once (not at its next poll); with Redis
//! stopped nothing is lost, and the fast path returns when Redis does.
//!
//! SQLite is one process's file, so on the SQLite run of the suite these tests have nothing to
//! test and say so; `./scripts/test` runs them on its PostgreSQL run.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::Hodi;
use hodi_sdk::model::channel;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Notifications, Options, Reply, Simulator};

const WAIT: Duration = Duration::from_secs(20);

/// Short heartbeats and leases, so a dead node's apps move within seconds.
fn node_env(id: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("HODI_CLUSTER__NODE_ID", id),
        ("HODI_CLUSTER__HEARTBEAT_MS", "200"),
        ("HODI_CLUSTER__LEASE_MS", "1500"),
        ("HODI_NOTIFY__OUTBOX_POLL_MS", "100"),
    ]
}

/// True on the SQLite run of the suite, saying why these tests have nothing to do there.
fn sqlite_run() -> bool {
    let sqlite = !common::database::on_postgres();
    if sqlite {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
    }
    sqlite
}

/// Nodes A and B on one database, each with `extra` settings on top of [`node_env`].
fn two_nodes(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Hodi, Hodi) {
    let env = |id: &'static str| {
        let mut env = node_env(id);
        env.extend_from_slice(extra);
        env
    };
    let a = Hodi::start(&dir.join("a"), &env("node-a"));
    let b = Hodi::start_node(&dir.join("b"), &a, &env("node-b"));
    (a, b)
}

fn options(node: &Hodi, creds: &common::DevCredentials) -> Options {
    let addr = node.listening.tcp.clone().expect("tcp listener");
    Options::new(Endpoint::Tcp(addr), &creds.org_id, &creds.app_id, Credentials::ApiKey(creds.api_key.clone()))
}

/// The dev app connected to `node`, and its notification stream.
async fn app_on(node: &Hodi, creds: &common::DevCredentials) -> (Elarian, Notifications) {
    let app = Elarian::connect(options(node, creds));
    app.connected(WAIT).await.unwrap_or_else(|e| panic!("app connected to {}: {e:?}", node.data_dir.display()));
    let stream = app.notifications().expect("the notification stream");
    (app, stream)
}

/// A simulator socket connected to `node`.
async fn phone_on(node: &Hodi, creds: &common::DevCredentials) -> Simulator {
    let phone = Simulator::connect(options(node, creds));
    phone.connected(WAIT).await.unwrap_or_else(|e| panic!("simulator connected to {}: {e:?}", node.data_dir.display()));
    phone
}

fn sms(text: &str) -> Vec<hodi_sdk::wire::InboundMessageBody> {
    vec![hodi_sdk::wire::InboundMessageBody {
        entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(text.into())),
    }]
}

/// Texts the app from `count` customers through `phone`, labelled `label-i`.
async fn text_the_app(phone: &Simulator, label: &str, count: usize) {
    for i in 0..count {
        phone
            .receive_message(format!("+2547009{i:05}"), channel::sms("21356"), sms(&format!("{label}-{i}")), None)
            .await
            .expect("the simulator's message is taken");
    }
}

/// Reads notifications until every text in `want` has arrived (answering each); panics after `WAIT`.
async fn receive_all(stream: &mut Notifications, want: &HashSet<String>) {
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(n) = stream.next_within(left).await else {
            let missing: Vec<_> = want.difference(&seen).collect();
            panic!("{} of {} arrived; missing {missing:?}", want.len() - missing.len(), want.len())
        };
        if let Event::ReceivedMessage(m) = &n.event {
            seen.insert(m.text().unwrap_or_default().to_string());
        }
        n.reply(Reply::default()).await.expect("answer taken");
    }
}

fn cluster_output(node: &Hodi) -> String {
    let out = node.cli().arg("cluster").output().expect("hodi cluster");
    assert!(out.status.success(), "hodi cluster failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `hodi cluster` says `app` is delivered by `node_id`.
fn wait_for_lease(node: &Hodi, app: &str, node_id: &str) -> String {
    let started = Instant::now();
    loop {
        let out = cluster_output(node);
        if out.contains(&format!("app {app} delivered by {node_id} (lease")) && !out.contains("expired") {
            return out;
        }
        assert!(started.elapsed() < WAIT, "{node_id} never took {app}'s lease:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_produced_on_one_node_is_delivered_by_the_node_holding_the_apps_socket() {
    if sqlite_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(dir.path(), &[]);
    let creds = a.creds.clone();

    // The app on node B, the phone on node A: the message is stored (and its notification
    // queued) by A, delivered by B.
    let (_app, mut notifications) = app_on(&b, &creds).await;
    let out = wait_for_lease(&a, &creds.app_id, "node-b");
    assert!(out.contains("node-a  up") && out.contains("node-b  up"), "both nodes are listed as up:\n{out}");
    let phone = phone_on(&a, &creds).await;
    text_the_app(&phone, "across", 20).await;
    receive_all(&mut notifications, &(0..20).map(|i| format!("across-{i}")).collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_delivering_node_is_killed_another_node_with_a_socket_takes_over_and_nothing_is_lost() {
    if sqlite_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, b) = two_nodes(dir.path(), &[]);
    let creds = a.creds.clone();

    // The app's only socket on A first, so A takes the lease; then a second socket on B.
    let (_on_a, mut via_a) = app_on(&a, &creds).await;
    wait_for_lease(&b, &creds.app_id, "node-a");
    let (_on_b, mut via_b) = app_on(&b, &creds).await;
    let phone = phone_on(&b, &creds).await;
    text_the_app(&phone, "before", 5).await;
    receive_all(&mut via_a, &(0..5).map(|i| format!("before-{i}")).collect()).await;
    // One node delivers an app at a time: B's socket got none of them (nor duplicates).
    let stray = via_b.next_within(Duration::from_millis(700)).await;
    assert!(stray.is_none(), "node B delivered while node A held the lease: {:?}", stray.map(|n| n.event.clone()));

    // A dies without a word; what is texted meanwhile waits in the outbox for B to take the lease.
    a.kill();
    let killed = Instant::now();
    text_the_app(&phone, "after", 30).await;
    receive_all(&mut via_b, &(0..30).map(|i| format!("after-{i}")).collect()).await;
    let delivered = killed.elapsed();
    wait_for_lease(&b, &creds.app_id, "node-b");
    // The node's own row runs out on its own clock, a moment apart from the app's lease: wait
    // (bounded) for it rather than race it.
    let started = Instant::now();
    loop {
        let out = cluster_output(&b);
        if out.contains("node-a  dead") {
            break;
        }
        assert!(started.elapsed() < WAIT, "the killed node is never shown dead:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("kill -9 to every notification delivered by the other node: {delivered:?}");
}

/// How long one SMS through `phone` takes to reach the app.
async fn one_message(phone: &Simulator, stream: &mut Notifications, label: &str) -> Duration {
    let sent = Instant::now();
    text_the_app(phone, label, 1).await;
    receive_all(stream, &HashSet::from([format!("{label}-0")])).await;
    sent.elapsed()
}

fn log_count(node: &Hodi, text: &str) -> usize {
    std::fs::read_to_string(node.data_dir.join("stderr.txt")).unwrap_or_default().matches(text).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wakes_the_delivering_node_at_once_and_while_it_is_down_polling_loses_nothing() {
    if sqlite_run() {
        return;
    }
    // Polls far apart: a notification that arrives much sooner was announced through Redis.
    const POLL: Duration = Duration::from_secs(10);
    const FAST: Duration = Duration::from_secs(4);
    let port = common::free_port();
    let mut redis = Some(Redis::start(port));
    let url = redis.as_ref().map(Redis::url).unwrap_or_default();
    let poll = POLL.as_millis().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(
        dir.path(),
        &[("HODI_CLUSTER__REDIS_URL", url.as_str()), ("HODI_NOTIFY__OUTBOX_POLL_MS", poll.as_str())],
    );
    let creds = a.creds.clone();
    let (_app, mut stream) = app_on(&b, &creds).await;
    wait_for_lease(&a, &creds.app_id, "node-b");
    let phone = phone_on(&a, &creds).await;

    let mut fast = Vec::new();
    for round in 0..3 {
        fast.push(one_message(&phone, &mut stream, &format!("fast-{round}")).await);
    }
    assert!(fast.iter().all(|t| *t < FAST), "with Redis each took {fast:?}; the poll is {POLL:?}");

    // Redis goes away: messages taken on A still reach the app through B's poll.
    drop(redis.take());
    text_the_app(&phone, "down", 5).await;
    let started = Instant::now();
    receive_all(&mut stream, &(0..5).map(|i| format!("down-{i}")).collect()).await;
    eprintln!("with Redis down, 5 messages arrived in {:?} (poll {POLL:?})", started.elapsed());
    assert_eq!(log_count(&b, "Redis unreachable"), 1, "the outage is said once");

    // Redis is back on the same port: once B has resubscribed, the fast path is back.
    redis = Some(Redis::start(port));
    let started = Instant::now();
    while log_count(&b, "Redis reachable again") == 0 {
        assert!(started.elapsed() < WAIT, "node B never found Redis again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = Vec::new();
    for round in 0..3 {
        again.push(one_message(&phone, &mut stream, &format!("again-{round}")).await);
    }
    assert!(again.iter().all(|t| *t < FAST), "after Redis came back each took {again:?}");
    eprintln!("SMS on node A to the app on node B: {fast:?} with Redis, {again:?} after it came back");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_100000_due_reminders_fire_each_once() {
    if sqlite_run() {
        return;
    }
    const CUSTOMERS: usize = 10_000;
    const KEYS: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(dir.path(), &[]);
    let store = a.store().await;
    let (org, app) = (a.creds.org_id.clone(), a.creds.app_id.clone());
    sqlx::query(
        "INSERT INTO customers (id, org_id, created_at) SELECT 'cst_race_' || g, $1, 0 FROM generate_series(1, $2) g",
    )
    .bind(&org)
    .bind(CUSTOMERS as i64)
    .execute(store.pool())
    .await
    .expect("customers");
    // Stored for an hour ahead, then all made due by one statement: both nodes' schedulers (which
    // look at least every second) find 100,000 due at once.
    let later = hodi::store::now_ms() + 3_600_000;
    let reminders: Vec<hodi::store::reminders::StoredReminder> = (1..=CUSTOMERS)
        .flat_map(|c| (0..KEYS).map(move |k| (c, k)))
        .map(|(c, k)| hodi::store::reminders::StoredReminder {
            org_id: org.clone(),
            app_id: app.clone(),
            customer_id: format!("cst_race_{c}"),
            key: format!("k{k}"),
            remind_at: later,
            interval_secs: None,
            payload: Some(format!("{c}/{k}")),
            tag: None,
            work_id: None,
        })
        .collect();
    for chunk in reminders.chunks(10_000) {
        store.upsert_reminders(chunk).await.expect("reminders stored");
    }
    sqlx::query("UPDATE reminders SET remind_at = $1 WHERE app_id = $2")
        .bind(hodi::store::now_ms())
        .bind(&app)
        .execute(store.pool())
        .await
        .expect("all due now");

    let started = Instant::now();
    while store.count_reminders().await.expect("count") > 0 {
        assert!(started.elapsed() < Duration::from_secs(180), "reminders still pending after 3 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let queued = store.outbox_len().await.expect("outbox");
    assert_eq!(queued, (CUSTOMERS * KEYS) as i64, "each reminder fired exactly once across the two nodes");
    // How the batches of 2,000 fell between the nodes (each reads inside its write turn, so
    // neither reads a batch the other has just fired).
    let batches = |node: &Hodi| log_count(node, "fired=2000");
    eprintln!(
        "100,000 reminders fired in {:?} after they fell due; batches of 2,000 fired: a {}, b {}",
        started.elapsed(),
        batches(&a),
        batches(&b)
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ussd_dial_on_one_node_is_answered_by_the_app_on_another_through_redis() {
    if sqlite_run() {
        return;
    }
    let port = common::free_port();
    let redis = Redis::start(port);
    let url = redis.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(dir.path(), &[("HODI_CLUSTER__REDIS_URL", url.as_str())]);
    let creds = a.creds.clone();

    // The app, on node B only, serves a two-screen menu.
    let app = Elarian::connect(options(&b, &creds));
    app.connected(WAIT).await.expect("app connected to node B");
    app.on("ussdSession", |n| async move {
        let Event::ReceivedMessage(m) = &n.event else { return };
        let screen = match m.ussd().and_then(|u| u.text.clone()).unwrap_or_default().as_str() {
            "" => hodi_sdk::model::message::ussd("Welcome\n1. Balance", false),
            "1" => hodi_sdk::model::message::ussd("KES 1,250", true),
            _ => hodi_sdk::model::message::ussd("Goodbye", true),
        };
        let _ = n.reply(Reply::message(screen)).await;
    })
    .expect("handler");
    wait_for_lease(&a, &creds.app_id, "node-b");

    // The phone dials on node A: A has no socket of the app and asks B, which asks the app.
    let phone = hodi_simulator::Phone::connect(options(&a, &creds), "+254700800001").await.expect("phone on node A");
    let asked = Instant::now();
    let first = phone.dial_ussd("*384#").await.expect("the first screen");
    let first_took = asked.elapsed();
    assert_eq!((first.text.as_str(), first.terminal), ("Welcome\n1. Balance", false));
    let last = phone.ussd_reply("1").await.expect("the second screen");
    assert_eq!((last.text.as_str(), last.terminal), ("KES 1,250", true));
    eprintln!("USSD from node A answered by the app on node B: first screen in {first_took:?}");
    assert!(log_count(&b, "served another node's ask or offer") >= 2, "node B served both screens");

    // Without Redis the ask cannot cross: the dial fails at once, saying why, instead of hanging.
    drop(redis);
    let asked = Instant::now();
    let refused = phone.dial_ussd("*384#").await;
    assert!(refused.is_err(), "a dial answered without Redis: {refused:?}");
    let refused_after = asked.elapsed();
    eprintln!("with Redis down the dial was refused after {refused_after:?}: {:?}", refused.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_app_sends_on_one_node_reaches_the_simulator_on_another() {
    if sqlite_run() {
        return;
    }
    let redis = Redis::start(common::free_port());
    let url = redis.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(dir.path(), &[("HODI_CLUSTER__REDIS_URL", url.as_str())]);
    let creds = a.creds.clone();
    let app = Elarian::connect(options(&b, &creds));
    app.connected(WAIT).await.expect("app connected to node B");
    let customer = app.customer("+254700800002");

    // No simulator anywhere: queued, as on one node.
    let sms = channel::sms("21356");
    let queued = customer.send_message(sms.clone(), hodi_sdk::model::message::text("nobody")).await.expect("sent");
    assert_eq!(queued.status, "QUEUED", "{queued:?}");

    // A simulator on node A: node B learns of it from A's heartbeat, and hands the message over.
    let phone = phone_on(&a, &creds).await;
    let mut events = phone.events().expect("simulator events");
    let started = Instant::now();
    loop {
        if cluster_output(&b).contains(&format!("\"simulators\":{{\"{}\":1}}", creds.org_id)) {
            break;
        }
        assert!(started.elapsed() < WAIT, "node A never registered its simulator socket");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // node B's next heartbeat reads it
    let sent = customer.send_message(sms, hodi_sdk::model::message::text("across")).await.expect("sent");
    assert_eq!(sent.status, "SENT", "{sent:?}");
    let event = tokio::time::timeout(WAIT, events.recv()).await.expect("within the wait").expect("an event");
    let hodi_sdk::SimulatorEvent::SendMessage(m) = event else { panic!("not a message: {event:?}") };
    assert_eq!(m.customer_number.as_ref().map(|n| n.number.as_str()), Some("+254700800002"));
    assert!(format!("{:?}", m.message).contains("across"), "{m:?}");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_by_tag_send_cut_short_by_kill_9_is_finished_by_the_other_node_and_every_customer_gets_it() {
    if sqlite_run() {
        return;
    }
    const CUSTOMERS: i64 = 20_000;
    const DELIVERED: i32 = 300; // MessageDeliveryStatus::Delivered
    let redis = Redis::start(common::free_port());
    let url = redis.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, b) = two_nodes(dir.path(), &[("HODI_CLUSTER__REDIS_URL", url.as_str()), ("HODI_LOG", "info")]);
    let creds = a.creds.clone();
    let store = a.store().await;
    common::tagged::seed(&store, &creds.org_id, "bytag", CUSTOMERS, ("list", "march"), 254_710_000_000).await;

    // The customers' phone on node B; what reaches it is counted by number.
    let phone = phone_on(&b, &creds).await;
    let mut events = phone.events().expect("simulator events");
    let received = tokio::spawn(async move {
        let mut numbers = HashSet::new();
        while let Some(event) = events.recv().await {
            if let hodi_sdk::SimulatorEvent::SendMessage(m) = event {
                numbers.insert(m.customer_number.map(|n| n.number).unwrap_or_default());
            }
        }
        numbers
    });
    let started = Instant::now();
    while !cluster_output(&a).contains(&format!("\"simulators\":{{\"{}\":1}}", creds.org_id)) {
        assert!(started.elapsed() < WAIT, "node B never registered its simulator socket");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // node A's next heartbeat reads it

    // The app on node A sends to the tag; A is killed once the work has recorded some progress.
    let app = Elarian::connect(options(&a, &creds));
    app.connected(WAIT).await.expect("app connected to node A");
    let work = app
        .send_message_by_tag(
            hodi_sdk::model::Tag::new("list", "march"),
            channel::sms("21356"),
            hodi_sdk::model::message::text("march offer"),
        )
        .await
        .expect("work started");
    let work_id = work.work_id.expect("a work id");
    let started = Instant::now();
    loop {
        let record = store.work(&work_id).await.expect("work").expect("recorded");
        assert_eq!(record.state, "running", "the work ended before the kill: {record:?}");
        if record.customers > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress recorded in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    let killed = Instant::now();
    let at_kill = store.work(&work_id).await.expect("work").expect("recorded");
    assert!(at_kill.customers < CUSTOMERS, "killed before the end: {at_kill:?}");

    // Node B takes the work over once A counts as dead, and finishes it.
    let done = loop {
        let record = store.work(&work_id).await.expect("work").expect("recorded");
        if record.state != "running" {
            break record;
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "not finished 120 s after the kill: {record:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let finished_in = killed.elapsed();
    assert_eq!((done.state.as_str(), done.customers, done.error.as_deref()), ("done", CUSTOMERS, None));
    let delivered: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT customer_id) FROM messages
         WHERE org_id = $1 AND direction = 2 AND status = $2 AND customer_id LIKE 'cst_bytag_%'",
    )
    .bind(&creds.org_id)
    .bind(DELIVERED)
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(delivered, CUSTOMERS, "every tagged customer's message was delivered at least once");
    assert!(b.stderr().contains("resuming work"), "node B says it resumed the work");
    drop(phone);
    let numbers = tokio::time::timeout(WAIT, received).await.expect("events end").expect("counted");
    assert_eq!(numbers.len() as i64, CUSTOMERS, "the phone on node B received every customer's message");
    eprintln!(
        "killed after {} of {CUSTOMERS}; node B finished the work {finished_in:?} after the kill",
        at_kill.customers
    );
    drop(redis);
}
