//! The one-statement read behind GetCustomerState (`Store::customer_snapshot`), on the suite's
//! database: every kind of row comes back, each in the order the state shows it, only this
//! customer's, expired indexes left out, the latest 100 messages and transactions, and holds
//! only on this customer's wallets.

mod common;

use std::time::Duration;

use common::database::TestDatabase;
use hodi::store::activity::StoredActivity;
use hodi::store::customer_state::LATEST;
use hodi::store::customers::StoredNumber;
use hodi::store::identity::{Index, MetaValue};
use hodi::store::messaging::{MessageRow, SessionRow};
use hodi::store::payments::{AccountKey, Start, Started, Transaction};
use hodi::store::{now_ms, Store};

const SETTLED: i32 = 300;
const PENDING: i32 = 100;
const INSUFFICIENT: i32 = 301;

fn number(n: &str) -> StoredNumber {
    StoredNumber { provider: 2, number: n.into(), partition: String::new() }
}

fn tag(key: &str, value: &str, expires_at: Option<i64>) -> Index {
    Index { key: key.into(), value: value.into(), expires_at }
}

fn message(org: &str, customer: &str, i: i64, at: i64) -> MessageRow {
    MessageRow {
        id: format!("msg_{i:04}"),
        org_id: org.into(),
        customer_id: customer.into(),
        direction: 1,
        channel: 1,
        channel_number: "21356".into(),
        session_id: None,
        status: 100 + i as i32,
        provider_message_id: None,
        body: vec![i as u8],
        created_at: at,
    }
}

fn session(org: &str, app: &str, customer: &str, id: &str, started_at: i64, ended_at: Option<i64>) -> SessionRow {
    SessionRow {
        id: id.into(),
        org_id: org.into(),
        customer_id: customer.into(),
        channel: 2,
        channel_number: "*384#".into(),
        provider: 2,
        number: "+254700000001".into(),
        partition: String::new(),
        app_id: app.into(),
        started_at,
        expires_at: started_at + 60_000,
        ended_at,
        end_reason: ended_at.map(|_| 1),
    }
}

