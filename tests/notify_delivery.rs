//! The dispatcher's delivery rules with a hand-written app on an in-process server: a late answer
//! (after the reply timeout, before the retry) completes the delivery once; an answer later than
//! the retry shows as a counted redelivery with the same id; an app handing back the app data it
//! was sent does not undo another answer's update.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::inproc::{command, connect, connect_phone, connect_with, dev_meta, inbound_sms, start_with};
use hodi::store::app_data::AppDataValue;
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Requester, Responder};
use prost::Message;
use tokio::sync::mpsc;

fn text(t: &str) -> DataMapValue {
    DataMapValue { value: Some(data_map_value::Value::StringVal(t.into())) }
}

fn number(n: &str) -> CustomerNumber {
    CustomerNumber { provider: CustomerNumberProvider::Cellular as i32, number: n.into(), partition: None }
}

async fn activity(client: &Requester, n: &str, key: &str) {
    let cmd = Cmd::CustomerActivity(CustomerActivityCommand {
        customer_number: Some(number(n)),
        source: "test".into(),
        session_id: "s1".into(),
        key: key.into(),
        properties: Default::default(),
    });
    assert!(matches!(command(client, cmd).await, Reply::CustomerActivity(r) if r.status));
}

/// What the app saw: (notification id metadata, activity key, app data it carried).
type Seen = (String, String, Option<DataMapValue>);

/// Answers each notification after `delay(key)` with `answer(key, app data sent)`.
struct App {
    seen: mpsc::Sender<Seen>,
    delay: fn(&str) -> Duration,
    answer: fn(&str, Option<DataMapValue>) -> ServerToAppNotificationReply,
}

impl Responder for App {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let (seen, delay, answer) = (self.seen.clone(), self.delay, self.answer);
        Box::pin(async move {
            let id = payload.metadata.as_ref().map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_default();
            let n = ServerToAppNotification::decode(payload.data).map_err(|e| RemoteError::invalid(e.to_string()))?;
            let Some(server_to_app_notification::Entry::Customer(c)) = n.entry else {
                return Err(RemoteError::invalid("a customer notification"));
            };
            let key = match c.entry {
                Some(server_to_app_customer_notification::Entry::CustomerActivity(a)) => {
                    a.activity.map(|a| a.key).unwrap_or_default()
                }
                other => format!("{other:?}"),
            };
            let _ = seen.send((id, key.clone(), c.app_data.clone())).await;
            tokio::time::sleep(delay(&key)).await;
            Ok(Payload::new(answer(&key, c.app_data).encode_to_vec()))
        })
    }
}

/// An app-data update and a text message, for activities; nothing for the rest (the message's
/// statuses, the inbound SMS), so answers do not feed each other.
fn update_and_sms(key: &str, _sent: Option<DataMapValue>) -> ServerToAppNotificationReply {
    if !["late", "slow"].contains(&key) {
        return ServerToAppNotificationReply::default();
    }
    ServerToAppNotificationReply {
        data_update: Some(AppDataUpdate { data: Some(text(&format!("answered {key}"))) }),
        message: Some(OutboundMessage {
            body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text(format!("re {key}"))) }),
            ..Default::default()
        }),
    }
}

/// Everything the app sees within `wait`.
async fn gather(rx: &mut mpsc::Receiver<Seen>, wait: Duration) -> Vec<Seen> {
    let end = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Ok(Some(s)) = tokio::time::timeout_at(end, rx.recv()).await {
        out.push(s);
    }
    out
}

async fn customer_id(client: &Requester, n: &str) -> String {
    let Reply::UpdateCustomerState(r) =
        command(client, Cmd::CreateCustomer(CreateCustomerCommand { customer_number: Some(number(n)) })).await
    else {
        panic!("create")
    };
    r.customer_id.expect("id")
}

