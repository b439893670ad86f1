//! Payments through real sockets on an in-process server: every counterparty pair, refusals that
//! leave the ledger untouched, checkouts confirmed and declined by the phone, payouts, payments
//! received into a purse, purse notifications, state, and many concurrent payments on one wallet.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::inproc::{command, connect_phone, connect_with, dev_meta, start};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Requester, Responder};
use prost::Message;
use tokio::sync::mpsc;

/// The app: records every notification (customer and purse), answers with nothing.
struct App(mpsc::Sender<server_to_app_notification::Entry>);
impl Responder for App {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let tx = self.0.clone();
        Box::pin(async move {
            let n = ServerToAppNotification::decode(payload.data).map_err(|e| RemoteError::invalid(e.to_string()))?;
            if let Some(e) = n.entry {
                let _ = tx.send(e).await;
            }
            Ok(Payload::new(ServerToAppNotificationReply::default().encode_to_vec()))
        })
    }
}

fn kes(amount: f64) -> Cash {
    Cash { currency_code: "KES".into(), amount }
}
fn purse(id: &str) -> PaymentCounterParty {
    PaymentCounterParty {
        party: Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty { purse_id: id.into() })),
    }
}
fn wallet(customer_id: &str, wallet_id: &str) -> PaymentCounterParty {
    PaymentCounterParty {
        party: Some(payment_counter_party::Party::Wallet(PaymentWalletCounterParty {
            customer_id: customer_id.into(),
            wallet_id: wallet_id.into(),
        })),
    }
}
fn mobile(number: &str) -> PaymentCounterParty {
    PaymentCounterParty {
        party: Some(payment_counter_party::Party::Customer(PaymentCustomerCounterParty {
            customer_number: Some(CustomerNumber {
                provider: CustomerNumberProvider::Cellular as i32,
                number: number.into(),
                partition: None,
            }),
            channel_number: Some(PaymentChannelNumber {
                channel: PaymentChannel::Cellular as i32,
                number: "525900".into(),
            }),
        })),
    }
}
fn paybill(destination: &str) -> PaymentCounterParty {
    PaymentCounterParty {
        party: Some(payment_counter_party::Party::Channel(PaymentChannelCounterParty {
            channel: PaymentChannel::Cellular as i32,
            channel_code: 0,
            source: "525900".into(),
            destination: destination.into(),
            account: Some("acc-1".into()),
        })),
    }
}

async fn pay(
    app: &Requester,
    debit: PaymentCounterParty,
    credit: PaymentCounterParty,
    value: Cash,
) -> InitiatePaymentReply {
    let reply = command(
        app,
        Cmd::InitiatePayment(InitiatePaymentCommand {
            debit_party: Some(debit),
            credit_party: Some(credit),
            value: Some(value),
            narration: "test".into(),
        }),
    )
    .await;
    let Reply::InitiatePayment(r) = reply else { panic!("{reply:?}") };
    r
}

async fn simulate(phone: &Requester, cmd: simulator_to_server_command::Entry) -> SimulatorToServerCommandReply {
    let bytes = SimulatorToServerCommand { entry: Some(cmd) }.encode_to_vec();
    let reply = tokio::time::timeout(Duration::from_secs(10), phone.request_response(Payload::new(bytes)))
        .await
        .expect("in time")
        .expect("reply");
    SimulatorToServerCommandReply::decode(reply.data).expect("reply")
}

/// A customer pays `amount` KES into the org's paybill: the dev purse is funded.
async fn fund(phone: &Requester, provider_id: &str, number: &str, amount: f64) -> SimulatorToServerCommandReply {
    simulate(
        phone,
        simulator_to_server_command::Entry::ReceivePayment(ReceivePaymentSimulatorCommand {
            transaction_id: provider_id.into(),
            channel_number: Some(PaymentChannelNumber {
                channel: PaymentChannel::Cellular as i32,
                number: "525900".into(),
            }),
            customer_number: number.into(),
            value: Some(kes(amount)),
            status: PaymentStatus::Success as i32,
        }),
    )
    .await
}

async fn next<T>(rx: &mut mpsc::Receiver<T>, what: &str, pick: impl Fn(&T) -> bool) -> T {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waiting for {what}"))
            .expect("open");
        if pick(&item) {
            return item;
        }
    }
}

