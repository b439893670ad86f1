//! Notifications to apps: the registry of sockets that can take them, and the dispatcher that
//! delivers the durable outbox.
//!
//! Owns: which app sockets receive notifications (non-simplex, non-simulator, or any app socket
//! that subscribed), delivery as a server-initiated REQUEST_RESPONSE or on a subscription's stream
//! ([`subscription`]; round robin over the app's sockets, the next socket on failure, a reply
//! timeout), per-customer order, retries with backoff, time to live, and applying
//! the reply (app-data update; outbound message recorded for messaging). Does not own why a
//! notification exists: producers queue them with [`crate::store::outbox::insert_many`] in the
//! transaction of the change they report, then call [`Hodi::outbox_changed`]'s `notify_one`.
//!
//! Delivery is at least once. Each notification carries its id in the request's metadata as JSON,
//! `{"notificationId":"ntf_…"}`, so a client can spot a duplicate (the Elarian SDK ignores it).

mod sockets;
pub mod subscription;

pub use sockets::{Sockets, Target, Via};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{Payload, RequestError};
use prost::Message;
use tracing::{debug, info, warn};

use crate::server::Hodi;
use crate::store::app_data::AppDataValue;
use crate::store::outbox::{Completion, OutboxRow};
use crate::wire::{
    data_map_value, DataMapValue, ServerToAppCustomerNotification, ServerToAppNotification,
    ServerToAppNotificationReply,
};

/// Notifications read from the outbox per look.
const BATCH: i64 = 512;
/// Deliveries awaiting answers at once, per app and in all.
const PER_APP: usize = 256;
const IN_FLIGHT: usize = 4096;
/// How long a delivery waits for a subscription to have credit before leaving the notification
/// queued for a later look (short: a slot held for a consumer out of credit is a slot idle).
const DEMAND_WAIT: Duration = Duration::from_millis(250);
/// Expired notifications are looked for this often.
const EXPIRY_EVERY: Duration = Duration::from_secs(10);

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no app socket is connected for app {0}")]
    NoSocket(String),
    /// Every socket is a subscription without credit: not an attempt, it stays queued as it was.
    #[error("every subscribed socket of app {0} is busy (no credit)")]
    NoDemand(String),
    #[error("every connected socket failed: {0}")]
    AllFailed(String),
    #[error("stored notification is unreadable: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Store(#[from] anyhow::Error),
}

pub fn wire_app_data(value: AppDataValue) -> DataMapValue {
    DataMapValue {
        value: Some(match value {
            AppDataValue::Text(t) => data_map_value::Value::StringVal(t),
            AppDataValue::Bytes(b) => data_map_value::Value::BytesVal(b),
        }),
    }
}

pub fn stored_app_data(value: &DataMapValue) -> Option<AppDataValue> {
    match value.value.as_ref()? {
        data_map_value::Value::StringVal(s) => Some(AppDataValue::Text(s.clone())),
        data_map_value::Value::BytesVal(b) => Some(AppDataValue::Bytes(b.clone())),
    }
}

pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Sends one customer notification to one of the app's sockets; returns the reply.
///
/// `demand_wait` bounds the wait for a subscribed socket's credit: short for the outbox (the
/// notification stays queued), the reply timeout for live sessions (a USSD dial cannot wait for
/// a later pass).
pub async fn send(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    notification_id: &str,
    notification: ServerToAppCustomerNotification,
    demand_wait: Duration,
) -> Result<ServerToAppNotificationReply, DeliveryError> {
    let envelope =
        ServerToAppNotification { entry: Some(crate::wire::server_to_app_notification::Entry::Customer(notification)) };
    send_envelope(hodi, org_id, app_id, notification_id, envelope, demand_wait).await
}

