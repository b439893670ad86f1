//! Ways out: what messaging hands a message to when a real network carries it.
//!
//! - [`PlaceCalls`]: the voice executor, which turns a voice message into a SIP call through the
//!   trunk (the trait is here; the executor is wired in by [`crate::server`]).
//! - [`providers`]: the configured providers (`[providers.<name>]`), each a queue [`worker`] over
//!   a transport: [`smpp`] for SMS, [`smtp`] for email. Messages wait for them in the store's
//!   durable queue; what they report comes back as [`events`], which messaging drains.
//! - payment providers ([`mpesa`], Africa's Talking airtime): the requests pending payments make,
//!   queued in the store and handed over by the same [`worker`] through [`payments`]; refusals
//!   go up to the payment rules as events, results come by webhook.
//!
//! Nothing here imports messaging, payment or the command layer: data flows down into this
//! module, and back up only as events on a channel. It sits below
//! [`crate::context`] so that the shared context can hold the executor built at start-up and
//! messaging can use it, while the executor, which needs messaging to tell apps what the call
//! does, is never imported by messaging: data flows down from messaging to this trait and the
//! implementation is wired in by [`crate::server`].

pub mod africastalking;
pub mod body;
pub mod events;
pub mod http;
pub mod mailgun;
pub mod meta;
pub mod mpesa;
pub mod payments;
pub mod providers;
pub mod smpp;
pub mod sms_parts;
pub mod smtp;
pub mod telegram;
pub mod twilio;
pub mod worker;

use crate::wire::VoiceCallAction;

/// A call to place for a voice message.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub org_id: String,
    pub app_id: String,
    /// The customer's number (the Request-URI user at the trunk).
    pub customer: String,
    /// Our voice channel number (the caller id).
    pub number: String,
    /// The messaging session the call belongs to.
    pub session_id: String,
    /// What the call does once answered.
    pub actions: Vec<VoiceCallAction>,
}

/// Places calls for voice messages on a real network. Progress (ringing, answer, the app's
/// next actions, hang-up) comes back through messaging as for any inbound call, so placing
/// returns at once.
pub trait PlaceCalls: Send + Sync {
    fn place(&self, call: CallRequest);
}
