//! The reminder scheduler: moves due reminders into the notification outbox.
//!
//! Owns timing only. Reminders live in the store, ordered by the `reminders_due` index, so pending
//! reminders cost no memory here. The loop takes due reminders in batches and, in one transaction
//! per batch, re-arms (interval) or deletes (one-shot) each and queues its `reminder` notification;
//! then it sleeps until the earliest `remind_at`, or until a reminder is added. Delivery, retries and
//! waiting for an app are the outbox's business ([`crate::notify`]), so a reminder fires once even
//! when no app is connected, and is delivered when one connects.

pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tracing::warn;

use crate::context::Hodi;
use crate::store::now_ms;
use crate::store::reminders::StoredReminder;
use crate::wire::server_to_app_customer_notification::Entry;
use crate::wire::{
    CustomerIndex, CustomerReminder, IndexMapping, ReminderNotification, ServerToAppCustomerNotification,
};

/// Reminders fired per transaction.
pub const BATCH: i64 = 2000;
/// Longest sleep when nothing is due soon (a reminder added meanwhile wakes us anyway).
const MAX_SLEEP_MS: i64 = 1000;

/// The notification a reminder becomes.
pub fn notification(r: &StoredReminder) -> ServerToAppCustomerNotification {
    ServerToAppCustomerNotification {
        entry: Some(Entry::Reminder(ReminderNotification {
            reminder: Some(CustomerReminder {
                key: r.key.clone(),
                remind_at: Some(crate::convert::timestamp(r.remind_at)),
                interval: r.interval_secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                // The SDK reads `payload.value` unconditionally: always send one.
                payload: Some(r.payload.clone().unwrap_or_default()),
            }),
            tag: r.tag.as_ref().map(|(key, value)| CustomerIndex {
                mapping: Some(IndexMapping { key: key.clone(), value: Some(value.clone()) }),
                expires_at: None,
            }),
            work_id: r.work_id.clone(),
        })),
        ..Default::default()
    }
}

/// Fires what is due now (a batch at most); returns how many fired.
pub async fn fire_due(hodi: &Hodi) -> anyhow::Result<usize> {
    let now = now_ms();
    let fired = hodi
        .store
        .fire_due_reminders(now, BATCH, |r| {
            crate::metrics::reminder_late((now - r.remind_at).max(0));
            notification(r).encode_to_vec()
        })
        .await?;
    if fired > 0 {
        metrics::counter!(crate::metrics::REMINDERS_FIRED).increment(fired as u64);
        tracing::debug!(fired, "reminders fired");
    }
    Ok(fired)
}

pub async fn run(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        let due = match fire_due(&hodi).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "firing reminders");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(MAX_SLEEP_MS as u64)) => continue,
                }
            }
        };
        if due as i64 == BATCH {
            continue; // more are due right now
        }
        let wait = match hodi.store.next_reminder_at().await {
            Ok(Some(at)) => (at - now_ms()).clamp(0, MAX_SLEEP_MS),
            Ok(None) => MAX_SLEEP_MS,
            Err(e) => {
                warn!(error = %e, "reading the next reminder time");
                MAX_SLEEP_MS
            }
        };
        if wait == 0 {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = hodi.store.reminders_changed().notified() => {}
        }
    }
}