/// Sends one notification (customer or purse) to one of the app's sockets; returns the reply.
async fn send_envelope(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    notification_id: &str,
    envelope: ServerToAppNotification,
    demand_wait: Duration,
) -> Result<ServerToAppNotificationReply, DeliveryError> {
    let candidates = hodi.sockets.candidates(org_id, app_id);
    if candidates.is_empty() {
        return Err(DeliveryError::NoSocket(app_id.to_string()));
    }
    let data = Bytes::from(envelope.encode_to_vec());
    let metadata = Bytes::from(format!("{{\"notificationId\":\"{notification_id}\"}}"));
    let timeout = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    let mut failures = Vec::new();
    let mut busy = 0;
    for target in &candidates {
        let session = &target.session;
        let payload = Payload { metadata: Some(metadata.clone()), data: data.clone() };
        let reply = match &target.via {
            Via::Request => match request(session, payload, timeout).await {
                Ok(p) => p,
                Err(why) => {
                    failures.push(format!("{}: {why}", session.connection_id));
                    continue;
                }
            },
            Via::Stream(sub) => match sub.deliver(notification_id, payload, timeout.min(demand_wait), timeout).await {
                Ok(reply) => {
                    debug!(connection_id = %session.connection_id, notification_id, "notification delivered on a subscription");
                    return Ok(reply);
                }
                Err(subscription::Refused::NoDemand) => {
                    busy += 1;
                    continue;
                }
                Err(why) => {
                    failures.push(format!("{}: subscription {why:?}", session.connection_id));
                    continue;
                }
            },
        };
        debug!(connection_id = %session.connection_id, notification_id, "notification delivered");
        return Ok(ServerToAppNotificationReply::decode(reply.data).unwrap_or_else(|e| {
            // Delivered: the app saw it. An unreadable reply changes nothing, but say so.
            warn!(connection_id = %session.connection_id, error = %e, "notification reply is not a ServerToAppNotificationReply");
            ServerToAppNotificationReply::default()
        }));
    }
    if failures.is_empty() && busy > 0 {
        return Err(DeliveryError::NoDemand(app_id.to_string()));
    }
    Err(DeliveryError::AllFailed(failures.join("; ")))
}

/// One server-initiated REQUEST_RESPONSE with the reply timeout; the failure described.
async fn request(session: &crate::session::Session, payload: Payload, timeout: Duration) -> Result<Payload, String> {
    match tokio::time::timeout(timeout, session.requester.request_response(payload)).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(RequestError::Closed(why))) => Err(format!("closed ({why})")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no reply within {} ms", timeout.as_millis())),
    }
}

/// Offers a notification to every simulator socket of the org (the customer's side); true when
/// at least one acknowledged it within the reply timeout.
pub async fn offer_to_simulators(
    hodi: &Hodi,
    org_id: &str,
    notification: &crate::wire::ServerToSimulatorNotification,
) -> bool {
    offer_to(hodi, &hodi.simulators.all_in_org(org_id), notification).await
}

/// Like [`offer_to_simulators`], to sockets the caller looked up once (bulk sends).
pub async fn offer_to(
    hodi: &Hodi,
    sockets: &[Arc<crate::session::Session>],
    notification: &crate::wire::ServerToSimulatorNotification,
) -> bool {
    let data = Bytes::from(notification.encode_to_vec());
    let timeout = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    let mut acknowledged = false;
    for socket in sockets {
        match tokio::time::timeout(timeout, socket.requester.request_response(Payload::new(data.clone()))).await {
            Ok(Ok(_)) => acknowledged = true,
            Ok(Err(e)) => debug!(connection_id = %socket.connection_id, error = %e, "simulator refused a notification"),
            Err(_) => debug!(connection_id = %socket.connection_id, "simulator did not acknowledge in time"),
        }
    }
    acknowledged
}

/// Sends a notification now, outside the outbox (live USSD and voice sessions cannot wait), and
/// applies the reply's app-data update. The caller handles the reply's message.
pub async fn deliver_now(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    customer_id: &str,
    notification_id: &str,
    mut notification: ServerToAppCustomerNotification,
) -> Result<ServerToAppNotificationReply, DeliveryError> {
    notification.org_id = org_id.to_string();
    notification.app_id = app_id.to_string();
    notification.customer_id = customer_id.to_string();
    notification.created_at = Some(timestamp(crate::store::now_ms()));
    notification.app_data = hodi.store.app_data(app_id, customer_id).await?.map(wire_app_data);
    let wait = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    let reply = send(hodi, org_id, app_id, notification_id, notification, wait).await?;
    if let Some(value) = reply.data_update.as_ref().and_then(|u| u.data.as_ref()).and_then(stored_app_data) {
        hodi.store.force_set_app_data(app_id, customer_id, &value).await?;
    }
    Ok(reply)
}

/// Where a reply to this notification goes: the channel it came in on, if it has one.
fn reply_channel(
    notification: &ServerToAppCustomerNotification,
) -> Option<(crate::wire::MessagingChannelNumber, crate::wire::CustomerNumber)> {
    use crate::wire::server_to_app_customer_notification::Entry;
    match notification.entry.as_ref()? {
        Entry::ReceivedMessage(m) => Some((m.channel_number.clone()?, m.customer_number.clone()?)),
        Entry::MessagingSessionStarted(m) => Some((m.channel_number.clone()?, m.customer_number.clone()?)),
        Entry::MessagingSessionRenewed(m) => Some((m.channel_number.clone()?, m.customer_number.clone()?)),
        Entry::MessagingConsentUpdate(m) => Some((m.channel_number.clone()?, m.customer_number.clone()?)),
        Entry::SentMessageReaction(m) => Some((m.channel_number.clone()?, m.customer_number.clone()?)),
        _ => None,
    }
}

