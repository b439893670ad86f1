//! A reminder with an interval fires again and again, each time re-armed one interval on, until
//! it is cancelled. (The re-arm SQL had no test.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::inproc::{command, connect, connect_with, dev_meta, start_with};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Responder};
use prost::Message;
use tokio::sync::mpsc;

/// Forwards each reminder notification's key and when it came; answers at once.
struct Reminders(mpsc::Sender<(String, Instant)>);

impl Responder for Reminders {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let tx = self.0.clone();
        Box::pin(async move {
            let n = ServerToAppNotification::decode(payload.data).map_err(|e| RemoteError::invalid(e.to_string()))?;
            if let Some(server_to_app_notification::Entry::Customer(c)) = n.entry {
                if let Some(server_to_app_customer_notification::Entry::Reminder(r)) = c.entry {
                    let _ = tx.send((r.reminder.map(|r| r.key).unwrap_or_default(), Instant::now())).await;
                }
            }
            Ok(Payload::new(ServerToAppNotificationReply::default().encode_to_vec()))
        })
    }
}

fn customer() -> CustomerNumber {
    CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: "+254711082200".into(),
        partition: None,
    }
}

#[tokio::test]
async fn a_repeating_reminder_fires_every_interval_until_cancelled() {
    let (running, _dir) = start_with(|_| {}).await;
    let (tx, mut rx) = mpsc::channel(100);
    let _app = connect_with(&running, dev_meta(&running), Arc::new(Reminders(tx))).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let add = Cmd::AddCustomerReminder(AddCustomerReminderCommand {
        customer: Some(add_customer_reminder_command::Customer::CustomerNumber(customer())),
        reminder: Some(CustomerReminder {
            key: "tick".into(),
            remind_at: Some(prost_types::Timestamp { seconds: now + 1, nanos: 0 }),
            interval: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
            payload: Some("again".into()),
        }),
    });
    let Reply::UpdateCustomerAppData(r) = command(&commands, add).await else { panic!("reply type") };
    assert!(r.status, "{r:?}");
    let mut fired = Vec::new();
    while fired.len() < 3 {
        let (key, at) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("the reminder fires again within 15 s")
            .expect("open");
        assert_eq!(key, "tick");
        fired.push(at);
    }
    for pair in fired.windows(2) {
        let gap = pair[1] - pair[0];
        // The scheduler's granularity is a second; the gap is the 2 s interval, give or take it.
        assert!(gap >= Duration::from_millis(900) && gap <= Duration::from_secs(4), "fired {gap:?} apart");
    }
    assert_eq!(running.hodi.store.count_reminders().await.expect("count"), 1, "one reminder, re-armed, not copies");
    // The operator sees how late they fired: each within the scheduler's second of its time.
    let http = running.bound.http.expect("the operator's listener").to_string();
    let (_, metrics) = common::http_get(&http, "/metrics").await;
    let count = common::metric_sample(&metrics, "hodi_reminder_lateness_seconds_count", &[]).unwrap_or(0.0);
    let within_2s = common::metric_sample(&metrics, "hodi_reminder_lateness_seconds_bucket", &["le=\"2\""]);
    assert!(count >= 3.0 && within_2s == Some(count), "{metrics}");
    let cancel = Cmd::CancelCustomerReminder(CancelCustomerReminderCommand {
        customer: Some(cancel_customer_reminder_command::Customer::CustomerNumber(customer())),
        key: "tick".into(),
    });
    let Reply::UpdateCustomerAppData(r) = command(&commands, cancel).await else { panic!("reply type") };
    assert!(r.status, "{r:?}");
    // Drain what was already on its way, then nothing more comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    assert!(tokio::time::timeout(Duration::from_secs(4), rx.recv()).await.is_err(), "fired after it was cancelled");
    assert_eq!(running.hodi.store.count_reminders().await.expect("count"), 0);
}
