//! Input a hostile or careless app sends, each once accepted and stored: now refused with a
//! reason, and nothing of it stored.

mod common;

use common::inproc::{command, connect, dev_meta, start_with};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::Requester;

fn cellular(number: &str) -> CustomerNumber {
    CustomerNumber { provider: CustomerNumberProvider::Cellular as i32, number: number.into(), partition: None }
}

fn tag(key: &str, value: &str) -> CustomerIndex {
    CustomerIndex { mapping: Some(IndexMapping { key: key.into(), value: Some(value.into()) }), expires_at: None }
}

async fn update_tags(app: &Requester, number: &str, tags: Vec<CustomerIndex>) -> UpdateCustomerStateReply {
    let cmd = Cmd::UpdateCustomerTag(UpdateCustomerTagCommand {
        customer: Some(update_customer_tag_command::Customer::CustomerNumber(cellular(number))),
        updates: tags,
    });
    let Reply::UpdateCustomerState(r) = command(app, cmd).await else { panic!("not an UpdateCustomerState reply") };
    r
}

async fn tags_of(app: &Requester, number: &str) -> Vec<String> {
    let cmd = Cmd::GetCustomerState(GetCustomerStateCommand {
        customer: Some(get_customer_state_command::Customer::CustomerNumber(cellular(number))),
    });
    let Reply::GetCustomerState(r) = command(app, cmd).await else { panic!("not a GetCustomerState reply") };
    let identity = r.data.and_then(|d| d.identity_state).unwrap_or_default();
    let mut keys: Vec<String> = identity.tags.into_iter().filter_map(|t| t.mapping.map(|m| m.key)).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn customer_numbers_are_checked_by_provider() {
    let (running, _dir) = start_with(|_| {}).await;
    let app = connect(&running, dev_meta(&running)).await;
    for (number, why) in [
        ("7".repeat(10_000).as_str(), "limit is 256"),
        ("+254711\u{0}082000", "control characters"),
        ("0711082000", "E.164"),
        ("+999123456", "not a valid number"),
    ] {
        let r = update_tags(&app, number, vec![tag("a", "b")]).await;
        assert!(!r.status && r.description.contains(why), "{number:?}: {r:?}");
    }
    assert!(update_tags(&app, "+254711082000", vec![tag("a", "b")]).await.status);
}

#[tokio::test]
async fn a_customer_holds_no_more_state_than_allowed() {
    let (running, _dir) = start_with(|c| {
        c.customer.max_tags = 5;
        c.customer.max_metadata_keys = 3;
        c.customer.max_metadata_bytes = 40;
    })
    .await;
    let app = connect(&running, dev_meta(&running)).await;
    let number = "+254711082100";
    let five: Vec<_> = (0..5).map(|i| tag(&format!("t{i}"), "v")).collect();
    assert!(update_tags(&app, number, five).await.status);
    // Replacing one is fine; a sixth is refused, and nothing of that update is stored.
    assert!(update_tags(&app, number, vec![tag("t0", "new")]).await.status);
    let r = update_tags(&app, number, vec![tag("t1", "changed"), tag("t5", "v")]).await;
    assert!(!r.status && r.description.contains("at most 5 tags"), "{r:?}");
    assert_eq!(tags_of(&app, number).await, ["t0", "t1", "t2", "t3", "t4"]);
    // A single new tag is refused by its one statement (no savepoint), with the count it would make,
    // while other customers' updates committed alongside it go through.
    let (refused, other) = tokio::join!(
        update_tags(&app, number, vec![tag("t6", "v")]),
        update_tags(&app, "+254711082103", vec![tag("t6", "v")])
    );
    assert!(!refused.status && refused.description.contains("at most 5 tags; this update would make 6"), "{refused:?}");
    assert!(other.status, "{other:?}");
    assert_eq!(tags_of(&app, number).await, ["t0", "t1", "t2", "t3", "t4"]);

    // Metadata: at most 3 keys and 40 bytes (keys and values together).
    let meta = |pairs: &[(&str, &str)]| {
        Cmd::UpdateCustomerMetadata(UpdateCustomerMetadataCommand {
            customer: Some(update_customer_metadata_command::Customer::CustomerNumber(cellular(number))),
            updates: pairs
                .iter()
                .map(|(k, v)| {
                    (k.to_string(), DataMapValue { value: Some(data_map_value::Value::StringVal(v.to_string())) })
                })
                .collect(),
        })
    };
    let set = |pairs: &'static [(&'static str, &'static str)]| {
        let app = app.clone();
        async move {
            let Reply::UpdateCustomerState(r) = command(&app, meta(pairs)).await else { panic!("not an update reply") };
            r
        }
    };
    assert!(set(&[("a", "1234567890"), ("b", "1234567890")]).await.status, "22 bytes, 2 keys");
    let r = set(&[("c", "12345678901234567890")]).await;
    assert!(!r.status && r.description.contains("at most 40 bytes of metadata; this update would make 43"), "{r:?}");
    assert!(set(&[("a", "x")]).await.status, "a smaller value frees bytes: 13 bytes");
    assert!(set(&[("c", "12345678901234567890")]).await.status, "now 34 bytes");
    let r = set(&[("d", "")]).await;
    assert!(!r.status && r.description.contains("at most 3 metadata keys; this update would make 4"), "{r:?}");
    let Reply::GetCustomerState(s) = command(
        &app,
        Cmd::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerNumber(cellular(number))),
        }),
    )
    .await
    else {
        panic!("not a state reply")
    };
    let mut keys: Vec<String> = s.data.and_then(|d| d.identity_state).expect("identity").metadata.into_keys().collect();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"], "refused keys were not stored");
    // Oversize keys and values never reach the store.
    let r = update_tags(&app, number, vec![tag(&"k".repeat(200), "v")]).await;
    assert!(!r.status && r.description.contains("limit is 128"), "{r:?}");
    let r = update_tags(&app, number, vec![tag("t0", &"v".repeat(2000))]).await;
    assert!(!r.status && r.description.contains("limit is 1024"), "{r:?}");
}

