//! Notifications to apps: the registry of sockets that can take them, and the dispatcher that
//! delivers the durable outbox.
//!
//! Owns: which app sockets receive notifications (non-simplex, non-simulator, or any app socket
//! that subscribed), delivery as a server-initiated REQUEST_RESPONSE or on a subscription's stream
//! ([`subscription`]; round robin over the app's sockets, the next socket on failure, a reply
//! timeout), per-customer order, retries with backoff, time to live, and applying
//! the reply (app-data update; outbound message recorded for messaging). Does not own why a
//! notification exists: producers queue them with [`crate::store::outbox::insert_many`] in the
//! transaction of the change they report; the commit wakes the dispatcher
//! ([`crate::store::Store::outbox_changed`]).
//!
//! Delivery is at least once. Each notification carries its id in the request's metadata as JSON,
//! `{"notificationId":"ntf_…"}`, so a client can spot a duplicate (the Elarian SDK ignores it).

mod dispatcher;
pub mod leases;
pub mod recent;
pub mod relay;
pub mod sockets;
pub mod stats;
pub mod subscription;

pub use dispatcher::{run, Replies};
pub use sockets::{Sockets, Target, Via};
pub use stats::Stats;

use crate::convert::{stored_app_data, timestamp, wire_app_data};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{Payload, RequestError};
use prost::Message;
use tracing::{debug, warn};

use crate::context::Hodi;
use crate::store::app_data::AppDataValue;
use crate::store::outbox::OutboxRow;
use crate::wire::{ServerToAppCustomerNotification, ServerToAppNotification, ServerToAppNotificationReply};

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
    #[error("store: {0}")]
    Store(#[from] anyhow::Error),
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
    let metadata = id_metadata(notification_id);
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
async fn request(session: &crate::socket::Session, payload: Payload, timeout: Duration) -> Result<Payload, String> {
    match tokio::time::timeout(timeout, session.requester.request_response(payload)).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(RequestError::Closed(why))) => Err(format!("closed ({why})")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no reply within {} ms", timeout.as_millis())),
    }
}

/// Offers a notification to every simulator socket of the org (the customer's side), on this node
/// and, with several nodes, on the others holding some ([`simulators_anywhere`]); true when at
/// least one acknowledged it within the reply timeout.
pub async fn offer_to_simulators(
    hodi: &Hodi,
    org_id: &str,
    notification: &crate::wire::ServerToSimulatorNotification,
) -> bool {
    let local = hodi.simulators.all_in_org(org_id);
    let here = offer_to(hodi, &local, notification);
    let Some(relay) = &hodi.relay else { return here.await };
    let peers = relay.simulator_nodes(org_id);
    if peers.is_empty() {
        return here.await;
    }
    let wait = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    let encoded = &notification.encode_to_vec();
    let elsewhere = futures_util::future::join_all(peers.iter().map(|peer| async move {
        match relay.offer(peer, org_id, encoded, wait).await {
            Ok(taken) => taken,
            Err(why) => {
                debug!(node = %peer, %why, "offering to simulators on another node");
                false
            }
        }
    }));
    let (here, elsewhere) = tokio::join!(here, elsewhere);
    here || elsewhere.into_iter().any(|taken| taken)
}

/// Whether the org has a simulator socket on this node or (several nodes) on another, as of the
/// other nodes' last heartbeats.
pub fn simulators_anywhere(hodi: &Hodi, org_id: &str) -> bool {
    !hodi.simulators.all_in_org(org_id).is_empty()
        || hodi.relay.as_ref().is_some_and(|r| !r.simulator_nodes(org_id).is_empty())
}

