//! [`Elarian`]: an app's connection to the server — commands that are not about one customer,
//! the notification subscription, and connection events.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{Payload, Requester};
use hodi_wire as wire;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use wire::app_to_server_command::Entry as Cmd;
use wire::app_to_server_command_reply::Entry as Reply;

use crate::connection::{ConnectionEvent, Link, OnConnected};
use crate::customer::{Customer, CustomerRef};
use crate::handlers::Handlers;
use crate::model::{short_name, Reminder, Tag};
use crate::notification::{forward, Notifications};
use crate::options::Options;
use crate::{Error, Result};

/// A token an app can connect with instead of the API key.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthToken {
    pub token: String,
    pub lifetime: Duration,
}

/// The reply to a message that was accepted (queued, sent, session initiated…).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageReply {
    /// `QUEUED`, `SENT`, `DELIVERED`, `SESSION_INITIATED`…
    pub status: String,
    pub description: String,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
}

/// The reply to a payment that was accepted (settled, queued or awaiting the customer).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentReply {
    /// `SUCCESS`, `QUEUED`, `PENDING_CONFIRMATION`…
    pub status: String,
    pub description: String,
    pub transaction_id: Option<String>,
    pub debit_customer_id: Option<String>,
    pub credit_customer_id: Option<String>,
}

/// A by-tag command accepted as background work.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkReply {
    pub work_id: Option<String>,
    pub description: String,
}

pub(crate) struct Inner {
    pub(crate) link: Arc<Link>,
    notifications: Mutex<Option<(mpsc::Receiver<crate::Notification>, Arc<AtomicUsize>)>>,
    pub(crate) handlers: Mutex<Option<Arc<Handlers>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.link.close();
    }
}

/// An app's client. Cheap to clone; the connection closes when the last clone is dropped or on
/// [`Elarian::disconnect`].
#[derive(Clone)]
pub struct Elarian {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Elarian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elarian").finish_non_exhaustive()
    }
}

impl Elarian {
    /// Starts connecting in the background and returns at once; commands wait (up to
    /// `options.command_timeout`) for the connection. Use [`Elarian::connected`] to wait for it.
    ///
    /// Unless `options.simplex`, the client subscribes to notifications on every connection;
    /// take them with [`Elarian::notifications`] or [`Elarian::on`].
    pub fn connect(options: Options) -> Elarian {
        let (tx, rx) = mpsc::channel(1);
        let window = options.notification_window.max(1);
        // The forwarder needs the client to build `Customer`s, but must not keep it alive (dropping
        // the last clone closes the link): it gets a weak handle, filled in once the client exists.
        let me: Arc<OnceLock<Weak<Inner>>> = Arc::new(OnceLock::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        // Shared by every connection: a notification sent again after a reconnect is known too.
        let answered = Arc::new(crate::notification::Answered::default());
        let on_connected: Option<OnConnected> = (!options.simplex).then(|| {
            let me = me.clone();
            Arc::new(move |requester: Requester| {
                let to = crate::notification::Forwarding {
                    tx: tx.clone(),
                    client: me.clone(),
                    in_flight: counter.clone(),
                    answered: answered.clone(),
                };
                tokio::spawn(forward(requester, window, to));
            }) as OnConnected
        });
        let link = Link::start(options, false, Arc::new(NoRequests), on_connected);
        let inner =
            Arc::new(Inner { link, notifications: Mutex::new(Some((rx, in_flight))), handlers: Mutex::new(None) });
        let _ = me.set(Arc::downgrade(&inner));
        Elarian { inner }
    }

    /// Waits until connected, or fails with why not (rejected credentials fail at once).
    pub async fn connected(&self, wait: Duration) -> Result<()> {
        self.inner.link.wait_connected(wait).await
    }

    /// Connection events from now on: `Connecting`, `Connected`, `Closed`, `Error`.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.link.events()
    }

    /// Closes the connection for good; later commands fail with [`Error::Closed`].
    pub fn disconnect(&self) {
        self.inner.link.close();
    }

