//! Notifications: the subscription forwarder, the typed [`Event`]s, and answering each one.
//!
//! Backpressure end to end: the server sends on the subscription only while it has REQUEST_N
//! credit; credit is granted as the forwarder reads, and the forwarder reads only when the app has
//! taken the previous notification from [`Notifications`]. At most `notification_window + 2`
//! notifications are in this process at once ([`Notifications::in_flight`]); the rest wait in the
//! server's outbox.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hodi_rsocket::{Payload, Requester};
use hodi_wire as wire;
use prost::Message;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use wire::server_to_app_customer_notification::Entry as CustomerEntry;

use crate::client::{Elarian, Inner};
use crate::model::AppData;
use crate::{Customer, Error, Result};

/// Event names, as the SDK spec spells them (for [`Elarian::on`]).
pub const EVENTS: &[&str] = &[
    "reminder",
    "messagingSessionStarted",
    "messagingSessionRenewed",
    "messagingSessionEnded",
    "messagingConsentUpdate",
    "receivedSms",
    "receivedFbMessenger",
    "receivedTelegram",
    "receivedWhatsapp",
    "receivedEmail",
    "voiceCall",
    "ussdSession",
    "messageStatus",
    "sentMessageReaction",
    "receivedPayment",
    "paymentStatus",
    "walletPaymentStatus",
    "customerActivity",
];

/// A message from a customer (any channel).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub customer_number: Option<wire::CustomerNumber>,
    pub channel: Option<wire::MessagingChannelNumber>,
    pub parts: Vec<wire::InboundMessageBody>,
    pub session_id: Option<String>,
    pub in_reply_to: Option<String>,
}

impl ReceivedMessage {
    /// The first text part.
    pub fn text(&self) -> Option<&str> {
        self.parts.iter().find_map(|p| match &p.entry {
            Some(wire::inbound_message_body::Entry::Text(t)) => Some(t.as_str()),
            _ => None,
        })
    }

    /// The USSD input (empty on dial).
    pub fn ussd(&self) -> Option<&wire::UssdInputMessageBody> {
        self.parts.iter().find_map(|p| match &p.entry {
            Some(wire::inbound_message_body::Entry::Ussd(u)) => Some(u),
            _ => None,
        })
    }

    /// The voice call's state: status, digits pressed, hang-up cause.
    pub fn voice(&self) -> Option<&wire::VoiceCallInputMessageBody> {
        self.parts.iter().find_map(|p| match &p.entry {
            Some(wire::inbound_message_body::Entry::Voice(v)) => Some(v),
            _ => None,
        })
    }

    fn channel_kind(&self) -> wire::MessagingChannel {
        self.channel
            .as_ref()
            .and_then(|c| wire::MessagingChannel::try_from(c.channel).ok())
            .unwrap_or(wire::MessagingChannel::Unspecified)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Reminder(wire::ReminderNotification),
    MessagingSessionStarted(wire::MessagingSessionStartedNotification),
    MessagingSessionRenewed(wire::MessagingSessionRenewedNotification),
    MessagingSessionEnded(wire::MessagingSessionEndedNotification),
    MessagingConsentUpdate(wire::MessagingConsentUpdateNotification),
    /// `receivedSms`, `ussdSession`, `voiceCall`, `receivedWhatsapp`… by channel.
    ReceivedMessage(ReceivedMessage),
    MessageStatus(wire::MessageStatusNotification),
    SentMessageReaction(wire::SentMessageReactionNotification),
    ReceivedPayment(wire::ReceivedPaymentNotification),
    /// A customer's payment, or (with [`Notification::purse_id`]) a purse's.
    PaymentStatus(wire::PaymentStatusNotification),
    CustomerActivity(wire::CustomerActivityNotification),
    /// A notification this SDK version does not know (newer server).
    Unknown,
}

impl Event {
    /// The spec's event name.
    pub fn name(&self) -> &'static str {
        use wire::MessagingChannel as C;
        match self {
            Event::Reminder(_) => "reminder",
            Event::MessagingSessionStarted(_) => "messagingSessionStarted",
            Event::MessagingSessionRenewed(_) => "messagingSessionRenewed",
            Event::MessagingSessionEnded(_) => "messagingSessionEnded",
            Event::MessagingConsentUpdate(_) => "messagingConsentUpdate",
            Event::ReceivedMessage(m) => match m.channel_kind() {
                C::Voice => "voiceCall",
                C::Ussd => "ussdSession",
                C::FbMessenger => "receivedFbMessenger",
                C::Telegram => "receivedTelegram",
                C::Whatsapp => "receivedWhatsapp",
                C::Email => "receivedEmail",
                C::Sms | C::Unspecified => "receivedSms",
            },
            Event::MessageStatus(_) => "messageStatus",
            Event::SentMessageReaction(_) => "sentMessageReaction",
            Event::ReceivedPayment(_) => "receivedPayment",
            Event::PaymentStatus(_) => "paymentStatus",
            Event::CustomerActivity(_) => "customerActivity",
            Event::Unknown => "unknown",
        }
    }

