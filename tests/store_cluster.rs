//! The store's side of several nodes on one database, on the suite's database (both backends:
//! two stores stand for two nodes): a delivery lease goes to one node at a time and moves only
//! when it ran out or was given up; a dead node's provider claims are released, a live node's
//! never; an app-data lease one node's socket took holds off another node's until released or
//! run out; running by-tag work moves to another node only once its node is dead.

mod common;

use common::database::TestDatabase;
use hodi::store::cluster::NodeRow;
use hodi::store::customers::StoredNumber;
use hodi::store::messaging::MessageRow;
use hodi::store::providers::QueuedSend;
use hodi::store::work::{Orphans, ResumableWork, WorkOrder};
use hodi::store::{now_ms, Store};

async fn two_nodes(dir: &std::path::Path) -> (std::sync::Arc<TestDatabase>, Store, Store) {
    let db = TestDatabase::for_data_dir(dir);
    let a = Store::open(&db.url).await.expect("node a's store").with_node_id("node-a");
    let b = Store::open(&db.url).await.expect("node b's store, same database").with_node_id("node-b");
    (db, a, b)
}

fn node(id: &str, expires_at: i64) -> NodeRow {
    let now = now_ms();
    NodeRow {
        id: id.into(),
        listeners: "{}".into(),
        sockets: "{}".into(),
        started_at: now,
        heartbeat_at: now,
        expires_at,
    }
}

#[tokio::test]
async fn a_delivery_lease_is_one_nodes_until_it_runs_out_or_is_given_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a, b) = two_nodes(dir.path()).await;
    let now = now_ms();
    assert!(a.claim_delivery("app_1", "node-a", now, now + 5_000).await.expect("claim"), "a free app is granted");
    assert!(!b.claim_delivery("app_1", "node-b", now, now + 5_000).await.expect("claim"), "held by a: refused");
    assert!(b.claim_delivery("app_2", "node-b", now, now + 5_000).await.expect("claim"), "another app is free");
    assert!(a.claim_delivery("app_1", "node-a", now + 1_000, now + 6_000).await.expect("renew"), "a renews its own");
    // Past a's lease, b may take it.
    assert!(!b.claim_delivery("app_1", "node-b", now + 5_999, now + 9_000).await.expect("claim"), "still a's");
    assert!(b.claim_delivery("app_1", "node-b", now + 6_001, now + 9_000).await.expect("claim"), "a's ran out");
    assert!(!a.claim_delivery("app_1", "node-a", now + 6_002, now + 9_000).await.expect("claim"), "now b's");
    // Given up: free at once.
    b.release_delivery("app_1", "node-b").await.expect("release");
    a.release_delivery("app_2", "node-a").await.expect("not a's: nothing happens");
    assert!(a.claim_delivery("app_1", "node-a", now + 6_003, now + 9_000).await.expect("claim"), "given up");
    let leases: Vec<(String, String)> =
        a.delivery_leases().await.expect("leases").into_iter().map(|l| (l.app_id, l.node_id)).collect();
    assert_eq!(leases, [("app_1".into(), "node-a".into()), ("app_2".into(), "node-b".into())]);

    // Leaving takes the node's leases and row with it.
    a.node_heartbeat(&node("node-a", now_ms() + 60_000)).await.expect("heartbeat");
    b.node_heartbeat(&node("node-b", now_ms() + 60_000)).await.expect("heartbeat");
    a.node_leave("node-a").await.expect("leave");
    let nodes: Vec<String> = b.nodes().await.expect("nodes").into_iter().map(|n| n.id).collect();
    assert_eq!(nodes, ["node-b"]);
    let leases: Vec<String> = b.delivery_leases().await.expect("leases").into_iter().map(|l| l.node_id).collect();
    assert_eq!(leases, ["node-b"], "node a's lease left with it");
}

#[tokio::test]
async fn a_dead_nodes_provider_claims_are_released_and_a_live_nodes_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a, b) = two_nodes(dir.path()).await;
    let org = a.create_org(None, "claims").await.expect("org");
    let app = a.create_app(&org, None, "app").await.expect("app");
    let number = StoredNumber { provider: 2, number: "+254700000001".into(), partition: String::new() };
    let (customer, _) = a.customer_by_number(&org, &number).await.expect("customer");
    let now = now_ms();
    for i in 0..2 {
        let id = format!("msg_claim_{i}");
        let message = MessageRow {
            id: id.clone(),
            org_id: org.clone(),
            customer_id: customer.id.clone(),
            direction: 2,
            channel: 1,
            channel_number: "21356".into(),
            session_id: None,
            status: 100,
            provider_message_id: None,
            body: vec![],
            created_at: now,
        };
        let send = QueuedSend {
            message_id: id,
            provider: "telco".into(),
            org_id: org.clone(),
            app_id: app.clone(),
            customer_id: customer.id.clone(),
            channel: 1,
            channel_number: "21356".into(),
            customer_number: "+254700000001".into(),
            message: vec![],
            attempts: 0,
            expires_at: now + 3_600_000,
        };
        a.queue_for_provider(&message, &send).await.expect("queued");
    }
    assert_eq!(a.claim_provider_sends("telco", 10, now_ms() + 300_000).await.expect("claim").len(), 2);

    // Node a is up: its claims stand.
    a.node_heartbeat(&node("node-a", now_ms() + 60_000)).await.expect("heartbeat");
    assert_eq!(b.release_claims_of_dead_nodes().await.expect("sweep"), 0, "a live node's claims were released");
    assert!(b.claim_provider_sends("telco", 10, now_ms() + 300_000).await.expect("claim").is_empty());

    // Node a stops heartbeating: its claims come back at once, not in five minutes.
    a.node_heartbeat(&node("node-a", now_ms() - 1)).await.expect("a last heartbeat, long ago");
    assert_eq!(b.release_claims_of_dead_nodes().await.expect("sweep"), 2);
    let taken = b.claim_provider_sends("telco", 10, now_ms() + 300_000).await.expect("claim");
    assert_eq!(taken.len(), 2, "node b sends what node a had claimed");
    // And b's claims are b's: a sweep while b is up leaves them.
    b.node_heartbeat(&node("node-b", now_ms() + 60_000)).await.expect("heartbeat");
    assert_eq!(a.release_claims_of_dead_nodes().await.expect("sweep"), 0);
}