    /// The notification stream. Each item must be answered ([`crate::Notification::reply`]) or
    /// dropped (an empty answer); the server sends the next ones only as this stream is read, so an
    /// app that falls behind leaves notifications waiting server-side. Taken once.
    pub fn notifications(&self) -> Result<Notifications> {
        let rx = self.inner.notifications.lock().unwrap_or_else(|p| p.into_inner()).take();
        match rx {
            Some((rx, in_flight)) => Ok(Notifications::new(rx, in_flight)),
            None => Err(Error::Invalid(
                "notifications were already taken (by notifications() or on()); there is one stream per client".into(),
            )),
        }
    }

    /// A customer by phone number (cellular).
    pub fn customer(&self, number: impl Into<String>) -> Customer {
        Customer::new(self.clone(), CustomerRef::Number(crate::model::cellular(number)))
    }

    /// A customer by any customer number.
    pub fn customer_by_number(&self, number: wire::CustomerNumber) -> Customer {
        Customer::new(self.clone(), CustomerRef::Number(number))
    }

    /// A customer by Hodi's customer id.
    pub fn customer_by_id(&self, id: impl Into<String>) -> Customer {
        Customer::new(self.clone(), CustomerRef::Id(id.into()))
    }

    /// A customer by one of the app's secondary ids.
    pub fn customer_by_secondary_id(&self, id: Tag) -> Customer {
        Customer::new(self.clone(), CustomerRef::SecondaryId(id))
    }

    /// Sends one command and returns its reply.
    pub async fn command(&self, command: Cmd) -> Result<Reply> {
        let data = wire::AppToServerCommand { entry: Some(command) }.encode_to_vec();
        let reply = self.inner.link.request(Payload::new(Bytes::from(data))).await?;
        let decoded = wire::AppToServerCommandReply::decode(reply.data)
            .map_err(|e| Error::Protocol(format!("reply is not an AppToServerCommandReply: {e}")))?;
        decoded.entry.ok_or_else(|| Error::Protocol("empty reply".into()))
    }

    /// A token to connect with instead of the API key.
    pub async fn generate_auth_token(&self) -> Result<AuthToken> {
        match self.command(Cmd::GenerateAuthToken(wire::GenerateAuthTokenCommand {})).await? {
            Reply::GenerateAuthToken(r) => Ok(AuthToken {
                token: r.token,
                lifetime: r
                    .lifetime
                    .map(|d| Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0)))
                    .unwrap_or_default(),
            }),
            other => Err(unexpected("GenerateAuthToken", &other)),
        }
    }

    /// Sets `reminder` on every customer tagged `tag` (now and as they are tagged).
    pub async fn add_customer_reminder_by_tag(&self, tag: Tag, reminder: Reminder) -> Result<WorkReply> {
        let cmd = wire::AddCustomerReminderTagCommand { tag: Some(tag.mapping()), reminder: Some(reminder.to_wire()) };
        work_reply(self.command(Cmd::AddCustomerReminderTag(cmd)).await?)
    }

    pub async fn cancel_customer_reminder_by_tag(&self, tag: Tag, key: impl Into<String>) -> Result<WorkReply> {
        let cmd = wire::CancelCustomerReminderTagCommand { tag: Some(tag.mapping()), key: key.into() };
        work_reply(self.command(Cmd::CancelCustomerReminderTag(cmd)).await?)
    }

    /// Sends `message` on `channel` to every customer tagged `tag`.
    pub async fn send_message_by_tag(
        &self,
        tag: Tag,
        channel: wire::MessagingChannelNumber,
        message: wire::OutboundMessage,
    ) -> Result<WorkReply> {
        let cmd = wire::SendMessageTagCommand {
            tag: Some(tag.mapping()),
            channel_number: Some(channel),
            message: Some(message),
        };
        work_reply(self.command(Cmd::SendMessageTag(cmd)).await?)
    }

    /// Moves `value` from `debit` to `credit` (see [`crate::model::party`]).
    pub async fn initiate_payment(
        &self,
        debit: wire::PaymentCounterParty,
        credit: wire::PaymentCounterParty,
        value: wire::Cash,
        narration: impl Into<String>,
    ) -> Result<PaymentReply> {
        let cmd = wire::InitiatePaymentCommand {
            debit_party: Some(debit),
            credit_party: Some(credit),
            value: Some(value),
            narration: narration.into(),
        };
        match self.command(Cmd::InitiatePayment(cmd)).await? {
            Reply::InitiatePayment(r) => {
                let status = payment_status(r.status);
                if !payment_accepted(r.status) {
                    return Err(Error::Status { status, description: r.description });
                }
                Ok(PaymentReply {
                    status,
                    description: r.description,
                    transaction_id: r.transaction_id,
                    debit_customer_id: r.debit_customer_id,
                    credit_customer_id: r.credit_customer_id,
                })
            }
            other => Err(unexpected("InitiatePayment", &other)),
        }
    }

    /// Records a payment that happened elsewhere (history only; balances do not move).
    pub async fn replay_payment(&self, command: wire::ReplayPaymentCommand) -> Result<Option<String>> {
        match self.command(Cmd::ReplayPayment(command)).await? {
            Reply::ReplayPayment(r) if r.status => Ok(r.transaction_id),
            Reply::ReplayPayment(r) => Err(Error::refused(r.description)),
            other => Err(unexpected("ReplayPayment", &other)),
        }
    }

    /// Handles notifications named `event` (`reminder`, `receivedSms`, `ussdSession`, `voiceCall`,
    /// `paymentStatus`…, see [`crate::notification::EVENTS`]) with `handler`. The first call takes
    /// the notification stream; notifications without a handler are acknowledged empty.
    pub fn on<F, Fut>(&self, event: &str, handler: F) -> Result<()>
    where
        F: Fn(crate::Notification) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        crate::handlers::register(self, event, handler)
    }
}