async fn balance(running: &hodi::server::Running, key: hodi::store::payments::AccountKey) -> (i64, i64) {
    let org = &running.dev.as_ref().expect("dev").org_id;
    let a = running.hodi.store.account(org, &key, "KES").await.expect("account").expect("exists");
    (a.balance, a.available())
}

async fn state(app: &Requester, customer_id: &str) -> PaymentState {
    let reply = command(
        app,
        Cmd::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerId(customer_id.into())),
        }),
    )
    .await;
    let Reply::GetCustomerState(s) = reply else { panic!("{reply:?}") };
    s.data.and_then(|d| d.payment_state).expect("payment state")
}

fn is_status(e: &server_to_app_notification::Entry, id: &str) -> bool {
    match e {
        server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
            entry: Some(server_to_app_customer_notification::Entry::PaymentStatus(p)),
            ..
        }) => p.transaction_id == id,
        server_to_app_notification::Entry::Purse(ServerToAppPurseNotification {
            entry: Some(server_to_app_purse_notification::Entry::PaymentStatus(p)),
            ..
        }) => p.transaction_id == id,
        _ => false,
    }
}

#[tokio::test]
async fn every_pair_moves_money_exactly_or_refuses_without_touching_the_ledger() {
    use hodi::store::payments::AccountKey;
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(App(app_tx))).await;
    let (phone, mut phone_rx) = connect_phone(&running).await;
    let purse_id = running.dev.as_ref().expect("dev").purse_id.clone();

    // A customer pays 1,000.50 into the paybill: the purse has it; the app hears received_payment.
    let r = fund(&phone, "MPESA-1", "+254700100001", 1000.50).await;
    assert!(r.status, "{r:?}");
    let got = next(&mut app_rx, "received payment", |e| {
        matches!(
            e,
            server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
                entry: Some(server_to_app_customer_notification::Entry::ReceivedPayment(_)),
                ..
            })
        )
    })
    .await;
    let server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
        entry: Some(server_to_app_customer_notification::Entry::ReceivedPayment(received)),
        ..
    }) = got
    else {
        unreachable!()
    };
    assert_eq!(received.purse_id, purse_id);
    assert_eq!(received.value, Some(kes(1000.50)));
    assert_eq!(balance(&running, AccountKey::Purse(purse_id.clone())).await, (100_050, 100_050));
    // The same provider transaction again is refused as a duplicate; the purse is unchanged.
    let again = fund(&phone, "MPESA-1", "+254700100001", 1000.50).await;
    assert!(!again.status && again.description.contains("duplicate"), "{again:?}");
    assert_eq!(balance(&running, AccountKey::Purse(purse_id.clone())).await.0, 100_050);

    // Purse → wallet settles at once.
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    let ada = running
        .hodi
        .store
        .customer_by_number(
            &org,
            &hodi::store::customers::StoredNumber {
                provider: 2,
                number: "+254700100002".into(),
                partition: String::new(),
            },
        )
        .await
        .expect("customer")
        .0
        .id;
    let r = pay(&app, purse(&purse_id), wallet(&ada, "savings"), kes(300.25)).await;
    assert_eq!(r.status, PaymentStatus::Success as i32, "{r:?}");
    assert_eq!(r.credit_customer_id.as_deref(), Some(ada.as_str()));
    let ada_savings = AccountKey::Wallet { customer_id: ada.clone(), wallet_id: "savings".into() };
    assert_eq!(balance(&running, ada_savings.clone()).await.0, 30_025);
    assert_eq!(balance(&running, AccountKey::Purse(purse_id.clone())).await.0, 70_025);

    // Wallet → wallet, and refusals that change nothing.
    let r = pay(&app, wallet(&ada, "savings"), wallet(&ada, "spending"), kes(100.0)).await;
    assert_eq!(r.status, PaymentStatus::Success as i32, "{r:?}");
    let r = pay(&app, wallet(&ada, "savings"), wallet(&ada, "spending"), kes(200.26)).await;
    assert_eq!(r.status, PaymentStatus::InsufficientFunds as i32, "{r:?}");
    let r = pay(&app, wallet(&ada, "nope"), wallet(&ada, "spending"), kes(1.0)).await;
    assert_eq!(r.status, PaymentStatus::InvalidWallet as i32, "{r:?}");
    let r = pay(&app, wallet("cst_nobody", "x"), wallet(&ada, "spending"), kes(1.0)).await;
    assert_eq!(r.status, PaymentStatus::InvalidWallet as i32, "{r:?}");
    let r = pay(&app, purse("prs_nope"), wallet(&ada, "spending"), kes(1.0)).await;
    assert_eq!(r.status, PaymentStatus::InvalidPurse as i32, "{r:?}");
    let r =
        pay(&app, purse(&purse_id), wallet(&ada, "spending"), Cash { currency_code: "USD".into(), amount: 1.0 }).await;
    assert_eq!(r.status, PaymentStatus::InvalidRequest as i32, "{r:?}");
    assert!(r.description.contains("currency mismatch"), "{r:?}");
    let r = pay(&app, purse(&purse_id), wallet(&ada, "spending"), kes(0.001)).await;
    assert_eq!(r.status, PaymentStatus::InvalidRequest as i32, "{r:?}");
    let r = pay(&app, mobile("+254700100003"), mobile("+254700100004"), kes(1.0)).await;
    assert_eq!(r.status, PaymentStatus::NotSupported as i32, "{r:?}");
    let r = pay(&app, wallet(&ada, "savings"), wallet(&ada, "savings"), kes(1.0)).await;
    assert_eq!(r.status, PaymentStatus::InvalidRequest as i32, "{r:?}");
    assert_eq!(balance(&running, ada_savings.clone()).await, (20_025, 20_025));
    assert_eq!(
        balance(&running, AccountKey::Wallet { customer_id: ada.clone(), wallet_id: "spending".into() }).await.0,
        10_000
    );

    // Checkout: the phone is asked, confirms, and the wallet is credited.
    let r = pay(&app, mobile("+254700100002"), wallet(&ada, "savings"), kes(50.0)).await;
    assert_eq!(r.status, PaymentStatus::PendingConfirmation as i32, "{r:?}");
    let checkout_id = r.transaction_id.clone().expect("id");
    let asked = next(&mut phone_rx, "checkout", |_| true).await;
    let Some(server_to_simulator_notification::Entry::CheckoutPayment(c)) = asked.entry else { panic!("{asked:?}") };
    assert_eq!(c.transaction_id, checkout_id);
    assert_eq!(c.value, Some(kes(50.0)));
    let pending = state(&app, &ada).await;
    assert!(pending.pending_transactions.iter().any(|t| t.transaction_id == checkout_id));
    let ok = simulate(
        &phone,
        simulator_to_server_command::Entry::UpdatePaymentStatus(UpdatePaymentStatusSimulatorCommand {
            transaction_id: checkout_id.clone(),
            status: PaymentStatus::Success as i32,
        }),
    )
    .await;
    assert!(ok.status, "{ok:?}");
    next(&mut app_rx, "checkout status", |e| is_status(e, &checkout_id)).await;
    assert_eq!(balance(&running, ada_savings.clone()).await.0, 25_025);
    // Confirming twice changes nothing.
    let twice = simulate(
        &phone,
        simulator_to_server_command::Entry::UpdatePaymentStatus(UpdatePaymentStatusSimulatorCommand {
            transaction_id: checkout_id.clone(),
            status: PaymentStatus::Success as i32,
        }),
    )
    .await;
    assert!(!twice.status && twice.description.contains("no longer pending"), "{twice:?}");
    assert_eq!(balance(&running, ada_savings.clone()).await.0, 25_025);

    // A declined checkout moves nothing.
    let r = pay(&app, mobile("+254700100002"), wallet(&ada, "savings"), kes(70.0)).await;
    let declined_id = r.transaction_id.expect("id");
    next(&mut phone_rx, "checkout", |_| true).await;
    let no = simulate(
        &phone,
        simulator_to_server_command::Entry::UpdatePaymentStatus(UpdatePaymentStatusSimulatorCommand {
            transaction_id: declined_id.clone(),
            status: PaymentStatus::Rejected as i32,
        }),
    )
    .await;
    assert!(no.status, "{no:?}");
    assert_eq!(balance(&running, ada_savings.clone()).await.0, 25_025);

    // Payout: wallet → customer's mobile money, settled when the phone acknowledges.
    let r = pay(&app, wallet(&ada, "savings"), mobile("+254700100002"), kes(25.0)).await;
    assert_eq!(r.status, PaymentStatus::Queued as i32, "{r:?}");
    let payout_id = r.transaction_id.expect("id");
    let sent = next(&mut phone_rx, "payout", |_| true).await;
    assert!(matches!(sent.entry, Some(server_to_simulator_notification::Entry::SendCustomerPayment(_))), "{sent:?}");
    next(&mut app_rx, "payout status", |e| is_status(e, &payout_id)).await;
    assert_eq!(balance(&running, ada_savings.clone()).await, (22_525, 22_525));

    // Purse → channel: a purse notification (no customer involved).
    let r = pay(&app, purse(&purse_id), paybill("888880"), kes(20.0)).await;
    assert_eq!(r.status, PaymentStatus::Queued as i32, "{r:?}");
    let channel_id = r.transaction_id.expect("id");
    let sent = next(&mut phone_rx, "channel payment", |_| true).await;
    assert!(matches!(sent.entry, Some(server_to_simulator_notification::Entry::SendChannelPayment(_))), "{sent:?}");
    let n = next(&mut app_rx, "purse status", |e| is_status(e, &channel_id)).await;
    let server_to_app_notification::Entry::Purse(p) = n else { panic!("{n:?}") };
    assert_eq!(p.purse_id, purse_id);
    assert_eq!(balance(&running, AccountKey::Purse(purse_id.clone())).await.0, 70_025 - 2_000);

    // The wallets and the log in Ada's state.
    let s = state(&app, &ada).await;
    let savings = &s.wallets["savings"];
    assert_eq!(savings.currency_code, "KES");
    assert_eq!(savings.actual, Some(kes(225.25)));
    assert_eq!(s.wallets["spending"].available, Some(kes(100.0)));
    assert!(s
        .transaction_log
        .iter()
        .any(|t| t.transaction_id == declined_id && t.status == PaymentStatus::Rejected as i32));
    assert!(s.pending_transactions.is_empty(), "{:?}", s.pending_transactions);

    // Double entry holds.
    let (entries, balances, unbalanced) = running.hodi.store.ledger_check().await.expect("check");
    assert_eq!((entries, balances, unbalanced), (0, 0, 0));
}

