//! The voice executor: real calls over SIP with RTP media, driven by apps' voice actions.
//!
//! - [`sdp`]: offer/answer for one audio stream (PCMU, PCMA, telephone-event).
//! - [`media`]: G.711, RTP and RFC 4733 events, audio sources (espeak-ng, WAV, tones).
//!
//! Owns calls and media; does not own what a call means to customers and apps — sessions,
//! notifications and the app's dialplan replies go through [`crate::messaging`], exactly as the
//! simulator's voice calls do.

pub mod media;
pub mod sdp;