/// Delivers one outbox row with the app data read for its pass; on success, what to apply.
async fn deliver(hodi: &Hodi, row: &OutboxRow, app_data: Option<AppDataValue>) -> Result<Completion, DeliveryError> {
    if row.purse {
        return deliver_purse(hodi, row).await;
    }
    let mut notification = ServerToAppCustomerNotification::decode(row.entry.as_slice())
        .map_err(|e| DeliveryError::Corrupt(e.to_string()))?;
    let reply_to = reply_channel(&notification);
    notification.org_id = row.org_id.clone();
    notification.app_id = row.app_id.clone();
    notification.customer_id = row.customer_id.clone();
    notification.created_at = Some(timestamp(row.created_at));
    notification.app_data = app_data.map(wire_app_data);
    let reply = send(hodi, &row.org_id, &row.app_id, &row.id, notification, DEMAND_WAIT).await?;
    Ok(Completion {
        seq: row.seq,
        notification_id: row.id.clone(),
        org_id: row.org_id.clone(),
        app_id: row.app_id.clone(),
        customer_id: row.customer_id.clone(),
        app_data: reply.data_update.as_ref().and_then(|u| u.data.as_ref()).and_then(stored_app_data),
        message: reply.message,
        reply_to,
    })
}

/// Delivers a purse notification: no customer, no app data; the reply is only an acknowledgement.
async fn deliver_purse(hodi: &Hodi, row: &OutboxRow) -> Result<Completion, DeliveryError> {
    let mut notification = crate::wire::ServerToAppPurseNotification::decode(row.entry.as_slice())
        .map_err(|e| DeliveryError::Corrupt(e.to_string()))?;
    notification.org_id = row.org_id.clone();
    notification.app_id = row.app_id.clone();
    notification.purse_id = row.customer_id.clone();
    notification.created_at = Some(timestamp(row.created_at));
    let envelope =
        ServerToAppNotification { entry: Some(crate::wire::server_to_app_notification::Entry::Purse(notification)) };
    send_envelope(hodi, &row.org_id, &row.app_id, &row.id, envelope, DEMAND_WAIT).await?;
    Ok(Completion {
        seq: row.seq,
        notification_id: row.id.clone(),
        org_id: row.org_id.clone(),
        app_id: row.app_id.clone(),
        customer_id: row.customer_id.clone(),
        app_data: None,
        message: None,
        reply_to: None,
    })
}

fn backoff_ms(attempts: i64) -> i64 {
    (1000i64 << attempts.clamp(0, 6)).min(60_000)
}

/// What one delivery came to, sent back to the dispatcher loop.
struct Settled {
    row: OutboxRow,
    result: Result<Completion, DeliveryError>,
}

/// Notifications in flight (sent, answer awaited): per customer at most one (order), per app at
/// most [`PER_APP`] (one slow app cannot take every slot), at most [`IN_FLIGHT`] in all.
#[derive(Default)]
struct InFlight {
    customers: std::collections::HashSet<(String, String)>,
    per_app: std::collections::HashMap<String, usize>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.customers.len()
    }

    fn app_full(&self, app_id: &str) -> bool {
        self.per_app.get(app_id).copied().unwrap_or(0) >= PER_APP
    }

    /// Takes a slot for `row`; false when its customer already has one in flight or its app is full.
    fn take(&mut self, row: &OutboxRow) -> bool {
        if self.app_full(&row.app_id) || !self.customers.insert((row.app_id.clone(), row.customer_id.clone())) {
            return false;
        }
        *self.per_app.entry(row.app_id.clone()).or_default() += 1;
        true
    }

    fn release(&mut self, row: &OutboxRow) {
        self.customers.remove(&(row.app_id.clone(), row.customer_id.clone()));
        if let Some(n) = self.per_app.get_mut(&row.app_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_app.remove(&row.app_id);
            }
        }
    }
}