#[tokio::test]
async fn a_payout_with_no_phone_connected_fails_and_releases_its_hold() {
    use hodi::store::payments::AccountKey;
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(App(app_tx))).await;
    let (phone, _phone_rx) = connect_phone(&running).await;
    let purse_id = running.dev.as_ref().expect("dev").purse_id.clone();
    assert!(fund(&phone, "MPESA-9", "+254700100009", 10.0).await.status);
    phone.close();
    // Wait until the server has seen the phone go.
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    for _ in 0..500 {
        if running.hodi.simulators.all_in_org(&org).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running.hodi.simulators.all_in_org(&org).is_empty(), "the phone is still registered");
    let r = pay(&app, purse(&purse_id), mobile("+254700100009"), kes(4.0)).await;
    assert_eq!(r.status, PaymentStatus::Queued as i32, "{r:?}");
    let id = r.transaction_id.expect("id");
    let n = next(&mut app_rx, "failure", |e| is_status(e, &id)).await;
    let server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
        entry: Some(server_to_app_customer_notification::Entry::PaymentStatus(s)),
        ..
    }) = n
    else {
        panic!("{n:?}")
    };
    assert_eq!(s.status, PaymentStatus::Failed as i32);
    assert_eq!(balance(&running, AccountKey::Purse(purse_id)).await, (1_000, 1_000));
}

