//! What providers report: the outcome of each send, delivery receipts, and customers' messages.
//!
//! Providers sit below messaging and never call it: they put these on a bounded channel that
//! messaging drains (`messaging::providers`), which turns them into statuses, `message_status`
//! notifications and received messages. A full channel slows the provider down instead of
//! growing.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::providers::AcceptedPart;
use crate::wire::{MessageDeliveryStatus, MessagingChannel};

/// How many events may wait for messaging before providers wait.
pub const CAPACITY: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The provider took the message and named its parts: SENT.
    Accepted { provider: String, message_id: String, parts: Vec<AcceptedPart> },
    /// The message will not be sent: FAILED (refused, or out of attempts) or EXPIRED.
    Ended { provider: String, message_id: String, status: MessageDeliveryStatus, reason: String },
    /// A delivery receipt for one part the provider accepted.
    Receipt { provider: String, provider_message_id: String, status: MessageDeliveryStatus, reason: String },
    /// A customer wrote to one of our numbers.
    Received(Received),
    /// Answered once everything sent before it is applied (true) or failed to apply (false): a
    /// provider that must confirm what it handed over (Telegram's getUpdates offset) waits for it.
    Flush(Ack),
}

/// The answer to a [`ChannelEvent::Flush`].
#[derive(Debug, Clone)]
pub struct Ack(Arc<Mutex<Option<oneshot::Sender<bool>>>>);

impl Ack {
    pub fn new() -> (Ack, oneshot::Receiver<bool>) {
        let (tx, rx) = oneshot::channel();
        (Ack(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Answers (the first answer counts).
    pub fn send(&self, applied: bool) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(applied);
        }
    }
}

impl PartialEq for Ack {
    fn eq(&self, other: &Ack) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Ack {}

/// A customer's message as a provider hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub provider: String,
    pub channel: MessagingChannel,
    /// Our number the customer wrote to.
    pub channel_number: String,
    /// The customer's number or address.
    pub customer_number: String,
    pub text: String,
    /// The provider's id of the message, when it gives one (replays import it once).
    pub provider_message_id: Option<String>,
    /// An email's parts (then `text` is its plain body).
    pub email: Option<ReceivedEmail>,
}

/// What an inbound email carries besides its plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEmail {
    pub subject: String,
    pub body_html: String,
}

pub type Sender = tokio::sync::mpsc::Sender<ChannelEvent>;
pub type Receiver = tokio::sync::mpsc::Receiver<ChannelEvent>;

/// What a payment provider reports that the payment rules must decide on: its refusal of a
/// request. (Its acceptance only records a reference, which the worker stores itself; results come
/// by webhook.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRefused {
    pub provider: String,
    pub transaction_id: String,
    /// The request ran out of time before the provider took it (else the provider refused it or
    /// it ran out of attempts).
    pub expired: bool,
    pub reason: String,
}

/// How many refusals may wait for the payment rules before payment workers wait.
pub const PAYMENT_CAPACITY: usize = 256;

pub type PaymentSender = tokio::sync::mpsc::Sender<PaymentRefused>;
pub type PaymentReceiver = tokio::sync::mpsc::Receiver<PaymentRefused>;
