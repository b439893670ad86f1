//! The reminder scheduler: fires due reminders as `reminder` notifications.
//!
//! Owns timing only. Reminders live in the store (so they survive restarts); this loop wakes on a
//! short poll or when a reminder is added or an app connects, takes due reminders of apps that
//! have a socket, delivers each, then re-arms (interval) or deletes (one-shot) it. A reminder that
//! could not be delivered stays due and is tried again on the next pass, so nothing is lost while
//! no app is connected.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{debug, warn};

use crate::notify::deliver_to_customer_app;
use crate::server::Hodi;
use crate::store::now_ms;
use crate::store::reminders::StoredReminder;
use crate::wire::server_to_app_customer_notification::Entry;
use crate::wire::{CustomerReminder, ReminderNotification};

/// Reminders delivered at once (each waits for the app's reply).
const CONCURRENT_DELIVERIES: usize = 32;
const BATCH: i64 = 256;
/// Pause before retrying a reminder whose delivery failed.
const RETRY_AFTER_MS: i64 = 2_000;

pub async fn run(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    let poll = Duration::from_millis(hodi.config.notify.reminder_poll_ms.max(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(poll) => {}
            _ = hodi.reminders_changed.notified() => {}
            _ = hodi.sockets.connected.notified() => {}
        }
        let apps = hodi.sockets.connected_apps();
        if apps.is_empty() {
            continue;
        }
        let now = now_ms();
        let due = match hodi.store.due_reminders(now, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "reading due reminders");
                continue;
            }
        };
        let deliverable: Vec<StoredReminder> = due.into_iter().filter(|r| apps.contains(&r.app_id)).collect();
        futures_util::stream::iter(deliverable)
            .for_each_concurrent(CONCURRENT_DELIVERIES, |r| {
                let hodi = hodi.clone();
                async move { fire(&hodi, r).await }
            })
            .await;
    }
}

async fn fire(hodi: &Hodi, r: StoredReminder) {
    let entry = Entry::Reminder(ReminderNotification {
        reminder: Some(CustomerReminder {
            key: r.key.clone(),
            remind_at: Some(prost_types::Timestamp {
                seconds: r.remind_at / 1000,
                nanos: ((r.remind_at % 1000) * 1_000_000) as i32,
            }),
            interval: r.interval_secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            // The SDK reads `payload.value` unconditionally: always send one.
            payload: Some(r.payload.clone().unwrap_or_default()),
        }),
        tag: None,
        work_id: None,
    });
    match deliver_to_customer_app(hodi, &r.org_id, &r.app_id, &r.customer_id, entry).await {
        Ok(_) => {
            debug!(customer_id = %r.customer_id, key = %r.key, "reminder fired");
            if let Err(e) = hodi.store.reminder_fired(&r, now_ms()).await {
                warn!(error = %e, "re-arming reminder");
            }
        }
        Err(e) => {
            // Left due; tried again on the next pass. Back off a little so a broken app is not hammered.
            warn!(customer_id = %r.customer_id, key = %r.key, error = %e, "reminder not delivered; will retry");
            if let Err(e) = hodi.store.postpone_reminder_retry(&r, now_ms() + RETRY_AFTER_MS).await {
                warn!(error = %e, "postponing reminder");
            }
        }
    }
}
