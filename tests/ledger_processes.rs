//! The ledger stays exact when several processes pay from the same wallets at once. Two stores
//! on one database stand for two `hodi serve` processes: each has its own pool and its own
//! in-process writer lock, so nothing but the database keeps them apart. On PostgreSQL that is the
//! point (row locks and guarded UPDATEs); on SQLite the file lock does it.

mod common;

use std::time::Duration;

use common::database::TestDatabase;
use hodi::store::payments::{AccountKey, Start, Started, Transaction};
use hodi::store::{now_ms, Store};

const WALLETS: usize = 4;
const FUNDS: i64 = 1_000;
const TASKS_PER_STORE: usize = 4;
const PAYMENTS_PER_TASK: usize = 150;
const SETTLED: i32 = 300;
const INSUFFICIENT: i32 = 301;

/// Pays between the wallets in a fixed but scrambled pattern, bigger amounts than they hold at
/// times, so that some payments must be refused; the ids of those stored as settled.
async fn pay(store: Store, org: String, app: String, wallets: Vec<String>, task: usize) -> (Vec<String>, usize) {
    let mut settled = Vec::new();
    let mut refused = 0;
    for i in 0..PAYMENTS_PER_TASK {
        let n = task * 7_919 + i * 104_729;
        let from = n % WALLETS;
        let to = (from + 1 + (n / WALLETS) % (WALLETS - 1)) % WALLETS;
        let amount = 1 + (n % 397) as i64;
        let t = Transaction {
            debit_account: Some(wallets[from].clone()),
            credit_account: Some(wallets[to].clone()),
            ..Transaction::draft(&org, &app, "transfer", "KES", amount, now_ms())
        };
        let id = t.id.clone();
        let started = tokio::time::timeout(
            Duration::from_secs(30),
            store.start_transaction(t, Start::SettleNow { settled: SETTLED }, INSUFFICIENT, &[], None),
        )
        .await
        .expect("a payment answered within 30 s")
        .expect("a payment never fails for the database's sake");
        match started {
            Started::Stored(SETTLED) => settled.push(id),
            Started::Insufficient => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (settled, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_paying_from_the_same_wallets_never_overdraw_and_entries_sum_to_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDatabase::for_data_dir(dir.path());
    let one = Store::open(&db.url).await.expect("first store");
    let two = Store::open(&db.url).await.expect("second store, same database");

    let org = one.create_org(None, "ledger").await.expect("org");
    let app = one.create_app(&org, None, "payer").await.expect("app");
    let mut wallets = Vec::new();
    for w in 0..WALLETS {
        let key = AccountKey::Wallet { customer_id: format!("cst_{w}"), wallet_id: "main".into() };
        wallets.push(one.open_account(&org, &key, "KES").await.expect("wallet").id);
    }
    let top_up = one.open_account(&org, &AccountKey::External("top-up".into()), "KES").await.expect("top-up").id;
    for wallet in &wallets {
        let t = Transaction {
            debit_account: Some(top_up.clone()),
            credit_account: Some(wallet.clone()),
            ..Transaction::draft(&org, &app, "top_up", "KES", FUNDS, now_ms())
        };
        let started = one.start_transaction(t, Start::SettleNow { settled: SETTLED }, INSUFFICIENT, &[], None);
        assert_eq!(started.await.expect("top-up"), Started::Stored(SETTLED));
    }

    let mut tasks = Vec::new();
    for task in 0..TASKS_PER_STORE * 2 {
        let store = if task % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(pay(store, org.clone(), app.clone(), wallets.clone(), task)));
    }
    let (mut settled, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (s, r) = t.await.expect("task");
        settled.extend(s);
        refused += r;
    }
    let total = TASKS_PER_STORE * 2 * PAYMENTS_PER_TASK;
    assert_eq!(settled.len() + refused, total);
    assert!(refused > 0, "the amounts are meant to outrun some wallets");
    assert!(settled.len() > total / 4, "most payments go through: {} of {total}", settled.len());

    // Read through the second store: what one process wrote, the other sees.
    let mut sum = 0;
    for (w, id) in wallets.iter().enumerate() {
        let key = AccountKey::Wallet { customer_id: format!("cst_{w}"), wallet_id: "main".into() };
        let account = two.account(&org, &key, "KES").await.expect("read").expect("wallet");
        assert_eq!(&account.id, id);
        assert!(account.balance >= 0 && account.held == 0, "wallet {w} overdrawn: {account:?}");
        sum += account.balance;
    }
    assert_eq!(sum, FUNDS * WALLETS as i64, "money moved between wallets is neither made nor lost");
    let (entries, balances, unbalanced) = two.ledger_check().await.expect("ledger check");
    assert_eq!((entries, balances, unbalanced), (0, 0, 0), "entries and balances sum to zero, two per transaction");
    for id in settled.iter().step_by(17) {
        assert_eq!(two.entry_count(id).await.expect("entries"), 2, "a settled payment has its two entries");
    }
}