#[tokio::test]
async fn an_app_data_lease_taken_on_one_node_holds_off_another_until_released_or_run_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a, b) = two_nodes(dir.path()).await;
    let org = a.create_org(None, "leases").await.expect("org");
    let app = a.create_app(&org, None, "app").await.expect("app");
    let number = StoredNumber { provider: 2, number: "+254700000009".into(), partition: String::new() };
    let (customer, _) = a.customer_by_number(&org, &number).await.expect("customer");
    let until = now_ms() + 60_000;
    assert!(a.lease_app_data(&app, &customer.id, "conn-on-a", until).await.expect("lease").is_ok());
    let held = b.lease_app_data(&app, &customer.id, "conn-on-b", until).await.expect("lease");
    assert_eq!(held.err().map(|h| h.until), Some(until), "node B is told until when node A's socket holds it");
    // A's socket closes: its leases go, and B's socket may take it.
    assert_eq!(a.release_leases("conn-on-a").await.expect("released"), 1);
    assert!(b.lease_app_data(&app, &customer.id, "conn-on-b", now_ms() + 100).await.expect("lease").is_ok());
    // A node that dies cannot release: its socket's lease runs out by itself.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(a.lease_app_data(&app, &customer.id, "conn-on-a", until).await.expect("lease").is_ok(), "ran out");
}

#[tokio::test]
async fn running_by_tag_work_moves_to_another_node_only_when_its_node_is_dead_and_the_old_node_then_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a, b) = two_nodes(dir.path()).await;
    let org = a.create_org(None, "work").await.expect("org");
    let app = a.create_app(&org, None, "app").await.expect("app");
    let order = WorkOrder {
        org_id: org.clone(),
        app_id: app.clone(),
        kind: "send_message_by_tag".into(),
        tag: ("segment".into(), "gold".into()),
        command: vec![10, 3, 1, 2, 3],
    };
    a.node_heartbeat(&node("node-a", now_ms() + 60_000)).await.expect("heartbeat");
    let id = a.start_work(&order).await.expect("work started");
    assert!(a.advance_work(&id, "cst_0005", 5).await.expect("progress"), "node a runs it");

    // A is up: B leaves its work alone. A restarted under its own name takes it back as it was.
    assert!(b.claim_orphan_work(Orphans::Dead, 16).await.expect("claim").is_empty(), "a live node's work");
    let mine = a.claim_orphan_work(Orphans::DeadOrMine, 16).await.expect("claim");
    let expected = ResumableWork { id: id.clone(), order, after_customer: "cst_0005".into(), customers: 5 };
    assert_eq!(mine, std::slice::from_ref(&expected));

    // A stops heartbeating: B takes the work over, from where A had got.
    a.node_heartbeat(&node("node-a", now_ms() - 1)).await.expect("heartbeat");
    assert_eq!(b.claim_orphan_work(Orphans::Dead, 16).await.expect("claim"), [expected]);
    assert!(b.claim_orphan_work(Orphans::Dead, 16).await.expect("claim").is_empty(), "taken once");
    // A, not dead after all, finds it gone and stops; only B's progress and end count.
    assert!(!a.advance_work(&id, "cst_0009", 9).await.expect("progress"), "no longer a's");
    assert!(!a.finish_work(&id, 9, None).await.expect("finish"), "no longer a's");
    assert!(b.advance_work(&id, "cst_0012", 12).await.expect("progress"));
    assert!(b.finish_work(&id, 12, None).await.expect("finish"));
    let record = b.work(&id).await.expect("work").expect("recorded");
    assert_eq!((record.state.as_str(), record.customers), ("done", 12));
    assert!(b.claim_orphan_work(Orphans::All, 16).await.expect("claim").is_empty(), "finished work stays finished");

    // One process alone on the database takes all running work, whoever started it.
    let second = a
        .start_work(&WorkOrder { kind: "add_reminder_by_tag".into(), ..expected_order(&org, &app) })
        .await
        .expect("work started");
    let taken = b.claim_orphan_work(Orphans::All, 16).await.expect("claim");
    assert_eq!(taken.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), [second.as_str()]);
    assert_eq!((taken[0].after_customer.as_str(), taken[0].customers), ("", 0), "from the start");
}

fn expected_order(org: &str, app: &str) -> WorkOrder {
    WorkOrder {
        org_id: org.into(),
        app_id: app.into(),
        kind: String::new(),
        tag: ("segment".into(), "gold".into()),
        command: vec![1],
    }
}
