//! One RSocket connection: the state machine shared by the server and client roles.
//!
//! Owns stream ids, the pending-request table, inbound request tasks, credits, fragment reassembly,
//! keepalive and the close event. It does not know what payloads mean (that is the [`Responder`]'s
//! and the caller's business) and never touches sockets directly (that is [`crate::transport`]).
//!
//! ## Shape
//!
//! The states are types, each consuming the one before it:
//!
//! ```text
//!   AwaitingSetup ──SETUP ok──▶ Accepting ──hook ok──▶ Running ──EOF / ERROR(0) / fatal──▶ Closed
//!        │                          │                                               ▲
//!        └─ timeout / bad frame ────┴── hook rejects: ERROR(REJECTED_SETUP) ─────────┘
//! ```
//!
//! - [`setup`]: `AwaitingSetup` and `Accepting` (server role), the client's SETUP, and the
//!   entry points [`serve`] and [`connect`].
//! - [`engine`]: `Running`, the reader: one frame at a time, to reassembly, then to the request,
//!   response, credit and keepalive rules.
//! - [`fragments`]: reassembly of fragmented messages, bounded in bytes and in open messages; pure
//!   (frames in, whole messages out), tested without sockets.
//! - [`writer`]: the writer task, which batches queued frames into one flush.
//! - [`shared`]: what the reader, the writer and every [`Requester`] share: the outbound queue and
//!   its byte budget, the pending-request table, inbound handlers, and the close.
//! - [`requester`]: [`Requester`], this side's requests towards the peer.
//!
//! A reader and a writer task are joined by one bounded queue of outgoing frames. Everything that
//! wants to send (responses, requests, keepalives) waits for room in that queue, and the writer
//! gives up when the peer stops reading for `write_timeout`; the reader stops reading when
//! `max_inbound_requests` handlers are busy. So a peer that floods requests, or stops reading
//! replies, holds at most a fixed number of frames and tasks on this side.
//!
//! Closing fails every pending request at once with [`RequestError::Closed`] and aborts every
//! inbound handler.

mod engine;
mod fragments;
mod requester;
pub mod resume;
mod setup;
mod shared;
mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::frame::error_code;
use crate::payload::Payload;

pub use engine::Redial;
pub use requester::{PendingResponse, Requester, ResponseStream, StartError};
pub use setup::{connect, serve, ClientResume, SetupParams};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// Limits and timeouts of a connection. Every queue and buffer is bounded by one of these.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time a new connection has to send SETUP (and the setup hook has to decide).
    pub setup_timeout: Duration,
    /// Largest single frame accepted from the transport.
    pub max_frame_size: usize,
    /// Largest message accepted after reassembling fragments (all partial messages together).
    pub max_message_size: usize,
    /// Peer-initiated requests handled at once; beyond this the connection stops reading.
    pub max_inbound_requests: usize,
    /// Outgoing frames queued for the writer.
    pub outbound_queue: usize,
    /// Outgoing bytes queued for the writer (frames as encoded). Senders wait for room; the reader
    /// waits at most `write_timeout` (answering keepalives or requests), then closes the connection
    /// with ERROR, so a peer that sends but never reads holds at most this much.
    pub max_outbound_bytes: usize,
    /// Fragmented messages a peer may have open at once on one connection.
    pub max_fragmented_streams: usize,
    /// A write that makes no progress for this long closes the connection (the peer stopped reading).
    pub write_timeout: Duration,
    /// Server role: established connections a listener holds at once, and from one address; a SETUP
    /// beyond them is refused with REJECTED_SETUP.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Server role: connections accepted but not yet past SETUP (TLS handshake, WebSocket upgrade,
    /// waiting for SETUP), in total and from one address; beyond them, new ones are closed at accept.
    /// Separate from the established budget, so silent sockets cannot lock out clients that set up.
    pub max_pending_setups: usize,
    pub max_pending_per_address: usize,
    /// Server role: the longest keepalive lifetime a client's SETUP may choose; longer ones are
    /// clamped to it, so a vanished peer releases its place within this.
    pub max_keepalive_lifetime: Duration,
    /// Server role: TCP keepalive probes start after this much silence (None: off).
    pub tcp_keepalive: Option<Duration>,
    /// Server role: refused SETUPs from one address before it must wait: each further refusal
    /// doubles the wait (1 s to 60 s) in which its SETUPs are refused without being looked at.
    pub failed_setups_allowed: u32,
    /// Client role: KEEPALIVE period and the lifetime announced in SETUP.
    pub keepalive_interval: Duration,
    pub max_lifetime: Duration,
    /// Server role: where resumable sessions are kept; None refuses SETUPs that ask to resume.
    pub resume: Option<Arc<resume::Registry>>,
    /// How long a resumable session waits for a new transport once it has lost one.
    pub resume_window: Duration,
    /// Frames kept to send again after a resume, in bytes (beyond it the oldest go).
    pub resume_buffer_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            setup_timeout: Duration::from_secs(10),
            max_frame_size: 1024 * 1024,
            max_message_size: 4 * 1024 * 1024,
            max_inbound_requests: 256,
            outbound_queue: 256,
            max_outbound_bytes: 4 * 1024 * 1024,
            max_fragmented_streams: 16,
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            max_pending_setups: 1_024,
            max_pending_per_address: 32,
            max_keepalive_lifetime: Duration::from_secs(300),
            tcp_keepalive: Some(Duration::from_secs(60)),
            failed_setups_allowed: 5,
            keepalive_interval: Duration::from_secs(20),
            max_lifetime: Duration::from_secs(90),
            resume: None,
            resume_window: Duration::from_secs(30),
            resume_buffer_bytes: 1024 * 1024,
        }
    }
}