    fn from_customer(entry: Option<CustomerEntry>) -> Event {
        match entry {
            Some(CustomerEntry::Reminder(n)) => Event::Reminder(n),
            Some(CustomerEntry::MessagingSessionStarted(n)) => Event::MessagingSessionStarted(n),
            Some(CustomerEntry::MessagingSessionRenewed(n)) => Event::MessagingSessionRenewed(n),
            Some(CustomerEntry::MessagingSessionEnded(n)) => Event::MessagingSessionEnded(n),
            Some(CustomerEntry::MessagingConsentUpdate(n)) => Event::MessagingConsentUpdate(n),
            Some(CustomerEntry::ReceivedMessage(n)) => Event::ReceivedMessage(ReceivedMessage {
                message_id: n.message_id,
                customer_number: n.customer_number,
                channel: n.channel_number,
                parts: n.parts,
                session_id: n.session_id,
                in_reply_to: n.in_reply_to,
            }),
            Some(CustomerEntry::MessageStatus(n)) => Event::MessageStatus(n),
            Some(CustomerEntry::SentMessageReaction(n)) => Event::SentMessageReaction(n),
            Some(CustomerEntry::ReceivedPayment(n)) => Event::ReceivedPayment(n),
            Some(CustomerEntry::PaymentStatus(n)) => Event::PaymentStatus(n),
            Some(CustomerEntry::CustomerActivity(n)) => Event::CustomerActivity(n),
            None => Event::Unknown,
        }
    }
}

/// What an app answers to a notification: an optional message to the customer on the channel the
/// notification came from (a USSD menu, voice actions, a chat reply), and optional new app data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub message: Option<wire::OutboundMessage>,
    pub app_data: Option<AppData>,
}

impl Reply {
    pub fn message(message: wire::OutboundMessage) -> Reply {
        Reply { message: Some(message), app_data: None }
    }

    pub fn with_app_data(mut self, data: impl Into<AppData>) -> Reply {
        self.app_data = Some(data.into());
        self
    }
}

/// How a notification's answer gets back to the server.
struct Replier {
    requester: Requester,
    id: String,
    in_flight: Arc<AtomicUsize>,
    answered: Arc<Answered>,
}

impl Replier {
    /// The answer's request, remembered in case the server sends the notification again.
    fn payload(&self, reply: &Reply) -> Payload {
        let payload = reply_payload(&self.id, reply);
        self.answered.remember(&self.id, &payload);
        payload
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.answered.settled(&self.id);
    }
}

/// Notifications with the app now, and the answers this client gave to its latest ones (at most
/// [`Answered::KEEP`]). Hodi sends a notification again (same id) when its answer did not arrive
/// in time; the app has it or had it already, so the client does not deliver it twice: a duplicate
/// of one the app still holds waits for that answer (the server takes it for either), a duplicate
/// of one answered gets the same answer again.
#[derive(Default)]
pub(crate) struct Answered {
    inner: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    with_app: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
    replies: std::collections::HashMap<String, Payload>,
}

/// What to do with a notification that just arrived.
enum Arrival {
    New,
    WithApp,
    Answered(Payload),
}