/// The server never sends requests to a hodi-sdk app socket (it is simplex; notifications come
/// on the subscription). Anything that arrives is refused.
struct NoRequests;

impl hodi_rsocket::Responder for NoRequests {
    fn request_response(
        &self,
        _payload: Payload,
    ) -> hodi_rsocket::BoxFuture<std::result::Result<Payload, hodi_rsocket::RemoteError>> {
        Box::pin(async {
            Err(hodi_rsocket::RemoteError::rejected(
                "hodi-sdk app sockets take notifications on their subscription only",
            ))
        })
    }
}

pub(crate) fn unexpected(command: &str, reply: &Reply) -> Error {
    Error::Protocol(format!("{command} answered with a different reply: {reply:?}"))
}

fn work_reply(reply: Reply) -> Result<WorkReply> {
    match reply {
        Reply::TagCommand(r) if r.status => Ok(WorkReply { work_id: r.work_id, description: r.description }),
        Reply::TagCommand(r) => Err(Error::refused(r.description)),
        other => Err(unexpected("by-tag command", &other)),
    }
}

pub(crate) fn message_status(status: i32) -> String {
    let name = wire::MessageDeliveryStatus::try_from(status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN");
    short_name(name, "MESSAGE_DELIVERY_STATUS_")
}

/// Delivery statuses below 400 are progress; 400 and above are refusals.
pub(crate) fn message_reply(r: wire::SendMessageReply) -> Result<MessageReply> {
    let status = message_status(r.status);
    if r.status >= 400 || r.status == 0 {
        return Err(Error::Status { status, description: r.description });
    }
    Ok(MessageReply {
        status,
        description: r.description,
        message_id: r.message_id,
        session_id: r.session_id,
        customer_id: r.customer_id,
    })
}

pub(crate) fn payment_status(status: i32) -> String {
    let name = wire::PaymentStatus::try_from(status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN");
    short_name(name, "PAYMENT_STATUS_")
}

/// Queued, pending, validated, success and pass-through go on; the rest are refusals.
fn payment_accepted(status: i32) -> bool {
    matches!(status, 100..=103 | 300 | 301)
}