#[tokio::test]
async fn empty_metadata_keys_are_refused_like_empty_tag_keys() {
    let (running, _dir) = start_with(|_| {}).await;
    let app = connect(&running, dev_meta(&running)).await;
    let cmd = Cmd::UpdateCustomerMetadata(UpdateCustomerMetadataCommand {
        customer: Some(update_customer_metadata_command::Customer::CustomerNumber(cellular("+254711082101"))),
        updates: [(String::new(), DataMapValue { value: Some(data_map_value::Value::StringVal("x".into())) })].into(),
    });
    let Reply::UpdateCustomerState(r) = command(&app, cmd).await else { panic!() };
    assert!(!r.status && r.description.contains("empty key"), "{r:?}");
}

#[tokio::test]
async fn reminder_times_and_intervals_are_bounded() {
    let (running, _dir) = start_with(|_| {}).await;
    let app = connect(&running, dev_meta(&running)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let remind = |at: i64, interval: Option<i64>| {
        Cmd::AddCustomerReminder(AddCustomerReminderCommand {
            customer: Some(add_customer_reminder_command::Customer::CustomerNumber(cellular("+254711082102"))),
            reminder: Some(CustomerReminder {
                key: "r".into(),
                remind_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
                interval: interval.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                payload: None,
            }),
        })
    };
    for (cmd, why) in [
        (remind(now + 60, Some(9_300_000_000_000_000)), "ten years"),
        (remind(9_300_000_000_000_000, None), "after the year 2200"),
        (remind(-5, None), "before 1970"),
    ] {
        let Reply::UpdateCustomerAppData(r) = command(&app, cmd).await else { panic!() };
        assert!(!r.status && r.description.contains(why), "{r:?}");
    }
    let Reply::UpdateCustomerAppData(r) = command(&app, remind(now + 60, Some(3600))).await else { panic!() };
    assert!(r.status, "{r:?}");
}

#[tokio::test]
async fn currencies_are_iso_4217() {
    let (running, _dir) = start_with(|_| {}).await;
    let app = connect(&running, dev_meta(&running)).await;
    let purse = running.dev.as_ref().expect("dev").purse_id.clone();
    for (code, ok) in [("ZZZ", false), ("XAU", false), ("kes", true), ("KES", true)] {
        let cmd = Cmd::InitiatePayment(InitiatePaymentCommand {
            debit_party: Some(PaymentCounterParty {
                party: Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty { purse_id: purse.clone() })),
            }),
            credit_party: Some(PaymentCounterParty {
                party: Some(payment_counter_party::Party::Wallet(PaymentWalletCounterParty {
                    customer_id: "cst_nobody".into(),
                    wallet_id: "w".into(),
                })),
            }),
            value: Some(Cash { currency_code: code.into(), amount: 10.0 }),
            narration: "x".into(),
        });
        let Reply::InitiatePayment(r) = command(&app, cmd).await else { panic!() };
        let refused_for_currency = r.description.contains("not an ISO 4217 currency code");
        assert_eq!(!refused_for_currency, ok, "{code}: {r:?}");
    }
}