impl Answered {
    const KEEP: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arrived(&self, id: &str) -> Arrival {
        if id.is_empty() {
            return Arrival::New;
        }
        let mut seen = self.lock();
        if let Some(p) = seen.replies.get(id) {
            return Arrival::Answered(p.clone());
        }
        if !seen.with_app.insert(id.to_string()) {
            return Arrival::WithApp;
        }
        Arrival::New
    }

    fn remember(&self, id: &str, payload: &Payload) {
        if id.is_empty() {
            return;
        }
        let mut seen = self.lock();
        if seen.replies.insert(id.to_string(), payload.clone()).is_none() {
            seen.order.push_back(id.to_string());
            if seen.order.len() > Self::KEEP {
                if let Some(old) = seen.order.pop_front() {
                    seen.replies.remove(&old);
                }
            }
        }
    }

    fn settled(&self, id: &str) {
        self.lock().with_app.remove(id);
    }
}

/// Where a subscription's notifications go, shared by the client's connections.
pub(crate) struct Forwarding {
    pub tx: mpsc::Sender<Notification>,
    pub client: Arc<OnceLock<Weak<Inner>>>,
    pub in_flight: Arc<AtomicUsize>,
    pub answered: Arc<Answered>,
}

/// The request that answers notification `id`.
fn reply_payload(id: &str, reply: &Reply) -> Payload {
    let data = wire::ServerToAppNotificationReply {
        data_update: reply.app_data.as_ref().map(|d| wire::AppDataUpdate { data: Some(d.to_wire()) }),
        message: reply.message.clone(),
    };
    let metadata = serde_json::json!({ "replyTo": id }).to_string();
    Payload::with_metadata(Bytes::from(data.encode_to_vec()), Bytes::from(metadata))
}

/// One notification. Answer it with [`Notification::reply`]; dropping it answers empty (so the
/// server does not send it again).
pub struct Notification {
    /// Hodi's id (`ntf_…`); a notification re-sent after a missed reply keeps it.
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    /// Empty for purse notifications.
    pub customer_id: String,
    /// Set for purse notifications.
    pub purse_id: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The customer's app data when the notification was sent.
    pub app_data: Option<AppData>,
    pub event: Event,
    replier: Option<Replier>,
    client: Weak<Inner>,
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("purse_id", &self.purse_id)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl Notification {
    /// The spec's event name (`reminder`, `ussdSession`…).
    pub fn name(&self) -> &'static str {
        self.event.name()
    }

    /// The customer this is about, ready for commands (None for purse notifications or once the
    /// client is gone).
    pub fn customer(&self) -> Option<Customer> {
        if self.customer_id.is_empty() {
            return None;
        }
        let inner = self.client.upgrade()?;
        Some(Elarian { inner }.customer_by_id(self.customer_id.clone()))
    }

    /// Answers the notification; returns once the server has taken the answer. An error means
    /// the server did not take it (e.g. the answer came after its reply timeout): the notification
    /// will be delivered again.
    pub async fn reply(mut self, reply: Reply) -> Result<()> {
        let Some(replier) = self.replier.take() else { return Ok(()) };
        let payload = replier.payload(&reply);
        replier.requester.request_response(payload).await?;
        Ok(())
    }

    /// Answers with nothing (acknowledges).
    pub async fn ack(self) -> Result<()> {
        self.reply(Reply::default()).await
    }
}

impl Drop for Notification {
    fn drop(&mut self) {
        if let Some(replier) = self.replier.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let payload = replier.payload(&Reply::default());
                    if let Err(e) = replier.requester.request_response(payload).await {
                        debug!(error = %e, "acknowledging a dropped notification");
                    }
                });
            }
        }
    }
}

/// The app's notification stream (see [`Elarian::notifications`]).
pub struct Notifications {
    rx: mpsc::Receiver<Notification>,
    in_flight: Arc<AtomicUsize>,
}

impl Notifications {
    pub(crate) fn new(rx: mpsc::Receiver<Notification>, in_flight: Arc<AtomicUsize>) -> Notifications {
        Notifications { rx, in_flight }
    }

