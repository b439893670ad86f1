//! The voice executor: real calls over SIP with RTP media, driven by apps' voice actions.
//!
//! - [`listener`]: the SIP listener (UDP and TCP); routes messages to calls by Call-ID.
//! - [`call`]: one call's transactions, dialog and the app's actions on its media.
//! - [`conference`]: rooms calls join by dialling `conference:<name>`, mixed every 20 ms.
//! - [`dial`]: the dial action — legs placed through the trunk, ringback, the RTP bridge.
//! - [`queue`]: enqueue (hold music) and dequeue (bridge with the longest-waiting caller).
//! - [`outbound`]: calls Hodi places for voice messages (INVITE client transaction, then [`call`]).
//! - [`sip`]: SIP message parsing and writing.
//! - [`trunk`]: the way to the trunk (UDP or a kept TCP connection), its credentials, registering with it.
//! - [`registrar`]: SIP users of an org registering their phones (digest auth, bindings).
//! - [`recordings`]: recorded audio as WAV files, served over HTTP at their `recordingUrl`.
//! - [`sdp`]: offer/answer for one audio stream (PCMU, PCMA, telephone-event).
//! - [`media`]: G.711, RTP and RFC 4733 events, audio sources (espeak-ng, WAV, tones), the RTP stream.
//!
//! Owns calls and media; does not own what a call means to customers and apps — sessions,
//! notifications and the app's dialplan replies go through [`crate::messaging`], exactly as the
//! simulator's voice calls do.

pub mod call;
pub mod conference;
pub mod dial;
pub mod listener;
pub mod media;
pub mod outbound;
pub mod queue;
pub mod recordings;
pub mod registrar;
pub mod sdp;
pub mod sip;
pub mod trunk;
pub mod webrtc;

/// A random number for tags, branches, SSRCs and SDP session ids (not for secrets).
pub fn rand_id() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