#[tokio::test]
async fn thousands_of_concurrent_payments_on_one_wallet_balance_to_the_cent() {
    use hodi::store::payments::AccountKey;
    let (running, _dir) = start().await;
    let (app_tx, _app_rx) = mpsc::channel(10_000);
    let (phone, _phone_rx) = connect_phone(&running).await;
    let purse_id = running.dev.as_ref().expect("dev").purse_id.clone();
    assert!(fund(&phone, "MPESA-BIG", "+254700100010", 500.0).await.status);
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    let customer = |n: &str| {
        let store = running.hodi.store.clone();
        let org = org.clone();
        let number = n.to_string();
        async move {
            store
                .customer_by_number(
                    &org,
                    &hodi::store::customers::StoredNumber { provider: 2, number, partition: String::new() },
                )
                .await
                .expect("customer")
                .0
                .id
        }
    };
    let hub = customer("+254700100011").await;
    // Four app sockets; each sends 500 transfers of 0.37 between the purse and the hub wallet,
    // both ways; money in flight never goes below zero anywhere.
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(connect_with(&running, dev_meta(&running), Arc::new(App(app_tx.clone()))).await);
    }
    let mut tasks = Vec::new();
    for (i, app) in sockets.into_iter().enumerate() {
        let purse_id = purse_id.clone();
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = (0u32, 0u32);
            for k in 0..500 {
                let (debit, credit) = if (i + k).is_multiple_of(2) {
                    (purse(&purse_id), wallet(&hub, "main"))
                } else {
                    (wallet(&hub, "main"), purse(&purse_id))
                };
                let r = pay(&app, debit, credit, kes(0.37)).await;
                if r.status == PaymentStatus::Success as i32 {
                    outcomes.0 += 1;
                } else {
                    assert!(
                        r.status == PaymentStatus::InsufficientFunds as i32
                            || r.status == PaymentStatus::InvalidWallet as i32,
                        "{r:?}"
                    );
                    outcomes.1 += 1;
                }
            }
            outcomes
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        succeeded += t.await.expect("task").0;
    }
    assert!(succeeded > 1000, "only {succeeded} of 2000 succeeded");
    let purse_balance = balance(&running, AccountKey::Purse(purse_id)).await.0;
    let hub_balance = balance(&running, AccountKey::Wallet { customer_id: hub, wallet_id: "main".into() }).await.0;
    assert_eq!(purse_balance + hub_balance, 50_000, "money was created or lost");
    assert!(purse_balance >= 0 && hub_balance >= 0);
    let (entries, balances, unbalanced) = running.hodi.store.ledger_check().await.expect("check");
    assert_eq!((entries, balances, unbalanced), (0, 0, 0));
}

