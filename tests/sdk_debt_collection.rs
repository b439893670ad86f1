//! The debt-collection example of `hodi-sdk` (sdk/examples/debt_collection) against a live Hodi,
//! with `hodi-simulator` phones as the customers: one pays after the SMS, one ignores the SMS, is
//! called, presses 1 and declines the checkout.

mod common;

#[path = "../sdk/examples/debt_collection/app.rs"]
mod app;

use std::time::Duration;

use hodi::store::payments::AccountKey;
use hodi_sdk::{Credentials, Elarian, Endpoint, Options};
use hodi_simulator::{describe, Phone};

const WAIT: Duration = Duration::from_secs(15);

fn options(running: &hodi::server::Running) -> Options {
    let dev = running.dev.as_ref().expect("dev tenant");
    let addr = running.bound.tcp.expect("tcp listener");
    Options::new(Endpoint::Tcp(addr.to_string()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()))
}

async fn purse_balance(running: &hodi::server::Running) -> i64 {
    let dev = running.dev.as_ref().expect("dev tenant");
    let store = &running.hodi.store;
    let account = store.account(&dev.org_id, &AccountKey::Purse(dev.purse_id.clone()), "KES").await.expect("store");
    account.map_or(0, |a| a.balance)
}

/// The app records progress in its answer, which the server applies after the app's last SMS has
/// gone out: wait (bounded) for it.
async fn app_data_becomes(client: &Elarian, number: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let data = client.customer(number).lease_app_data().await.expect("app data");
        let text = data.and_then(|d| d.as_text().map(str::to_string));
        if text.as_deref() == Some(expected) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "app data is {text:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the example app and one phone; returns both.
async fn setup(running: &hodi::server::Running, number: &str, follow_up: Duration) -> (Elarian, Phone) {
    let dev = running.dev.as_ref().expect("dev tenant");
    let client = Elarian::connect(options(running));
    client.connected(WAIT).await.expect("app connected");
    let settings = app::Settings {
        sms: "21356".into(),
        voice: "+254711082000".into(),
        paybill: "525900".into(),
        purse_id: dev.purse_id.clone(),
        currency: "KES".into(),
        follow_up,
    };
    app::start(&client, settings).expect("handlers registered");
    let phone = Phone::connect(options(running), number).await.expect("phone connected");
    (client, phone)
}

#[tokio::test]
async fn a_customer_who_answers_ok_pays_through_the_checkout_and_is_never_called() {
    let (running, _dir) = common::inproc::start().await;
    let (client, phone) = setup(&running, "+254700100001", Duration::from_secs(3)).await;
    let before = purse_balance(&running).await;

    app::enroll(&client, phone.number(), 500.0, Duration::from_millis(200)).await.expect("enrolled");
    let sms = phone.expect_message(WAIT).await.expect("the reminder SMS");
    assert!(sms.text().contains("You owe KES 500") && sms.text().contains("Reply OK"), "{}", sms.text());

    phone.send_sms("21356", " ok ").await.expect("reply sent");
    let checkout = phone.expect_checkout(WAIT).await.expect("a checkout request");
    let value = checkout.value.clone().expect("an amount");
    assert_eq!((value.currency_code.as_str(), value.amount), ("KES", 500.0));
    phone.confirm_checkout().await.expect("confirmed");

    let receipt = phone.expect_message(WAIT).await.expect("the receipt");
    assert!(receipt.text().contains("Thank you! We received KES 500"), "{}", receipt.text());
    assert_eq!(purse_balance(&running).await - before, 50_000, "KES 500.00 in the purse, in cents");

    // The follow-up reminder was cancelled when the customer said OK: no call comes.
    match phone.expect_call(Duration::from_secs(5)).await {
        Err(hodi_simulator::Error::Timeout(..)) => {}
        other => panic!("the paying customer must not be called: {other:?}"),
    }
    app_data_becomes(&client, phone.number(), "paid 500").await;
}

#[tokio::test]
async fn a_customer_who_ignores_the_sms_is_called_presses_1_and_declines() {
    let (running, _dir) = common::inproc::start().await;
    let (client, phone) = setup(&running, "+254700100002", Duration::from_secs(1)).await;
    let before = purse_balance(&running).await;

    app::enroll(&client, phone.number(), 750.0, Duration::from_millis(200)).await.expect("enrolled");
    let sms = phone.expect_message(WAIT).await.expect("the reminder SMS");
    assert!(sms.text().contains("You owe KES 750"), "{}", sms.text());

    // No answer: the follow-up reminder makes the app call.
    let call = phone.expect_call(WAIT).await.expect("the app calls");
    assert_eq!(call.channel, "+254711082000");
    let greeting = describe::actions(&phone.answer().await.expect("answered"));
    assert!(greeting.contains("You owe KES 750") && greeting.contains("Press 1 to pay now"), "{greeting}");

    let after_1 = describe::actions(&phone.press("1").await.expect("pressed 1"));
    assert!(after_1.contains("payment request"), "{after_1}");
    phone.hang_up().await.expect("hung up");

    phone.expect_checkout(WAIT).await.expect("a checkout request after pressing 1");
    phone.decline_checkout().await.expect("declined");
    let notice = phone.expect_message(WAIT).await.expect("the app says the payment did not complete");
    assert!(notice.text().contains("not completed"), "{}", notice.text());
    assert_eq!(purse_balance(&running).await, before, "nothing collected");
    app_data_becomes(&client, phone.number(), "unpaid 750").await;
}
