//! Several `hodi serve` processes on one PostgreSQL database: a notification produced on one node
//! is delivered by the node holding the app's socket, `hodi cluster` shows who is up and who
//! delivers what, and when the delivering node is killed (`kill -9`) another node holding a
//! socket of the app takes its lease over and delivers what was queued, nothing lost.
//!
//! SQLite is one process's file, so on the SQLite run of the suite these tests have nothing to
//! test and say so; `./scripts/test` runs them on its PostgreSQL run.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

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

fn options(node: &Hodi, creds: &common::DevCredentials) -> Options {
    let addr = node.listening.tcp.clone().expect("tcp listener");
    Options::new(Endpoint::Tcp(addr), &creds.org_id, &creds.app_id, Credentials::ApiKey(creds.api_key.clone()))
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
    if !common::database::on_postgres() {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Hodi::start(&dir.path().join("a"), &node_env("node-a"));
    let b = Hodi::start_node(&dir.path().join("b"), &a, &node_env("node-b"));
    let creds = a.creds.clone();

    // The app on node B, the phone on node A: the message is stored (and its notification
    // queued) by A, delivered by B.
    let app = Elarian::connect(options(&b, &creds));
    app.connected(WAIT).await.expect("app connected to node B");
    let mut notifications = app.notifications().expect("the notification stream");
    let out = wait_for_lease(&a, &creds.app_id, "node-b");
    assert!(out.contains("node-a  up") && out.contains("node-b  up"), "both nodes are listed as up:\n{out}");
    let phone = Simulator::connect(options(&a, &creds));
    phone.connected(WAIT).await.expect("simulator connected to node A");
    text_the_app(&phone, "across", 20).await;
    receive_all(&mut notifications, &(0..20).map(|i| format!("across-{i}")).collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_delivering_node_is_killed_another_node_with_a_socket_takes_over_and_nothing_is_lost() {
    if !common::database::on_postgres() {
        eprintln!("skipped on SQLite: several nodes need a shared PostgreSQL database (the postgres run covers it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = Hodi::start(&dir.path().join("a"), &node_env("node-a"));
    let b = Hodi::start_node(&dir.path().join("b"), &a, &node_env("node-b"));
    let creds = a.creds.clone();

    // The app's only socket on A first, so A takes the lease; then a second socket on B.
    let on_a = Elarian::connect(options(&a, &creds));
    on_a.connected(WAIT).await.expect("app connected to node A");
    let mut via_a = on_a.notifications().expect("node A's stream");
    wait_for_lease(&b, &creds.app_id, "node-a");
    let on_b = Elarian::connect(options(&b, &creds));
    on_b.connected(WAIT).await.expect("app connected to node B");
    let mut via_b = on_b.notifications().expect("node B's stream");
    let phone = Simulator::connect(options(&b, &creds));
    phone.connected(WAIT).await.expect("simulator connected to node B");
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
    let out = wait_for_lease(&b, &creds.app_id, "node-b");
    assert!(out.contains("node-a  dead"), "the killed node is shown dead:\n{out}");
    eprintln!("kill -9 to every notification delivered by the other node: {:?}", killed.elapsed());
}
