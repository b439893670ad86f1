//! Notification subscriptions: the pull alternative to server-initiated requests.
//!
//! Owns: one app socket's REQUEST_STREAM of notifications, its demand (the peer's REQUEST_N credit,
//! seen as "the stream is being polled"), handing one notification at a time to the stream, and
//! matching the app's replies (`{"replyTo":"ntf_…"}` requests) to the deliveries awaiting them.
//! Does not own what is delivered or when to retry: the dispatcher ([`super::run`]) decides that.
//!
//! Why demand matters: the RSocket layer polls a stream only while the peer has credit. When the
//! app's consumer stops asking for more, the subscription stops being a candidate, so notifications
//! stay in the durable outbox (not in memory) until credit returns — a slow consumer slows delivery
//! and loses nothing.
//!
//! Wire contract (outside the Elarian schema, which only knows server-initiated requests):
//! - subscribe: REQUEST_STREAM with metadata `{"subscribe":"notifications"}` on an app socket;
//! - each item: PAYLOAD(NEXT), data a `ServerToAppNotification`, metadata `{"notificationId":"ntf_…"}`;
//! - answer: REQUEST_RESPONSE with metadata `{"replyTo":"ntf_…"}` and a `ServerToAppNotificationReply`
//!   as data; the server acknowledges with an empty payload once the reply is taken.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use hodi_rsocket::{Payload, RemoteError};
use tokio::sync::{mpsc, oneshot};

use crate::wire::ServerToAppNotificationReply;

/// Metadata of a subscribing REQUEST_STREAM.
#[derive(serde::Deserialize)]
struct SubscribeMetadata {
    subscribe: String,
}

/// Metadata of a reply to a streamed notification.
#[derive(serde::Deserialize)]
struct ReplyMetadata {
    #[serde(rename = "replyTo")]
    reply_to: String,
}

/// True when a REQUEST_STREAM's metadata asks for the notification subscription.
pub fn is_subscribe_request(payload: &Payload) -> Result<(), RemoteError> {
    let metadata = payload.metadata.as_deref().unwrap_or_default();
    match serde_json::from_slice::<SubscribeMetadata>(metadata) {
        Ok(m) if m.subscribe == "notifications" => Ok(()),
        Ok(m) => Err(RemoteError::invalid(format!("unknown subscription {:?}; only \"notifications\"", m.subscribe))),
        Err(_) => Err(RemoteError::invalid(
            "REQUEST_STREAM on an app socket needs metadata {\"subscribe\":\"notifications\"}",
        )),
    }
}

/// The notification id a request answers, if its metadata says it is a reply.
pub fn reply_to(payload: &Payload) -> Option<String> {
    let metadata = payload.metadata.as_deref()?;
    serde_json::from_slice::<ReplyMetadata>(metadata).ok().map(|m| m.reply_to)
}

/// One notification offered to the stream; `taken` tells the dispatcher it went on the wire.
struct Offer {
    payload: Payload,
    taken: oneshot::Sender<()>,
}

/// Why a subscription did not produce a reply.
#[derive(Debug)]
pub enum Refused {
    /// No demand (no credit) within the wait: not an attempt; the notification stays queued.
    NoDemand,
    /// The stream ended (cancelled or the socket closed).
    Ended,
    /// Sent, but the app did not reply in time.
    NoReply,
}

/// One socket's subscription. Shared by the socket registry, the stream and the reply path.
pub struct Subscription {
    offers: mpsc::Sender<Offer>,
    demand: AtomicBool,
    ended: AtomicBool,
    replies: Mutex<HashMap<String, oneshot::Sender<ServerToAppNotificationReply>>>,
    /// Woken when demand appears, so the dispatcher looks at the outbox at once.
    wake: Arc<tokio::sync::Notify>,
}

impl Subscription {
    /// A subscription and the stream the RSocket layer sends from.
    pub fn open(wake: Arc<tokio::sync::Notify>) -> (Arc<Subscription>, NotificationStream) {
        // One slot: a notification is handed over only when the stream is already waiting for it.
        let (tx, rx) = mpsc::channel(1);
        let sub = Arc::new(Subscription {
            offers: tx,
            demand: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            replies: Mutex::new(HashMap::new()),
            wake,
        });
        let stream = NotificationStream { sub: sub.clone(), offers: rx, on_drop: None };
        (sub, stream)
    }