#[tokio::test]
async fn an_answer_after_the_timeout_but_before_the_retry_completes_the_delivery_once() {
    // Timeout 400 ms; the first retry would be 1 s later. The app answers at 800 ms.
    let (running, _dir) = start_with(|c| c.notify.reply_timeout_ms = 400).await;
    let (tx, mut rx) = mpsc::channel(100);
    let app = App { seen: tx, delay: |_| Duration::from_millis(800), answer: update_and_sms };
    let _app = connect_with(&running, dev_meta(&running), Arc::new(app)).await;
    let (_phone, mut phone_rx) = connect_phone(&running).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    let id = customer_id(&commands, "+254722000100").await;
    // The reply's message goes to the customer's latest inbound channel: give it one.
    let sms = inbound_sms("+254722000100", "hi");
    let _ = _phone.request_response(Payload::new(sms.encode_to_vec())).await.expect("inbound sms");
    activity(&commands, "+254722000100", "late").await;

    let seen = gather(&mut rx, Duration::from_secs(4)).await;
    let late: Vec<&Seen> = seen.iter().filter(|s| s.1 == "late").collect();
    assert_eq!(late.len(), 1, "sent once, answered late, not sent again: {seen:?}");
    let stats = &running.hodi.notify_stats;
    assert!(stats.late_answers.load(Ordering::Relaxed) >= 1, "{stats:?}");
    assert_eq!(stats.redelivered.load(Ordering::Relaxed), 0, "{stats:?}");
    assert_eq!(running.hodi.store.outbox_len().await.expect("len"), 0, "completed");
    let app_id = &running.dev.as_ref().expect("dev").app_id;
    let data = running.hodi.store.app_data(app_id, &id).await.expect("app data");
    assert_eq!(data, Some(AppDataValue::Text("answered late".into())), "the late answer's update applied");
    // The late answer's message reached the phone exactly once.
    let mut texts = Vec::new();
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(500), phone_rx.recv()).await {
        if let Some(server_to_simulator_notification::Entry::SendMessage(m)) = n.entry {
            if let Some(outbound_message_body::Entry::Text(t)) = m.message.and_then(|m| m.body).and_then(|b| b.entry) {
                texts.push(t);
            }
        }
    }
    assert_eq!(texts.iter().filter(|t| t.as_str() == "re late").count(), 1, "{texts:?}");
}

#[tokio::test]
async fn an_answer_later_than_the_retry_is_a_counted_redelivery_with_the_same_id() {
    let (running, _dir) = start_with(|c| c.notify.reply_timeout_ms = 300).await;
    let (tx, mut rx) = mpsc::channel(100);
    let app = App { seen: tx, delay: |_| Duration::from_millis(1_600), answer: update_and_sms };
    let _app = connect_with(&running, dev_meta(&running), Arc::new(app)).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    activity(&commands, "+254722000101", "slow").await;
    let seen = gather(&mut rx, Duration::from_secs(3)).await;
    let slow: Vec<&Seen> = seen.iter().filter(|s| s.1 == "slow").collect();
    assert!(slow.len() >= 2, "no answer by the retry: sent again: {seen:?}");
    assert!(slow.iter().all(|s| s.0 == slow[0].0), "a redelivery carries the same id: {slow:?}");
    assert!(running.hodi.notify_stats.redelivered.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn an_answer_handing_back_the_app_data_it_was_sent_does_not_undo_a_newer_update() {
    let (running, _dir) = start_with(|_| {}).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    let id = customer_id(&commands, "+254722000102").await;
    let set = Cmd::UpdateCustomerAppData(UpdateCustomerAppDataCommand {
        customer: Some(update_customer_app_data_command::Customer::CustomerId(id.clone())),
        update: Some(text("old")),
    });
    assert!(matches!(command(&commands, set).await, Reply::UpdateCustomerAppData(r) if r.status));
    // Both go out together (the window), carrying "old". "set" answers first with "new"; "echo"
    // answers later handing back "old", as the Elarian SDK does for a handler that sets nothing.
    activity(&commands, "+254722000102", "set").await;
    activity(&commands, "+254722000102", "echo").await;
    let (tx, mut rx) = mpsc::channel(100);
    let app = App {
        seen: tx,
        delay: |key| Duration::from_millis(if key == "set" { 50 } else { 600 }),
        answer: |key, sent| ServerToAppNotificationReply {
            data_update: Some(AppDataUpdate { data: if key == "set" { Some(text("new")) } else { sent } }),
            message: None,
        },
    };
    let started = Instant::now();
    let _app = connect_with(&running, dev_meta(&running), Arc::new(app)).await;
    let seen = gather(&mut rx, Duration::from_millis(1_500)).await;
    assert_eq!(seen.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), vec!["set", "echo"], "{seen:?}");
    assert!(seen.iter().all(|s| s.2 == Some(text("old"))), "both carried the old value: {seen:?}");
    while running.hodi.store.outbox_len().await.expect("len") > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "both answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app_id = &running.dev.as_ref().expect("dev").app_id;
    let data = running.hodi.store.app_data(app_id, &id).await.expect("app data");
    assert_eq!(data, Some(AppDataValue::Text("new".into())), "the echo did not overwrite the update");
}
