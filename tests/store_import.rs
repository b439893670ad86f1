//! `hodi import`: an operator moves everything from the embedded store to another database (on
//! the PostgreSQL run of the suite, to PostgreSQL) and a server on the new one carries on where
//! the old one stopped: customers' state, their messages, the ledger, and new writes after it.

mod common;

use std::time::Duration;

use common::database::TestDatabase;
use common::inproc::{command, connect, connect_phone, dev_meta, inbound_sms, start_with};
use hodi::store::payments::{AccountKey, Start, Started, Transaction};
use hodi::store::{now_ms, Store};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester};
use prost::Message;

const CUSTOMER: &str = "+254722000301";

fn number(n: &str) -> CustomerNumber {
    CustomerNumber { provider: CustomerNumberProvider::Cellular as i32, number: n.into(), partition: None }
}

fn index(key: &str, value: &str) -> CustomerIndex {
    CustomerIndex { mapping: Some(IndexMapping { key: key.into(), value: Some(value.into()) }), expires_at: None }
}

async fn state(app: &Requester) -> CustomerStateReplyData {
    let cmd = Cmd::GetCustomerState(GetCustomerStateCommand {
        customer: Some(get_customer_state_command::Customer::CustomerNumber(number(CUSTOMER))),
    });
    let Reply::GetCustomerState(r) = command(app, cmd).await else { panic!("state") };
    assert!(r.status, "{r:?}");
    r.data.expect("data")
}