    fn replies(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<ServerToAppNotificationReply>>> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer has credit and the stream is waiting for a notification.
    pub fn has_demand(&self) -> bool {
        self.demand.load(Ordering::Acquire) && !self.ended.load(Ordering::Acquire)
    }

    /// Sends one notification and waits for the app's reply: up to `demand_wait` for the stream
    /// to want it, then up to `reply_wait` for the answer.
    pub async fn deliver(
        self: &Arc<Self>,
        notification_id: &str,
        payload: Payload,
        demand_wait: Duration,
        reply_wait: Duration,
    ) -> Result<ServerToAppNotificationReply, Refused> {
        let answer = self.offer(notification_id, payload, demand_wait).await?;
        match tokio::time::timeout(reply_wait, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Refused::NoReply),
        }
    }

    /// Hands one notification to the stream, waiting up to `demand_wait` for the stream to want
    /// it; then the app's answer is awaited with the returned future (as long as its caller likes:
    /// a late answer is still taken while the future lives).
    pub async fn offer(
        self: &Arc<Self>,
        notification_id: &str,
        payload: Payload,
        demand_wait: Duration,
    ) -> Result<Answer, Refused> {
        if self.ended.load(Ordering::Acquire) {
            return Err(Refused::Ended);
        }
        let permit = match tokio::time::timeout(demand_wait, self.offers.reserve()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Refused::Ended),
            Err(_) => return Err(Refused::NoDemand),
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        self.replies().insert(notification_id.to_string(), reply_tx);
        let answer = Answer { sub: self.clone(), id: notification_id.to_string(), rx: reply_rx };
        let (taken_tx, taken_rx) = oneshot::channel();
        permit.send(Offer { payload, taken: taken_tx });
        match tokio::time::timeout(demand_wait, taken_rx).await {
            Ok(Ok(())) => Ok(answer),
            Ok(Err(_)) => Err(Refused::Ended),
            // Dropping `taken_rx` makes the stream skip this offer if it gets to it later.
            Err(_) => Err(Refused::NoDemand),
        }
    }

    /// Notifications handed to this subscription and not yet answered (in the client's buffers,
    /// on the wire, or with the app).
    pub fn awaiting(&self) -> usize {
        self.replies().len()
    }

    /// An app's reply arrived; false when no delivery awaits it (unknown id, or timed out).
    pub fn answer(&self, notification_id: &str, reply: ServerToAppNotificationReply) -> bool {
        match self.replies().remove(notification_id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }
}

/// The app's answer to one streamed notification. Dropping it forgets the delivery: an answer
/// arriving afterwards is refused (the notification is queued again).
pub struct Answer {
    sub: Arc<Subscription>,
    id: String,
    rx: oneshot::Receiver<ServerToAppNotificationReply>,
}

impl std::future::Future for Answer {
    type Output = Result<ServerToAppNotificationReply, Refused>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.map_err(|_| Refused::Ended))
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.sub.replies().remove(&self.id);
    }
}

/// The REQUEST_STREAM's items. Polled by the RSocket layer only while the app has credit.
pub struct NotificationStream {
    sub: Arc<Subscription>,
    offers: mpsc::Receiver<Offer>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl NotificationStream {
    /// Runs `f` when the stream ends (cancel, connection closed): unregisters the subscription.
    pub fn on_drop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }
}

impl Stream for NotificationStream {
    type Item = Result<Payload, RemoteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.sub.demand.swap(true, Ordering::AcqRel) {
            this.sub.wake.notify_one();
        }
        loop {
            match this.offers.poll_recv(cx) {
                Poll::Ready(Some(offer)) => {
                    if offer.taken.send(()).is_err() {
                        continue; // its delivery gave up waiting; it stays in the outbox
                    }
                    this.sub.demand.store(false, Ordering::Release);
                    return Poll::Ready(Some(Ok(offer.payload)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for NotificationStream {
    fn drop(&mut self) {
        self.sub.ended.store(true, Ordering::Release);
        self.sub.demand.store(false, Ordering::Release);
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}