#[tokio::test]
async fn a_checkout_left_unanswered_expires_and_cannot_be_confirmed_later() {
    let (running, _dir) = common::inproc::start_with(|c| {
        c.payment.checkout_expiry_secs = 1;
        c.payment.checkout_sweep_ms = 100;
    })
    .await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(App(app_tx))).await;
    let (phone, mut phone_rx) = connect_phone(&running).await;
    let purse_id = running.dev.as_ref().expect("dev").purse_id.clone();
    let r = pay(&app, mobile("+254700100020"), purse(&purse_id), kes(5.0)).await;
    assert_eq!(r.status, PaymentStatus::PendingConfirmation as i32, "{r:?}");
    let id = r.transaction_id.expect("id");
    next(&mut phone_rx, "the prompt", |_| true).await;
    let n = next(&mut app_rx, "expiry", |e| is_status(e, &id)).await;
    let server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
        entry: Some(server_to_app_customer_notification::Entry::PaymentStatus(s)),
        ..
    }) = n
    else {
        panic!("{n:?}")
    };
    assert_eq!(s.status, PaymentStatus::Expired as i32);
    let late = simulate(
        &phone,
        simulator_to_server_command::Entry::UpdatePaymentStatus(UpdatePaymentStatusSimulatorCommand {
            transaction_id: id.clone(),
            status: PaymentStatus::Success as i32,
        }),
    )
    .await;
    assert!(!late.status && late.description.contains("no longer pending"), "{late:?}");
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    let account = running
        .hodi
        .store
        .account(&org, &hodi::store::payments::AccountKey::Purse(purse_id), "KES")
        .await
        .expect("read");
    assert_eq!(account.map(|a| a.balance).unwrap_or(0), 0, "an expired checkout moved money");
}
