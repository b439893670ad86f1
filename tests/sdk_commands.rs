//! hodi-sdk's typed commands against a live Hodi: every `Customer` method, the `Elarian`
//! commands, and the errors a user sees for refusals.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use hodi_sdk::model::{cash, channel, message, party, AppData, Reminder, Tag};
use hodi_sdk::wire::MessagingConsentUpdate;
use hodi_sdk::{Credentials, Elarian, Endpoint, Error, Options};

const WAIT: Duration = Duration::from_secs(10);

fn options(running: &hodi::server::Running) -> Options {
    let dev = running.dev.as_ref().expect("dev tenant");
    let addr = running.bound.tcp.expect("tcp listener");
    Options::new(Endpoint::Tcp(addr.to_string()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()))
}

#[tokio::test]
async fn customer_commands_change_state_that_get_state_shows() {
    let (running, _dir) = common::inproc::start().await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("connected");
    let customer = client.customer("+254700500001");

    let id = customer.update_tags(&[Tag::new("tier", "gold"), Tag::new("region", "coast")]).await.expect("tags");
    assert!(id.starts_with("cst_"), "{id}");
    customer.delete_tags(&["region"]).await.expect("tag deleted");
    customer.update_secondary_ids(&[Tag::new("national_id", "12345678")]).await.expect("secondary id");
    let metadata = HashMap::from([("name".to_string(), AppData::from("Amina"))]);
    customer.update_metadata(metadata).await.expect("metadata");
    customer.add_reminder(Reminder::after("later", Duration::from_secs(3600), "x")).await.expect("reminder");
    customer.cancel_reminder("later").await.expect("reminder cancelled");

    let state = customer.get_state().await.expect("state");
    assert_eq!(state.customer_id, id);
    let identity = state.identity_state.expect("identity");
    let tags: Vec<String> = identity.tags.iter().filter_map(|t| t.mapping.as_ref()).map(|m| m.key.clone()).collect();
    assert_eq!(tags, vec!["tier".to_string()]);
    assert!(identity.metadata.contains_key("name"));

    // The same customer by secondary id and by id.
    let by_secondary = client.customer_by_secondary_id(Tag::new("national_id", "12345678"));
    assert_eq!(by_secondary.id().await.expect("found by secondary id"), id);
    client.customer_by_id(&id).delete_metadata(&["name"]).await.expect("metadata deleted");
    client.customer_by_id(&id).delete_secondary_ids(&[Tag::new("national_id", "12345678")]).await.expect("deleted");

    // App data with a lease.
    customer.update_app_data("step 1").await.expect("app data");
    assert_eq!(customer.lease_app_data().await.expect("leased"), Some(AppData::from("step 1")));
    customer.delete_app_data().await.expect("app data deleted");
    assert_eq!(customer.lease_app_data().await.expect("leased"), None);

    // Messaging: consent, sending, activity.
    let sms = channel::sms("21356");
    assert_eq!(
        customer.update_messaging_consent(sms.clone(), MessagingConsentUpdate::Block).await.expect("blocked"),
        "COMPLETED"
    );
    match customer.send_message(sms.clone(), message::text("hi")).await {
        Err(Error::Status { status, .. }) => assert_eq!(status, "NO_CONSENT"),
        other => panic!("a blocked channel refuses: {other:?}"),
    }
    customer.update_messaging_consent(sms.clone(), MessagingConsentUpdate::Allow).await.expect("allowed");
    let sent = customer.send_message(sms, message::text("hi")).await.expect("sent");
    assert!(sent.message_id.is_some() && sent.status == "QUEUED", "{sent:?}");
    let props = HashMap::from([("page".to_string(), "/pay".to_string())]);
    customer.update_activity("web", "sess-1", "viewed", props).await.expect("activity");

    // Adoption: another customer's state moves over, and the other is decommissioned.
    let other = client.customer("+254700500002");
    other.update_tags(&[Tag::new("vip", "yes")]).await.expect("other's tag");
    customer.adopt_state(&other).await.expect("adopted");
    let tags = customer.get_state().await.expect("state").identity_state.expect("identity").tags;
    assert!(tags.iter().any(|t| t.mapping.as_ref().is_some_and(|m| m.key == "vip")), "{tags:?}");
}

#[tokio::test]
async fn app_commands_and_refusals_come_back_typed() {
    let (running, _dir) = common::inproc::start().await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("connected");
    let dev = running.dev.clone().expect("dev tenant");

    // An auth token connects a second client without the API key.
    let token = client.generate_auth_token().await.expect("token");
    assert!(token.lifetime > Duration::ZERO);
    let mut by_token = options(&running);
    by_token.credentials = Credentials::AuthToken(token.token);
    let second = Elarian::connect(by_token);
    second.connected(WAIT).await.expect("connected with the token");

    let tagged = client.customer("+254700500003");
    tagged.update_tags(&[Tag::new("batch", "a")]).await.expect("tag");
    let work = client
        .add_customer_reminder_by_tag(Tag::new("batch", "a"), Reminder::after("r", Duration::from_secs(3600), ""))
        .await
        .expect("by tag");
    assert!(work.work_id.is_some());
    client.cancel_customer_reminder_by_tag(Tag::new("batch", "a"), "r").await.expect("cancelled by tag");
    client
        .send_message_by_tag(Tag::new("batch", "a"), channel::sms("21356"), message::text("news"))
        .await
        .expect("sent");

    // Payments: a refusal is an Error::Status with the server's reason.
    let id = tagged.id().await.expect("id");
    match client.initiate_payment(party::wallet(&id, "w"), party::purse(&dev.purse_id), cash("KES", 10.0), "x").await {
        Err(Error::Status { status, description }) => {
            assert_eq!(status, "INVALID_WALLET");
            assert!(description.contains("has no wallet \"w\""), "{description}");
        }
        other => panic!("a wallet never credited cannot pay: {other:?}"),
    }
    match client.initiate_payment(party::purse("prs_nope"), party::wallet(&id, "w"), cash("KES", 1.0), "x").await {
        Err(Error::Status { status, .. }) => assert_eq!(status, "INVALID_PURSE"),
        other => panic!("{other:?}"),
    }
    // A bad argument the server refuses as a protocol error.
    match client.customer("").get_state().await {
        Err(Error::Status { .. }) | Err(Error::Server { .. }) => {}
        other => panic!("an empty number is refused: {other:?}"),
    }
    // After disconnect, commands fail at once and say why.
    client.disconnect();
    match client.customer("+254700500003").get_state().await {
        Err(Error::Closed(why)) => assert!(why.contains("disconnected"), "{why}"),
        other => panic!("{other:?}"),
    }
}