/// An error carried by an ERROR frame: what a responder returns to fail one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", error_code::name(*code), code)]
pub struct RemoteError {
    pub code: u32,
    pub message: String,
}

impl RemoteError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        RemoteError { code, message: message.into() }
    }
    pub fn application(message: impl Into<String>) -> Self {
        Self::new(error_code::APPLICATION_ERROR, message)
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(error_code::REJECTED, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(error_code::INVALID, message)
    }
}

/// Why a request made through a [`Requester`] did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("peer answered with an error: {0}")]
    Remote(RemoteError),
    #[error("request could not be encoded: {0}")]
    Encode(String),
}

/// What the peer's SETUP frame said, given to the [`Acceptor`].
#[derive(Debug, Clone)]
pub struct SetupInfo {
    pub major_version: u16,
    pub minor_version: u16,
    pub keepalive_interval: Duration,
    pub max_lifetime: Duration,
    pub metadata_mime: String,
    pub data_mime: String,
    pub payload: Payload,
    pub peer: String,
}

/// Handles requests the peer starts on this connection.
pub trait Responder: Send + Sync + 'static {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>>;

    fn request_stream(&self, _payload: Payload) -> BoxStream<Result<Payload, RemoteError>> {
        Box::pin(futures_util::stream::once(async {
            Err(RemoteError::rejected("REQUEST_STREAM is not supported on this connection"))
        }))
    }

    fn fire_and_forget(&self, _payload: Payload) -> BoxFuture<()> {
        Box::pin(async {})
    }

    fn metadata_push(&self, _metadata: Bytes) {}
}

/// Server role: decides whether a SETUP is accepted, and with which responder.
pub trait Acceptor: Send + Sync + 'static {
    /// `requester` is this connection's handle for server-initiated requests; keep it to send
    /// notifications. Returning an error sends ERROR (its code, usually REJECTED_SETUP) and closes.
    fn accept(&self, setup: SetupInfo, requester: Requester) -> BoxFuture<Result<Arc<dyn Responder>, RemoteError>>;
}

/// A condition that ends the connection with ERROR on stream 0.
pub(crate) struct Fatal {
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl Fatal {
    pub(crate) fn connection(message: impl Into<String>) -> Self {
        Fatal { code: error_code::CONNECTION_ERROR, message: message.into() }
    }
}