/// Runs the dispatcher until `shutdown`.
///
/// Deliveries are pipelined: each runs in its own task and reports back; the loop keeps reading
/// the outbox while answers are awaited, so an app that answers slowly (or a subscription out of
/// credit) holds up only its own notifications, never other apps' or other customers'.
pub async fn run(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    let poll = Duration::from_millis(hodi.config.notify.outbox_poll_ms.max(10));
    let mut last_expiry = tokio::time::Instant::now() - EXPIRY_EVERY;
    let (settled_tx, mut settled_rx) = tokio::sync::mpsc::channel::<Settled>(IN_FLIGHT);
    let mut in_flight = InFlight::default();
    loop {
        if last_expiry.elapsed() >= EXPIRY_EVERY {
            last_expiry = tokio::time::Instant::now();
            expire(&hodi).await;
        }
        if in_flight.len() < IN_FLIGHT {
            launch(&hodi, &mut in_flight, &settled_tx).await;
        }
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = settled_rx.recv() => s,
            _ = tokio::time::sleep(poll) => None,
            _ = hodi.outbox_changed.notified() => None,
            _ = hodi.sockets.connected.notified() => None,
        };
        let mut batch: Vec<Settled> = first.into_iter().collect();
        while let Ok(more) = settled_rx.try_recv() {
            batch.push(more);
        }
        if !batch.is_empty() {
            settle(&hodi, &mut in_flight, batch).await;
        }
    }
}

async fn expire(hodi: &Hodi) {
    match hodi.store.outbox_expire().await {
        Ok(expired) => {
            for row in expired {
                warn!(notification_id = %row.id, app_id = %row.app_id, customer_id = %row.customer_id,
                      attempts = row.attempts, "notification expired undelivered");
            }
        }
        Err(e) => warn!(error = %e, "expiring notifications"),
    }
}

/// Reads the heads of the outbox for apps that can take more and starts a delivery for each
/// customer that has nothing in flight.
async fn launch(hodi: &Arc<Hodi>, in_flight: &mut InFlight, settled: &tokio::sync::mpsc::Sender<Settled>) {
    let apps: Vec<String> = hodi.sockets.connected_apps().into_iter().filter(|app| !in_flight.app_full(app)).collect();
    if apps.is_empty() {
        return;
    }
    let heads = match hodi.store.outbox_heads(&apps, BATCH).await {
        Ok(h) => h,
        Err(e) => return warn!(error = %e, "reading the outbox"),
    };
    let room = IN_FLIGHT.saturating_sub(in_flight.len());
    let fresh: Vec<OutboxRow> = heads.into_iter().filter(|row| in_flight.take(row)).take(room).collect();
    if fresh.is_empty() {
        return;
    }
    let pairs: Vec<(String, String)> = fresh.iter().map(|r| (r.app_id.clone(), r.customer_id.clone())).collect();
    let mut app_data = match hodi.store.app_data_many(&pairs).await {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "reading app data for notifications");
            fresh.iter().for_each(|row| in_flight.release(row));
            return;
        }
    };
    for row in fresh {
        let hodi = hodi.clone();
        let data = app_data.remove(&(row.app_id.clone(), row.customer_id.clone()));
        let settled = settled.clone();
        tokio::spawn(async move {
            let result = deliver(&hodi, &row, data).await;
            // The loop holds the receiver until shutdown; a send after that has nobody to tell.
            let _ = settled.send(Settled { row, result }).await;
        });
    }
}

/// Records what deliveries came to: answered ones completed in one transaction (then their
/// replies' messages sent), failures scheduled for retry, out-of-credit ones left as they were.
async fn settle(hodi: &Arc<Hodi>, in_flight: &mut InFlight, batch: Vec<Settled>) {
    let mut done = Vec::new();
    for Settled { row, result } in batch {
        in_flight.release(&row);
        match result {
            Ok(c) => done.push(c),
            // The app is connected but its consumer is behind: untouched, no attempt counted.
            Err(DeliveryError::NoDemand(_)) => {}
            Err(e) => {
                let retry = crate::store::now_ms() + backoff_ms(row.attempts);
                info!(notification_id = %row.id, attempts = row.attempts + 1, error = %e, "notification not delivered; will retry");
                if let Err(e) = hodi.store.outbox_failed(row.seq, &e.to_string(), retry).await {
                    warn!(error = %e, "recording a failed delivery");
                }
            }
        }
    }
    match hodi.store.outbox_complete(&done).await {
        Ok(()) => {
            for c in done.into_iter().filter(|c| c.message.is_some()) {
                let hodi = hodi.clone();
                tokio::spawn(async move { crate::messaging::outbound::reply(&hodi, c).await });
            }
        }
        // Delivered but not recorded: they will be delivered again (at least once).
        Err(e) => warn!(error = %e, "recording delivered notifications"),
    }
}
