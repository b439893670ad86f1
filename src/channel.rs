//! Ways out: what messaging hands a message to when a real network carries it, as seen from
//! messaging. Today that is the voice executor, which turns a voice message into a SIP call
//! through the trunk; the SMPP and SMTP providers will stand here beside it.
//!
//! Owns the shape of those hand-overs only (a trait and the data it takes). It sits below
//! [`crate::context`] so that the shared context can hold the executor built at start-up and
//! messaging can use it, while the executor, which needs messaging to tell apps what the call
//! does, is never imported by messaging: data flows down from messaging to this trait and the
//! implementation is wired in by [`crate::server`].

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
