//! The ledger across a crash: several sockets move money between a purse and a wallet while the
//! server is killed (SIGKILL) mid-run and restarted; afterwards every payment the server said
//! succeeded is settled exactly once and the ledger balances to the cent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Hodi;
use hodi::store::payments::AccountKey;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester, SetupParams};
use prost::Message;

async fn connect(hodi: &Hodi, simulator: bool) -> Requester {
    let addr = hodi.listening.tcp.clone().expect("tcp listener");
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr);
    let meta = AppConnectionMetadata {
        org_id: hodi.creds.org_id.clone(),
        app_id: hodi.creds.app_id.clone(),
        api_key: Some(hodi.creds.api_key.clone()),
        simulator_mode: simulator,
        simplex_mode: true,
        ..Default::default()
    };
    let params = SetupParams { payload: Payload::new(meta.encode_to_vec()), ..Default::default() };
    let echo = Arc::new(hodi_rsocket::echo::Echo::default());
    hodi_rsocket::connect(io, params, echo, hodi_rsocket::Config::default()).await.expect("setup")
}

fn kes(amount: f64) -> Cash {
    Cash { currency_code: "KES".into(), amount }
}

/// Transfers between the purse and the wallet until `count` are done or the server goes away;
/// returns the ids of the transfers the server reported successful.
async fn transfers(app: Requester, purse_id: String, hub: String, offset: usize, count: usize) -> Vec<String> {
    let purse =
        PaymentCounterParty { party: Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty { purse_id })) };
    let wallet = PaymentCounterParty {
        party: Some(payment_counter_party::Party::Wallet(PaymentWalletCounterParty {
            customer_id: hub,
            wallet_id: "main".into(),
        })),
    };
    let mut ok = Vec::new();
    for k in 0..count {
        let (debit, credit) = if (k + offset).is_multiple_of(2) {
            (purse.clone(), wallet.clone())
        } else {
            (wallet.clone(), purse.clone())
        };
        let cmd = AppToServerCommand {
            entry: Some(app_to_server_command::Entry::InitiatePayment(InitiatePaymentCommand {
                debit_party: Some(debit),
                credit_party: Some(credit),
                value: Some(kes(0.37)),
                narration: String::new(),
            })),
        };
        let Ok(Ok(reply)) =
            tokio::time::timeout(Duration::from_secs(10), app.request_response(Payload::new(cmd.encode_to_vec())))
                .await
        else {
            break; // the server went away
        };
        let reply = AppToServerCommandReply::decode(reply.data).expect("reply");
        let Some(app_to_server_command_reply::Entry::InitiatePayment(r)) = reply.entry else { panic!("{reply:?}") };
        if r.status == PaymentStatus::Success as i32 {
            ok.push(r.transaction_id.expect("id"));
        } else {
            assert!(
                r.status == PaymentStatus::InsufficientFunds as i32 || r.status == PaymentStatus::InvalidWallet as i32,
                "{r:?}"
            );
        }
    }
    ok
}

#[test]
fn concurrent_payments_survive_a_kill_and_restart_balanced_to_the_cent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut hodi = Hodi::start(dir.path(), &[("HODI_LOG", "info")]);
    let purse_id = hodi.creds.purse_id.clone();
    let org_id = hodi.creds.org_id.clone();

    // Fund the purse with 500.00 and make the hub customer.
    let hub = rt.block_on(async {
        let phone = connect(&hodi, true).await;
        let cmd = SimulatorToServerCommand {
            entry: Some(simulator_to_server_command::Entry::ReceivePayment(ReceivePaymentSimulatorCommand {
                transaction_id: "FUND-1".into(),
                channel_number: Some(PaymentChannelNumber {
                    channel: PaymentChannel::Cellular as i32,
                    number: "525900".into(),
                }),
                customer_number: "+254700200001".into(),
                value: Some(kes(500.0)),
                status: PaymentStatus::Success as i32,
            })),
        };
        let reply = SimulatorToServerCommandReply::decode(
            phone.request_response(Payload::new(cmd.encode_to_vec())).await.expect("reply").data,
        )
        .expect("decode");
        assert!(reply.status, "{reply:?}");
        let app = connect(&hodi, false).await;
        let cmd = AppToServerCommand {
            entry: Some(app_to_server_command::Entry::GetCustomerState(GetCustomerStateCommand {
                customer: Some(get_customer_state_command::Customer::CustomerNumber(CustomerNumber {
                    provider: CustomerNumberProvider::Cellular as i32,
                    number: "+254700200002".into(),
                    partition: None,
                })),
            })),
        };
        let reply = AppToServerCommandReply::decode(
            app.request_response(Payload::new(cmd.encode_to_vec())).await.expect("reply").data,
        )
        .expect("decode");
        let Some(app_to_server_command_reply::Entry::GetCustomerState(s)) = reply.entry else { panic!("{reply:?}") };
        s.data.expect("data").customer_id
    });

    // First half: four sockets; the server is killed while they run.
    let mut acknowledged: Vec<String> = Vec::new();
    let first = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let app = connect(&hodi, false).await;
            tasks.push(tokio::spawn(transfers(app, purse_id.clone(), hub.clone(), i, 100_000)));
        }
        tasks
    });
    std::thread::sleep(Duration::from_millis(1500));
    hodi.kill();
    for t in first {
        acknowledged.extend(rt.block_on(t).expect("task"));
    }
    assert!(!acknowledged.is_empty(), "no payment succeeded before the kill");
    let before_restart = acknowledged.len();

    // Second half: restart on the same data and carry on.
    let hodi = Hodi::start(dir.path(), &[("HODI_LOG", "info")]);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let app = connect(&hodi, false).await;
            tasks.push(tokio::spawn(transfers(app, purse_id.clone(), hub.clone(), i, 150)));
        }
        for t in tasks {
            acknowledged.extend(t.await.expect("task"));
        }
    });
    let db = hodi.db.clone();
    drop(hodi);

    // Every acknowledged payment is stored as SUCCESS with exactly its two entries; money is conserved.
    rt.block_on(async {
        let store = hodi::store::Store::open(&db.url).await.expect("store");
        for id in &acknowledged {
            let t = store
                .transaction(id)
                .await
                .expect("read")
                .unwrap_or_else(|| panic!("{id} was acknowledged but is lost"));
            assert_eq!(t.status, PaymentStatus::Success as i32, "{id}");
            assert_eq!(store.entry_count(id).await.expect("entries"), 2, "{id} applied other than once");
        }
        let org = org_id.as_str();
        let purse =
            store.account(org, &AccountKey::Purse(purse_id.clone()), "KES").await.expect("read").expect("purse");
        let wallet = store
            .account(org, &AccountKey::Wallet { customer_id: hub.clone(), wallet_id: "main".into() }, "KES")
            .await
            .expect("read")
            .expect("wallet");
        assert_eq!(purse.balance + wallet.balance, 50_000, "money was created or lost");
        assert!(purse.balance >= 0 && wallet.balance >= 0 && purse.held == 0 && wallet.held == 0);
        assert_eq!(store.ledger_check().await.expect("check"), (0, 0, 0));
    });
    assert!(acknowledged.len() > before_restart, "no payment succeeded after the restart");
    eprintln!("{before_restart} payments acknowledged before the kill, {} in all", acknowledged.len());
}