    /// Notifications this client has received from the server and not yet answered: at most
    /// `notification_window + 2` plus those the app is holding. The rest wait server-side.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The next notification, or None once the client is gone.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Notification> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }
}

impl Stream for Notifications {
    type Item = Notification;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        self.rx.poll_recv(cx)
    }
}

/// Opens the subscription on a new connection and forwards its notifications to the app, one
/// at a time. Ends when the connection closes or the app drops its stream.
pub(crate) async fn forward(requester: Requester, window: u32, to: Forwarding) {
    let Forwarding { tx, client, in_flight, answered } = to;
    let subscribe = Payload::with_metadata(Bytes::new(), Bytes::from_static(b"{\"subscribe\":\"notifications\"}"));
    let mut stream = match requester.request_stream(subscribe, window).await {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "could not subscribe to notifications"),
    };
    while let Some(item) = stream.next().await {
        let payload = match item {
            Ok(p) => p,
            Err(e) => return debug!(error = %e, "notification subscription ended"),
        };
        let id = notification_id(&payload);
        match answered.arrived(&id) {
            Arrival::New => {}
            Arrival::WithApp => {
                debug!(notification_id = %id, "duplicate of a notification the app holds; its answer serves both");
                continue;
            }
            Arrival::Answered(answer) => {
                debug!(notification_id = %id, "duplicate notification answered with the app's earlier answer");
                let requester = requester.clone();
                tokio::spawn(async move {
                    if let Err(e) = requester.request_response(answer).await {
                        debug!(error = %e, "answering a duplicate notification");
                    }
                });
                continue;
            }
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let replier = Replier {
            requester: requester.clone(),
            id: id.clone(),
            in_flight: in_flight.clone(),
            answered: answered.clone(),
        };
        let notification = match decode(payload.data, replier, client.get().cloned().unwrap_or_default()) {
            Ok(n) => n,
            Err(e) => {
                // Acknowledged, or the server would send it again and again.
                warn!(error = %e, notification_id = %id, "undecodable notification acknowledged and skipped");
                let _ = requester.request_response(reply_payload(&id, &Reply::default())).await;
                continue;
            }
        };
        if tx.send(notification).await.is_err() {
            return; // the app dropped its stream: stop reading, the rest stays server-side
        }
    }
}

#[derive(serde::Deserialize)]
struct NotificationMetadata {
    #[serde(rename = "notificationId")]
    notification_id: String,
}

fn notification_id(payload: &Payload) -> String {
    payload
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_slice::<NotificationMetadata>(m).ok())
        .map(|m| m.notification_id)
        .unwrap_or_default()
}

fn decode(data: Bytes, replier: Replier, client: Weak<Inner>) -> Result<Notification> {
    let envelope = wire::ServerToAppNotification::decode(data)
        .map_err(|e| Error::Protocol(format!("not a ServerToAppNotification: {e}")))?;
    let created = |t: Option<prost_types::Timestamp>| t.as_ref().map(crate::model::millis).unwrap_or_default();
    let mut n = Notification {
        id: replier.id.clone(),
        org_id: String::new(),
        app_id: String::new(),
        customer_id: String::new(),
        purse_id: None,
        created_at: 0,
        app_data: None,
        event: Event::Unknown,
        replier: Some(replier),
        client,
    };
    match envelope.entry {
        Some(wire::server_to_app_notification::Entry::Customer(c)) => {
            n.org_id = c.org_id;
            n.app_id = c.app_id;
            n.customer_id = c.customer_id;
            n.created_at = created(c.created_at);
            n.app_data = AppData::from_wire(c.app_data);
            n.event = Event::from_customer(c.entry);
        }
        Some(wire::server_to_app_notification::Entry::Purse(p)) => {
            n.org_id = p.org_id;
            n.app_id = p.app_id;
            n.purse_id = Some(p.purse_id);
            n.created_at = created(p.created_at);
            n.event = match p.entry {
                Some(wire::server_to_app_purse_notification::Entry::PaymentStatus(s)) => Event::PaymentStatus(s),
                None => Event::Unknown,
            };
        }
        None => {}
    }
    Ok(n)
}