/// Like [`offer_to_simulators`], to sockets the caller looked up once (bulk sends).
pub async fn offer_to(
    hodi: &Hodi,
    sockets: &[Arc<crate::socket::Session>],
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
    let reply = match &hodi.relay {
        // No socket of the app here: the node delivering the app may hold one (several nodes).
        Some(relay) if !hodi.sockets.holds(org_id, app_id) => {
            let Some(holder) = hodi.store.delivery_holder(app_id, crate::store::now_ms()).await? else {
                return Err(DeliveryError::NoSocket(app_id.to_string()));
            };
            if holder == relay.node() {
                return Err(DeliveryError::NoSocket(app_id.to_string()));
            }
            let encoded = notification.encode_to_vec();
            let reply = relay
                .ask(&holder, org_id, app_id, notification_id, &encoded, wait)
                .await
                .map_err(|why| DeliveryError::AllFailed(format!("through node {holder}: {why}")))?;
            ServerToAppNotificationReply::decode(reply.as_slice()).unwrap_or_else(|e| {
                warn!(node = %holder, error = %e, "a reply relayed by another node is not a ServerToAppNotificationReply");
                ServerToAppNotificationReply::default()
            })
        }
        _ => send(hodi, org_id, app_id, notification_id, notification, wait).await?,
    };
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

/// A notification ready for the wire, and where a reply's message goes.
pub(crate) struct Encoded {
    pub payload: Payload,
    pub reply_to: Option<(crate::wire::MessagingChannelNumber, crate::wire::CustomerNumber)>,
    /// What it tells the app, for the console ([`recent`]).
    pub kind: &'static str,
}

/// Builds the wire form of one outbox row with the app data read for it: the envelope as data,
/// the notification id as metadata.
pub(crate) fn encode(row: &OutboxRow, app_data: Option<AppDataValue>) -> Result<Encoded, String> {
    use crate::wire::server_to_app_notification::Entry;
    let corrupt = |e: prost::DecodeError| format!("stored notification is unreadable: {e}");
    let (entry, reply_to, kind) = if row.purse {
        let mut n = crate::wire::ServerToAppPurseNotification::decode(row.entry.as_slice()).map_err(corrupt)?;
        n.org_id = row.org_id.clone();
        n.app_id = row.app_id.clone();
        n.purse_id = row.customer_id.clone();
        n.created_at = Some(timestamp(row.created_at));
        (Entry::Purse(n), None, "purse")
    } else {
        let mut n = ServerToAppCustomerNotification::decode(row.entry.as_slice()).map_err(corrupt)?;
        let reply_to = reply_channel(&n);
        let kind = kind(&n);
        n.org_id = row.org_id.clone();
        n.app_id = row.app_id.clone();
        n.customer_id = row.customer_id.clone();
        n.created_at = Some(timestamp(row.created_at));
        n.app_data = app_data.map(wire_app_data);
        (Entry::Customer(n), reply_to, kind)
    };
    let data = Bytes::from(ServerToAppNotification { entry: Some(entry) }.encode_to_vec());
    Ok(Encoded { payload: Payload { metadata: Some(id_metadata(&row.id)), data }, reply_to, kind })
}

/// A customer notification's kind, by the wire's name for it.
fn kind(n: &ServerToAppCustomerNotification) -> &'static str {
    use crate::wire::server_to_app_customer_notification::Entry;
    match &n.entry {
        Some(Entry::Reminder(_)) => "reminder",
        Some(Entry::MessagingSessionStarted(_)) => "messaging_session_started",
        Some(Entry::MessagingSessionRenewed(_)) => "messaging_session_renewed",
        Some(Entry::MessagingSessionEnded(_)) => "messaging_session_ended",
        Some(Entry::MessagingConsentUpdate(_)) => "messaging_consent_update",
        Some(Entry::ReceivedMessage(_)) => "received_message",
        Some(Entry::MessageStatus(_)) => "message_status",
        Some(Entry::SentMessageReaction(_)) => "sent_message_reaction",
        Some(Entry::ReceivedPayment(_)) => "received_payment",
        Some(Entry::PaymentStatus(_)) => "payment_status",
        Some(Entry::CustomerActivity(_)) => "customer_activity",
        None => "other",
    }
}

/// `{"notificationId":"ntf_…"}`: how a client tells a notification sent again from a new one.
fn id_metadata(notification_id: &str) -> Bytes {
    Bytes::from(format!("{{\"notificationId\":\"{notification_id}\"}}"))
}