async fn pay(store: &Store, t: Transaction, start: Start) -> Started {
    store.start_transaction(t, start, INSUFFICIENT, &[], None).await.expect("payment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_holds_every_kind_of_row_in_order_and_only_this_customers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDatabase::for_data_dir(dir.path());
    let store = Store::open(&db.url).await.expect("store");
    let org = store.create_org(None, "snapshot").await.expect("org");
    let app = store.create_app(&org, None, "app").await.expect("app");
    let (ada, _) = store.customer_by_number(&org, &number("+254700000001")).await.expect("ada");
    let (bob, _) = store.customer_by_number(&org, &number("+254700000002")).await.expect("bob");
    let (ada, bob) = (ada.id, bob.id);
    let now = now_ms();

    // Identity: a tag about to expire is left out once it has; bob's rows never show.
    store
        .upsert_tags(&org, &ada, &[tag("zeta", "z", None), tag("alpha", "a", Some(now + 3_600_000))])
        .await
        .expect("tags");
    store.upsert_tags(&org, &ada, &[tag("brief", "b", Some(now_ms() + 200))]).await.expect("short tag");
    store.upsert_tags(&org, &bob, &[tag("bobs", "b", None)]).await.expect("bob's tag");
    let ids = [tag("email", "ada@x", None), tag("account", "42", None)];
    assert!(store.upsert_secondary_ids(&org, &ada, &ids).await.expect("ids").is_ok());
    let meta =
        [("b".to_string(), MetaValue::Bytes(vec![0, 159, 255])), ("a".to_string(), MetaValue::Text("one".into()))];
    store.upsert_metadata(&ada, &meta).await.expect("metadata");

    // Activity: two sessions, three activities.
    let first = number("+254700000001");
    for (session_id, key, at) in [("s1", "open", now), ("s2", "view", now + 1), ("s1", "close", now + 2)] {
        let activity =
            StoredActivity { key: key.into(), properties: [("k".into(), key.into())].into(), created_at: at };
        store.record_activity(&org, &app, &ada, &first, "web", session_id, &activity, &[]).await.expect("activity");
    }

    // Messaging: more messages than the state shows, sessions open and ended, a consent.
    let extra = 5;
    let rows: Vec<MessageRow> = (0..LATEST + extra).map(|i| message(&org, &ada, i, now - 1_000_000 + i * 10)).collect();
    store.insert_messages(&rows).await.expect("messages");
    store.insert_messages(&[MessageRow { id: "msg_bob".into(), ..message(&org, &bob, 0, now) }]).await.expect("bob");
    assert!(store
        .insert_session_once(&session(&org, &app, &ada, "ses_b", now - 500, None))
        .await
        .expect("open session"));
    assert!(store
        .insert_session_once(&session(&org, &app, &ada, "ses_a", now - 900, Some(now - 800)))
        .await
        .expect("ended"));
    store.set_consent(&ada, 1, "21356", true).await.expect("consent");

    // Payments: ada's wallet funded, then a hold on it; a hold on bob's wallet is not ada's.
    let top_up = store.open_account(&org, &AccountKey::External("top-up".into()), "KES").await.expect("top-up").id;
    let mut wallets = Vec::new();
    for customer in [&ada, &bob] {
        let key = AccountKey::Wallet { customer_id: customer.clone(), wallet_id: "main".into() };
        let wallet = store.open_account(&org, &key, "KES").await.expect("wallet").id;
        let fund = Transaction {
            debit_account: Some(top_up.clone()),
            credit_account: Some(wallet.clone()),
            credit_customer_id: Some(customer.clone()),
            ..Transaction::draft(&org, &app, "top_up", "KES", 10_000, now_ms())
        };
        assert_eq!(pay(&store, fund, Start::SettleNow { settled: SETTLED }).await, Started::Stored(SETTLED));
        wallets.push(wallet);
    }
    let mut holds = Vec::new();
    for (customer, wallet, amount) in [(&ada, &wallets[0], 700), (&bob, &wallets[1], 900)] {
        let hold = Transaction {
            debit_account: Some(wallet.clone()),
            credit_account: Some(top_up.clone()),
            debit_customer_id: Some(customer.clone()),
            // Later than every top-up, so the log's order is known.
            ..Transaction::draft(&org, &app, "payout", "KES", amount, now_ms() + 1_000)
        };
        holds.push(hold.id.clone());
        assert_eq!(pay(&store, hold, Start::Hold { pending: PENDING }).await, Started::Stored(PENDING));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let s = store.customer_snapshot(&org, &ada).await.expect("snapshot");

    let keys = |v: &[Index]| v.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&s.tags), ["alpha", "zeta"], "sorted by key, the expired one gone, bob's not there");
    assert_eq!(s.tags[0].expires_at, Some(now + 3_600_000));
    assert_eq!(keys(&s.secondary_ids), ["account", "email"]);
    assert_eq!(
        s.metadata,
        [("a".to_string(), MetaValue::Text("one".into())), ("b".to_string(), MetaValue::Bytes(vec![0, 159, 255]))]
    );
    assert_eq!(s.numbers, std::slice::from_ref(&first));

    let sessions: Vec<(&str, Vec<&str>)> = s
        .activity
        .iter()
        .map(|a| (a.session_id.as_str(), a.activities.iter().map(|x| x.key.as_str()).collect()))
        .collect();
    assert_eq!(sessions, [("s1", vec!["open", "close"]), ("s2", vec!["view"])]);
    assert_eq!(s.activity[0].number, first);
    assert_eq!(s.activity[0].activities[0].properties["k"], "open");

    assert_eq!(s.messages.len(), LATEST as usize, "only the latest messages");
    assert_eq!(s.messages[0].body, [extra as u8], "oldest shown first; the {extra} oldest left out");
    assert_eq!(s.messages.last().map(|m| m.status), Some(100 + (LATEST + extra - 1) as i32));
    assert!(s.messages.iter().all(|m| m.channel == 1 && m.channel_number == "21356"));

    let ids: Vec<&str> = s.sessions.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["ses_a", "ses_b"], "oldest first");
    assert_eq!((s.sessions[0].ended_at, s.sessions[0].end_reason), (Some(now - 800), Some(1)));
    assert_eq!((s.sessions[1].ended_at, s.sessions[1].org_id.as_str()), (None, org.as_str()));
    assert_eq!(s.consents.len(), 1);
    assert!(s.consents[0].blocked && s.consents[0].channel == 1);

    assert_eq!(s.wallets.len(), 1, "bob's wallet is not ada's");
    assert_eq!((s.wallets[0].wallet_id.as_str(), s.wallets[0].balance, s.wallets[0].held), ("main", 10_000, 700));
    assert_eq!(s.holds.len(), 1);
    assert_eq!((s.holds[0].transaction_id.as_str(), s.holds[0].amount), (holds[0].as_str(), 700));
    assert_eq!(s.holds[0].account_id, wallets[0]);
    let log: Vec<(i64, i32)> = s.transactions.iter().map(|t| (t.amount, t.status)).collect();
    assert_eq!(log, [(10_000, SETTLED), (700, PENDING)], "either side, oldest first");
    assert_eq!(s.transactions[0].app_id.as_deref(), Some(app.as_str()));

    // Activities are bounded like messages: only the latest are shown.
    for i in 0..LATEST {
        let activity =
            StoredActivity { key: format!("a{i:03}"), properties: Default::default(), created_at: now + 10 + i };
        store.record_activity(&org, &app, &ada, &first, "web", "s3", &activity, &[]).await.expect("activity");
    }
    let s = store.customer_snapshot(&org, &ada).await.expect("snapshot");
    let shown: usize = s.activity.iter().map(|a| a.activities.len()).sum();
    assert_eq!(shown, LATEST as usize, "the latest activities only");
    let s3 = s.activity.iter().find(|a| a.session_id == "s3").expect("the newest session");
    assert_eq!(s3.activities.first().map(|a| a.key.as_str()), Some("a000"));
    assert_eq!(s.activity.len(), 3, "all three sessions are among the latest sessions");
    assert!(
        s.activity.iter().filter(|a| a.session_id != "s3").all(|a| a.activities.is_empty()),
        "older sessions' activities fell out of the latest"
    );

    let nobody = store.customer_snapshot(&org, "cst_nobody").await.expect("unknown customer");
    assert_eq!(nobody, Default::default(), "an unknown id has no rows of anyone else's");
}