/// Pays `amount` from `from` to `to`, settled at once.
async fn transfer(store: &Store, org: &str, app: &str, from: &str, to: &str, amount: i64) -> Started {
    let t = Transaction {
        debit_account: Some(from.into()),
        credit_account: Some(to.into()),
        ..Transaction::draft(org, app, "transfer", "KES", amount, now_ms())
    };
    store.start_transaction(t, Start::SettleNow { settled: 300 }, 301, &[], None).await.expect("transfer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_imported_elsewhere_keeps_customers_messages_and_the_ledger() {
    // Before: a server on the embedded store, whatever the suite's backend.
    let old_dir = tempfile::tempdir().expect("tempdir");
    let source_url = format!("sqlite://{}", old_dir.path().join("old.db").display());
    let url = source_url.clone();
    let old_path = old_dir.path().to_path_buf();
    let (old, _old_test_dir) = start_with(move |c| {
        c.data_dir = old_path;
        c.database_url = Some(url);
    })
    .await;
    let dev = old.dev.clone().expect("dev tenant");
    let app = connect(&old, dev_meta(&old)).await;
    let Reply::UpdateCustomerState(created) =
        command(&app, Cmd::CreateCustomer(CreateCustomerCommand { customer_number: Some(number(CUSTOMER)) })).await
    else {
        panic!("create")
    };
    let customer_id = created.customer_id.expect("id");
    let tags = Cmd::UpdateCustomerTag(UpdateCustomerTagCommand {
        customer: Some(update_customer_tag_command::Customer::CustomerId(customer_id.clone())),
        updates: vec![index("tier", "gold"), index("region", "coast")],
    });
    assert!(matches!(command(&app, tags).await, Reply::UpdateCustomerState(r) if r.status));
    let metadata = Cmd::UpdateCustomerMetadata(UpdateCustomerMetadataCommand {
        customer: Some(update_customer_metadata_command::Customer::CustomerId(customer_id.clone())),
        updates: vec![(
            "nickname".to_string(),
            DataMapValue { value: Some(data_map_value::Value::StringVal("Ada ✓".into())) },
        )]
        .into_iter()
        .collect(),
    });
    assert!(matches!(command(&app, metadata).await, Reply::UpdateCustomerState(r) if r.status));
    let (phone, _phone_rx) = connect_phone(&old).await;
    for text in ["hello", "second"] {
        let sms = inbound_sms(CUSTOMER, text);
        let reply = phone.request_response(Payload::new(sms.encode_to_vec())).await.expect("reply");
        assert!(SimulatorToServerCommandReply::decode(reply.data).expect("reply").status);
    }
    let store = old.hodi.store.clone();
    let wallet = |w: &str| AccountKey::Wallet { customer_id: customer_id.clone(), wallet_id: w.into() };
    let savings = store.open_account(&dev.org_id, &wallet("savings"), "KES").await.expect("wallet").id;
    let spending = store.open_account(&dev.org_id, &wallet("spending"), "KES").await.expect("wallet").id;
    let top_up = store.open_account(&dev.org_id, &AccountKey::External("top-up".into()), "KES").await.expect("ext").id;
    assert_eq!(transfer(&store, &dev.org_id, &dev.app_id, &top_up, &savings, 10_000).await, Started::Stored(300));
    assert_eq!(transfer(&store, &dev.org_id, &dev.app_id, &savings, &spending, 2_500).await, Started::Stored(300));
    let before = state(&app).await;
    let messages_before = store.messages_for(&customer_id, 100).await.expect("messages");
    assert_eq!(messages_before.len(), 2);
    drop((app, phone));
    old.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The move: `hodi import --from <old>` into the suite's database (PostgreSQL on its run).
    let new_dir = tempfile::tempdir().expect("tempdir");
    let db = TestDatabase::for_data_dir(new_dir.path());
    let import = |from: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hodi"))
            .args(["import", "--from", from])
            .env("HODI_DATA_DIR", new_dir.path())
            .env("HODI_DATABASE_URL", &db.url)
            .output()
            .expect("running hodi import")
    };
    // Run on a terminal (script(1) gives it one): a progress bar over the rows, then the tables.
    let command = format!("{} import --from '{source_url}'", env!("CARGO_BIN_EXE_hodi"));
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("HODI_DATA_DIR", new_dir.path())
        .env("HODI_DATABASE_URL", &db.url)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running hodi import on a terminal");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    let bar = shows_a_bar(&printed);
    assert!(bar, "no progress bar ({{pos}}/{{len}} rows) on the terminal: {printed:?}");
    assert!(printed.contains("messages") && printed.contains("payment_entries"), "per table: {printed}");
    assert!(printed.contains("entries sum 0, balances sum 0, 0 unbalanced"), "{printed}");
    // A second import would mix two histories: refused, and nothing changes.
    let again = import(&source_url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds 1 org"), "{again:?}");

    // After: a server on the new database answers as the old one did, to the same API key (keys
    // are imported hashed; the dev credentials file is the operator's to carry over).
    std::fs::copy(old_dir.path().join("dev-credentials.toml"), new_dir.path().join("dev-credentials.toml"))
        .expect("carrying the dev credentials over");
    let new_path = new_dir.path().to_path_buf();
    let url = db.url.clone();
    let (new, _new_test_dir) = start_with(move |c| {
        c.data_dir = new_path;
        c.database_url = Some(url);
    })
    .await;
    let app = connect(&new, dev_meta(&new)).await;
    let after = state(&app).await;
    assert_eq!(after.customer_id, customer_id);
    assert_eq!(after.identity_state, before.identity_state, "tags and metadata as they were");
    let store = new.hodi.store.clone();
    let messages_after = store.messages_for(&customer_id, 100).await.expect("messages");
    assert_eq!(messages_after, messages_before, "messages, bodies and statuses as they were");
    let balance = |key| {
        let store = store.clone();
        let org = dev.org_id.clone();
        async move { store.account(&org, &key, "KES").await.expect("read").expect("account").balance }
    };
    assert_eq!(balance(wallet("savings")).await, 7_500);
    assert_eq!(balance(wallet("spending")).await, 2_500);
    // New money moves on the imported ledger (its entry ids continue after the imported ones).
    assert_eq!(transfer(&store, &dev.org_id, &dev.app_id, &spending, &savings, 500).await, Started::Stored(300));
    assert_eq!(transfer(&store, &dev.org_id, &dev.app_id, &spending, &savings, 5_000).await, Started::Insufficient);
    assert_eq!(balance(wallet("savings")).await, 8_000);
    assert_eq!(store.ledger_check().await.expect("check"), (0, 0, 0));
    // And new messages arrive after the old ones.
    let (phone, _phone_rx) = connect_phone(&new).await;
    let sms = inbound_sms(CUSTOMER, "third");
    let reply = phone.request_response(Payload::new(sms.encode_to_vec())).await.expect("reply");
    assert!(SimulatorToServerCommandReply::decode(reply.data).expect("reply").status);
    assert_eq!(store.messages_for(&customer_id, 100).await.expect("messages").len(), 3);
}

/// Whether `text` shows a bar's "<done>/<total> rows".
fn shows_a_bar(text: &str) -> bool {
    text.split(" rows").any(|before| {
        let last = before.rsplit(' ').next().unwrap_or("");
        last.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && !b.is_empty()
                && b.chars().all(|c| c.is_ascii_digit())
        })
    })
}
