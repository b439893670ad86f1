//! One RSocket connection: the state machine shared by the server and client roles.
//!
//! Owns stream ids, the pending-request table, inbound request tasks, credits, fragment reassembly,
//! keepalive and the close event. It does not know what payloads mean (that is the [`Responder`]'s
//! and the caller's business) and never touches sockets directly (that is [`crate::transport`]).
//!
//! ## Shape
//!
//! Each connection runs a reader loop and a writer task joined by one bounded queue of outgoing
//! frames. Everything that wants to send (responses, requests, keepalives) waits for room in that
//! queue, and the writer gives up when the peer stops reading for `write_timeout`; the reader stops
//! reading when `max_inbound_requests` handlers are busy. So a peer that floods requests, or stops
//! reading replies, holds at most a fixed number of frames and tasks on this side.
//!
//! ```text
//!   AwaitingSetup ──SETUP ok──▶ Accepting ──hook ok──▶ Running ──EOF / ERROR(0) / fatal──▶ Closed
//!        │                          │                                               ▲
//!        └─ timeout / bad frame ────┴── hook rejects: ERROR(REJECTED_SETUP) ─────────┘
//! ```
//!
//! Closing fails every pending request at once with [`RequestError::Closed`] and aborts every
//! inbound handler.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::admission::Gate;
use crate::frame::{error_code, Body, Frame, Setup, MAX_U31};
use crate::payload::Payload;
use crate::transport::{FrameIo, FrameSink, FrameStream, TransportError};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

impl Role {
    /// Whether `id` is one the peer may use to start a stream.
    fn is_peer_stream(self, id: u32) -> bool {
        match self {
            Role::Server => id % 2 == 1,
            Role::Client => id.is_multiple_of(2),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

enum Outbound {
    /// A frame and its place in the byte budget (none for small control frames: CANCEL,
    /// REQUEST_N, a last ERROR), given back once the writer has taken it.
    /// Boxed: the queue allocates its slots in blocks of 32, and an unboxed frame made that block
    /// 6 KB on every connection, idle or not.
    Frame(Box<Frame>, Option<OwnedSemaphorePermit>),
    /// Flush what is queued, then close the transport.
    Close,
}

enum Pending {
    Response(oneshot::Sender<Result<Payload, RequestError>>),
    Stream(mpsc::Sender<Result<Payload, RequestError>>),
}

#[derive(Default)]
struct PendingTable {
    closed: Option<String>,
    entries: HashMap<u32, Pending>,
}

struct InboundHandle {
    abort: Option<AbortHandle>,
    credits: Option<Arc<Semaphore>>,
}

struct Shared {
    role: Role,
    peer: String,
    out: mpsc::Sender<Outbound>,
    /// Bytes that may still be queued for the writer (see [`Config::max_outbound_bytes`]).
    room: Arc<Semaphore>,
    budget: usize,
    pending: Mutex<PendingTable>,
    inbound: Mutex<HashMap<u32, InboundHandle>>,
    next_id: AtomicU32,
    closed: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than losing the connection, so recover the guard rather than propagate poison.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Queues `frame`, waiting for room in the byte budget and the frame queue.
    async fn send(&self, frame: Frame) -> Result<(), RequestError> {
        let cost = self.cost(&frame);
        let queued = async {
            let place = self.room.clone().acquire_many_owned(cost).await.map_err(|_| ())?;
            self.out.send(Outbound::Frame(Box::new(frame), Some(place))).await.map_err(|_| ())
        };
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => Err(self.closed_error()),
            sent = queued => sent.map_err(|_| self.closed_error()),
        }
    }

    /// Queues a small control frame if there is room in the frame queue, outside the byte budget.
    fn control(&self, frame: Frame) {
        let _ = self.out.try_send(Outbound::Frame(Box::new(frame), None));
    }

    /// A frame's share of the byte budget: its encoded size, but never more than the whole
    /// budget, so one message larger than the budget still goes (alone).
    fn cost(&self, frame: &Frame) -> u32 {
        frame.encoded_len().clamp(1, self.budget) as u32
    }

    /// Bytes queued for the writer now.
    fn queued_bytes(&self) -> usize {
        self.budget.saturating_sub(self.room.available_permits())
    }

    fn closed_error(&self) -> RequestError {
        RequestError::Closed(lock(&self.pending).closed.clone().unwrap_or_else(|| "connection closed".into()))
    }

    fn allocate_id(&self) -> u32 {
        // Ids wrap at 2^31; a connection that issues two billion requests reuses ids of long-finished
        // streams, which the spec allows once they are no longer in use.
        let id = self.next_id.fetch_add(2, Ordering::Relaxed) & MAX_U31;
        if id == 0 {
            self.next_id.fetch_add(2, Ordering::Relaxed) & MAX_U31
        } else {
            id
        }
    }

    /// Records the close reason, fails every pending request and aborts every inbound handler.
    fn shut(&self, reason: &str) {
        let entries = {
            let mut table = lock(&self.pending);
            if table.closed.is_none() {
                table.closed = Some(reason.to_string());
            }
            std::mem::take(&mut table.entries)
        };
        let error = RequestError::Closed(reason.to_string());
        for (_, pending) in entries {
            match pending {
                Pending::Response(tx) => {
                    let _ = tx.send(Err(error.clone()));
                }
                Pending::Stream(tx) => {
                    let _ = tx.try_send(Err(error.clone()));
                }
            }
        }
        for (_, handle) in lock(&self.inbound).drain() {
            if let Some(abort) = handle.abort {
                abort.abort();
            }
        }
        self.closed.cancel();
    }
}

/// A handle to one connection, for requests towards the peer. Cheap to clone.
#[derive(Clone)]
pub struct Requester {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester").field("peer", &self.shared.peer).field("role", &self.shared.role).finish()
    }
}

impl Requester {
    /// REQUEST_RESPONSE: one payload out, one back. Dropping the future cancels the request.
    pub async fn request_response(&self, payload: Payload) -> Result<Payload, RequestError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Pending::Response(tx))?;
        let mut guard = CancelOnDrop { shared: &self.shared, id, armed: true };
        self.shared.send(Frame::new(id, Body::RequestResponse { follows: false, payload })).await?;
        let result = rx.await.unwrap_or_else(|_| Err(self.shared.closed_error()));
        guard.armed = false;
        result
    }

    /// Frames that can be queued for the peer right now without waiting (see
    /// [`Requester::start_request_response`]).
    pub fn capacity(&self) -> usize {
        self.shared.out.capacity()
    }

    /// Bytes queued for the peer and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes()
    }

    /// Starts a REQUEST_RESPONSE without waiting: the frame is queued now, so requests started one
    /// after another go on the wire in that order. `Busy` (nothing sent) when the connection's
    /// outbound queue is full: a caller serving many peers skips this one instead of waiting on it.
    /// Dropping the returned future before the answer cancels the request (CANCEL is sent).
    pub fn start_request_response(&self, payload: Payload) -> Result<PendingResponse, StartError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Pending::Response(tx)).map_err(StartError::Request)?;
        let frame = Frame::new(id, Body::RequestResponse { follows: false, payload });
        let Ok(place) = self.shared.room.clone().try_acquire_many_owned(self.shared.cost(&frame)) else {
            lock(&self.shared.pending).entries.remove(&id);
            return Err(StartError::Busy);
        };
        match self.shared.out.try_send(Outbound::Frame(Box::new(frame), Some(place))) {
            Ok(()) => Ok(PendingResponse { shared: self.shared.clone(), id, rx, armed: true }),
            Err(e) => {
                lock(&self.shared.pending).entries.remove(&id);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => StartError::Busy,
                    mpsc::error::TrySendError::Closed(_) => StartError::Request(self.shared.closed_error()),
                })
            }
        }
    }

    /// REQUEST_STREAM with flow control: at most `window` items are requested ahead of the consumer.
    pub async fn request_stream(&self, payload: Payload, window: u32) -> Result<ResponseStream, RequestError> {
        let window = window.clamp(1, 1 << 16);
        let (tx, rx) = mpsc::channel(window as usize + 1);
        let id = self.register(Pending::Stream(tx))?;
        self.shared.send(Frame::new(id, Body::RequestStream { follows: false, initial_n: window, payload })).await?;
        Ok(ResponseStream { shared: self.shared.clone(), id, rx, window, consumed: 0, done: false })
    }

    /// REQUEST_FNF: delivered to the peer's queue, no answer.
    pub async fn fire_and_forget(&self, payload: Payload) -> Result<(), RequestError> {
        let id = self.shared.allocate_id();
        self.shared.send(Frame::new(id, Body::RequestFnf { follows: false, payload })).await
    }

    /// METADATA_PUSH on stream 0.
    pub async fn metadata_push(&self, metadata: Bytes) -> Result<(), RequestError> {
        self.shared.send(Frame::new(0, Body::MetadataPush { metadata })).await
    }

    /// Closes the connection after flushing frames already queued. Pending requests fail at once.
    pub fn close(&self) {
        let _ = self.shared.out.try_send(Outbound::Close);
        self.shared.shut("closed locally");
    }

    /// Sends ERROR on stream 0 with `code` and `message`, then closes as [`Requester::close`].
    pub fn close_with(&self, code: u32, message: &str) {
        self.shared.control(Frame::error(0, code, message));
        let _ = self.shared.out.try_send(Outbound::Close);
        self.shared.shut(message);
    }

    /// Resolves when the connection has closed, with the reason.
    pub async fn closed(&self) -> String {
        self.shared.closed.cancelled().await;
        lock(&self.shared.pending).closed.clone().unwrap_or_else(|| "closed".into())
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// The peer's address, for logs.
    pub fn peer(&self) -> &str {
        &self.shared.peer
    }

    fn register(&self, pending: Pending) -> Result<u32, RequestError> {
        let mut table = lock(&self.shared.pending);
        if let Some(reason) = &table.closed {
            return Err(RequestError::Closed(reason.clone()));
        }
        let mut id = self.shared.allocate_id();
        while table.entries.contains_key(&id) {
            id = self.shared.allocate_id();
        }
        table.entries.insert(id, pending);
        Ok(id)
    }
}

struct CancelOnDrop<'a> {
    shared: &'a Shared,
    id: u32,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed && lock(&self.shared.pending).entries.remove(&self.id).is_some() {
            self.shared.control(Frame::new(self.id, Body::Cancel));
        }
    }
}

/// Why [`Requester::start_request_response`] sent nothing.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the connection's outbound queue is full")]
    Busy,
    #[error(transparent)]
    Request(RequestError),
}

/// The answer to a request started with [`Requester::start_request_response`].
pub struct PendingResponse {
    shared: Arc<Shared>,
    id: u32,
    rx: oneshot::Receiver<Result<Payload, RequestError>>,
    armed: bool,
}

impl Future for PendingResponse {
    type Output = Result<Payload, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(result) => {
                this.armed = false;
                Poll::Ready(result.unwrap_or_else(|_| Err(this.shared.closed_error())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for PendingResponse {
    fn drop(&mut self) {
        if self.armed && lock(&self.shared.pending).entries.remove(&self.id).is_some() {
            self.shared.control(Frame::new(self.id, Body::Cancel));
        }
    }
}

/// Items of a REQUEST_STREAM. Consuming items grants the peer more credit; dropping the stream
/// before it completes sends CANCEL.
pub struct ResponseStream {
    shared: Arc<Shared>,
    id: u32,
    rx: mpsc::Receiver<Result<Payload, RequestError>>,
    window: u32,
    consumed: u32,
    done: bool,
}

impl Stream for ResponseStream {
    type Item = Result<Payload, RequestError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(item))) => {
                this.consumed += 1;
                if this.consumed >= this.window.div_ceil(2) {
                    let n = std::mem::take(&mut this.consumed);
                    this.shared.control(Frame::new(this.id, Body::RequestN { n }));
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if !self.done && lock(&self.shared.pending).entries.remove(&self.id).is_some() {
            self.shared.control(Frame::new(self.id, Body::Cancel));
        }
    }
}

/// A condition that ends the connection with ERROR on stream 0.
struct Fatal {
    code: u32,
    message: String,
}

impl Fatal {
    fn connection(message: impl Into<String>) -> Self {
        Fatal { code: error_code::CONNECTION_ERROR, message: message.into() }
    }
}

/// What each fragment counts toward the reassembly limit besides its payload: its header and
/// bookkeeping, so that a flood of empty fragments is bounded like a flood of bytes.
const FRAGMENT_COST: usize = 64;

/// A message being reassembled from fragments.
struct Partial {
    first: Body,
    metadata: Option<BytesMut>,
    data: BytesMut,
    /// What this message counts toward `Running::fragment_bytes`.
    counted: usize,
}

impl Partial {
    fn append(&mut self, payload: Payload) {
        if let Some(m) = payload.metadata {
            self.metadata.get_or_insert_with(BytesMut::new).extend_from_slice(&m);
        }
        self.data.extend_from_slice(&payload.data);
    }
    fn finish(self) -> Body {
        let payload = Payload { metadata: self.metadata.map(BytesMut::freeze), data: self.data.freeze() };
        match self.first {
            Body::RequestResponse { .. } => Body::RequestResponse { follows: false, payload },
            Body::RequestFnf { .. } => Body::RequestFnf { follows: false, payload },
            Body::RequestStream { initial_n, .. } => Body::RequestStream { follows: false, initial_n, payload },
            Body::RequestChannel { initial_n, complete, .. } => {
                Body::RequestChannel { follows: false, complete, initial_n, payload }
            }
            Body::Payload { complete, next, .. } => Body::Payload { follows: false, complete, next, payload },
            other => other,
        }
    }
}

fn split_follows(body: Body) -> (bool, Body) {
    match body {
        Body::RequestResponse { follows: true, payload } => (true, Body::RequestResponse { follows: true, payload }),
        Body::RequestFnf { follows: true, payload } => (true, Body::RequestFnf { follows: true, payload }),
        Body::RequestStream { follows: true, initial_n, payload } => {
            (true, Body::RequestStream { follows: true, initial_n, payload })
        }
        Body::RequestChannel { follows: true, complete, initial_n, payload } => {
            (true, Body::RequestChannel { follows: true, complete, initial_n, payload })
        }
        Body::Payload { follows: true, complete, next, payload } => {
            (true, Body::Payload { follows: true, complete, next, payload })
        }
        other => (false, other),
    }
}

fn take_payload(body: Body) -> Payload {
    match body {
        Body::RequestResponse { payload, .. }
        | Body::RequestFnf { payload, .. }
        | Body::RequestStream { payload, .. }
        | Body::RequestChannel { payload, .. }
        | Body::Payload { payload, .. } => payload,
        _ => Payload::default(),
    }
}

/// The running connection: reader state plus the shared handle.
struct Running {
    shared: Arc<Shared>,
    responder: Arc<dyn Responder>,
    config: Config,
    inflight: Arc<Semaphore>,
    fragments: HashMap<u32, Partial>,
    fragment_bytes: usize,
    lifetime: Duration,
}

impl Running {
    async fn run(mut self, mut reader: FrameStream) -> Result<String, Fatal> {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shared.closed.cancelled() => return Ok("closed".into()),
                next = tokio::time::timeout(self.lifetime, reader.next()) => next,
            };
            let bytes = match next {
                Err(_) => {
                    return Err(Fatal::connection(format!(
                        "no frame received for {} ms (keepalive lifetime)",
                        self.lifetime.as_millis()
                    )))
                }
                Ok(None) => return Ok("peer closed the connection".into()),
                Ok(Some(Err(TransportError::FrameTooLarge { size, max }))) => {
                    return Err(Fatal::connection(format!("frame of {size} bytes exceeds the limit of {max} bytes")))
                }
                Ok(Some(Err(TransportError::TextMessage))) => {
                    return Err(Fatal::connection("text websocket message: send frames as binary messages"))
                }
                Ok(Some(Err(e))) => return Ok(format!("transport error: {e}")),
                Ok(Some(Ok(bytes))) => bytes,
            };
            let frame = Frame::decode(bytes).map_err(|e| Fatal::connection(format!("malformed frame: {e}")))?;
            if let Some(reason) = self.handle(frame).await? {
                return Ok(reason);
            }
        }
    }

    /// Handles one frame; `Ok(Some(reason))` ends the connection cleanly.
    async fn handle(&mut self, frame: Frame) -> Result<Option<String>, Fatal> {
        let id = frame.stream_id;
        let (follows, body) = split_follows(frame.body);
        // Reassembly: a frame with FOLLOWS starts or extends a message; the frame without it ends it.
        if follows || self.fragments.contains_key(&id) {
            let is_continuation = self.fragments.contains_key(&id);
            if is_continuation && !matches!(body, Body::Payload { .. }) {
                if matches!(body, Body::Cancel) {
                    self.drop_partial(id);
                    return Ok(None);
                }
                return Err(Fatal::connection(format!("stream {id}: fragment continued by a non-PAYLOAD frame")));
            }
            let payload_len = match &body {
                Body::RequestResponse { payload, .. }
                | Body::RequestFnf { payload, .. }
                | Body::RequestStream { payload, .. }
                | Body::RequestChannel { payload, .. }
                | Body::Payload { payload, .. } => payload.len(),
                _ => 0,
            };
            if !is_continuation && self.fragments.len() >= self.config.max_fragmented_streams {
                return Err(Fatal::connection(format!(
                    "more than {} fragmented messages open at once",
                    self.config.max_fragmented_streams
                )));
            }
            let cost = payload_len + FRAGMENT_COST;
            self.fragment_bytes += cost;
            if self.fragment_bytes > self.config.max_message_size {
                return Err(Fatal::connection(format!(
                    "fragmented messages exceed the reassembly limit of {} bytes",
                    self.config.max_message_size
                )));
            }
            if is_continuation {
                let partial = self.fragments.get_mut(&id).ok_or_else(|| Fatal::connection("fragment state lost"))?;
                partial.counted += cost;
                partial.append(take_payload(body));
            } else {
                let mut partial = Partial { first: body.clone(), metadata: None, data: BytesMut::new(), counted: cost };
                partial.append(take_payload(body));
                self.fragments.insert(id, partial);
            }
            if follows {
                return Ok(None);
            }
            let partial = self.fragments.remove(&id).ok_or_else(|| Fatal::connection("fragment state lost"))?;
            self.fragment_bytes -= partial.counted;
            let body = partial.finish();
            return self.dispatch(id, body).await;
        }
        self.dispatch(id, body).await
    }

    fn drop_partial(&mut self, id: u32) {
        if let Some(partial) = self.fragments.remove(&id) {
            self.fragment_bytes -= partial.counted;
        }
    }

    fn check_new_stream(&self, id: u32) -> Result<(), Fatal> {
        if !self.shared.role.is_peer_stream(id) {
            return Err(Fatal::connection(format!(
                "stream id {id} has the wrong parity for a request sent to the {}",
                self.shared.role.name()
            )));
        }
        if lock(&self.shared.inbound).contains_key(&id) {
            return Err(Fatal::connection(format!("stream id {id} is already in use")));
        }
        Ok(())
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, Fatal> {
        self.inflight.clone().acquire_owned().await.map_err(|_| Fatal::connection("connection closing"))
    }

    async fn dispatch(&mut self, id: u32, body: Body) -> Result<Option<String>, Fatal> {
        match body {
            Body::Keepalive { respond, data, .. } => {
                if respond {
                    let reply = Frame::new(0, Body::Keepalive { respond: false, last_position: 0, data });
                    return self.answer(reply).await;
                }
            }
            Body::RequestResponse { payload, .. } => {
                self.check_new_stream(id)?;
                let mut fut = self.responder.request_response(payload);
                // Fast path: a responder that can answer at once (no I/O) is answered here, without
                // a task, a table entry or a permit. Polling with a no-op waker is fine: if it is
                // not ready, the spawned task polls it again and registers its own waker.
                let polled = fut.as_mut().poll(&mut Context::from_waker(futures_util::task::noop_waker_ref()));
                if let Poll::Ready(result) = polled {
                    let frame = match result {
                        Ok(payload) => Frame::response(id, payload),
                        Err(e) => Frame::error(id, e.code, &e.message),
                    };
                    return self.answer(frame).await;
                }
                let permit = self.permit().await?;
                let shared = self.shared.clone();
                lock(&shared.inbound).insert(id, InboundHandle { abort: None, credits: None });
                let task = tokio::spawn(async move {
                    let _permit = permit;
                    let result = fut.await;
                    if lock(&shared.inbound).remove(&id).is_none() {
                        return; // cancelled meanwhile
                    }
                    let frame = match result {
                        Ok(payload) => Frame::response(id, payload),
                        Err(e) => Frame::error(id, e.code, &e.message),
                    };
                    let _ = shared.send(frame).await;
                });
                self.set_abort(id, task.abort_handle());
            }
            Body::RequestFnf { payload, .. } => {
                self.check_new_stream(id)?;
                let permit = self.permit().await?;
                let fut = self.responder.fire_and_forget(payload);
                tokio::spawn(async move {
                    let _permit = permit;
                    fut.await;
                });
            }
            Body::RequestStream { initial_n, payload, .. } => {
                self.check_new_stream(id)?;
                let permit = self.permit().await?;
                let credits = Arc::new(Semaphore::new(initial_n as usize));
                let shared = self.shared.clone();
                lock(&shared.inbound).insert(id, InboundHandle { abort: None, credits: Some(credits.clone()) });
                let mut items = self.responder.request_stream(payload);
                let task = tokio::spawn(async move {
                    let _permit = permit;
                    loop {
                        // Credit first, then the next item: the producer is polled only while the
                        // peer has asked for more, so a producer can treat "being polled" as demand
                        // (Hodi's notification subscriptions leave notifications stored until then).
                        // A stream that ends or fails is noticed at the next credit.
                        match credits.acquire().await {
                            Ok(p) => p.forget(),
                            Err(_) => return,
                        }
                        let frame = match items.next().await {
                            Some(Ok(payload)) => {
                                Frame::new(id, Body::Payload { follows: false, complete: false, next: true, payload })
                            }
                            Some(Err(e)) => {
                                lock(&shared.inbound).remove(&id);
                                let _ = shared.send(Frame::error(id, e.code, &e.message)).await;
                                return;
                            }
                            None => {
                                lock(&shared.inbound).remove(&id);
                                let done = Body::Payload {
                                    follows: false,
                                    complete: true,
                                    next: false,
                                    payload: Payload::default(),
                                };
                                let _ = shared.send(Frame::new(id, done)).await;
                                return;
                            }
                        };
                        if shared.send(frame).await.is_err() {
                            return;
                        }
                    }
                });
                self.set_abort(id, task.abort_handle());
            }
            Body::RequestChannel { .. } => {
                self.check_new_stream(id)?;
                let _ =
                    self.shared.send(Frame::error(id, error_code::REJECTED, "REQUEST_CHANNEL is not supported")).await;
            }
            Body::RequestN { n } => {
                let credits = lock(&self.shared.inbound).get(&id).and_then(|h| h.credits.clone());
                if let Some(credits) = credits {
                    // Total credit at or above 2^31-1 means unbounded; clamp to keep the semaphore sane.
                    let room = (MAX_U31 as usize).saturating_sub(credits.available_permits());
                    credits.add_permits((n as usize).min(room));
                }
            }
            Body::Cancel => {
                if let Some(handle) = lock(&self.shared.inbound).remove(&id) {
                    if let Some(abort) = handle.abort {
                        abort.abort();
                    }
                }
            }
            Body::Payload { complete, next, payload, .. } => self.deliver(id, complete, next, payload),
            Body::Error { code, data } => {
                let message = String::from_utf8_lossy(&data).into_owned();
                if id == 0 {
                    return Ok(Some(format!("peer sent {} ({code}): {message}", error_code::name(code))));
                }
                let error = RequestError::Remote(RemoteError { code, message });
                match lock(&self.shared.pending).entries.remove(&id) {
                    Some(Pending::Response(tx)) => {
                        let _ = tx.send(Err(error));
                    }
                    Some(Pending::Stream(tx)) => {
                        let _ = tx.try_send(Err(error));
                    }
                    None => {
                        // An ERROR on a stream the peer started means it gave up on it (e.g. a
                        // request-channel); stop our side.
                        if let Some(h) = lock(&self.shared.inbound).remove(&id) {
                            if let Some(abort) = h.abort {
                                abort.abort();
                            }
                        }
                    }
                }
            }
            Body::MetadataPush { metadata } => self.responder.metadata_push(metadata),
            Body::Setup(_) => return Err(Fatal::connection("SETUP received on an established connection")),
            Body::Resume { .. } | Body::ResumeOk { .. } => {
                return Err(Fatal { code: error_code::REJECTED_RESUME, message: "resume is not supported".into() })
            }
            // Lease was not negotiated; EXT and ignorable unknown frames carry nothing we act on.
            Body::Lease { .. } | Body::Ext { .. } | Body::Ignored { .. } => {}
        }
        Ok(None)
    }

    /// Queues a frame the reader itself answers with (a keepalive echo, an immediate response).
    /// The reader waits for room, which stops it reading the peer: a peer that keeps sending but
    /// does not read its answers is closed with ERROR after `write_timeout`, holding meanwhile no
    /// more than `max_outbound_bytes`.
    async fn answer(&self, frame: Frame) -> Result<Option<String>, Fatal> {
        match tokio::time::timeout(self.config.write_timeout, self.shared.send(frame)).await {
            Ok(Ok(())) => Ok(None),
            Ok(Err(_)) => Ok(Some("closed while answering".into())),
            Err(_) => Err(Fatal::connection(format!(
                "the peer has not read its answers for {} ms ({} bytes queued; the limit is {})",
                self.config.write_timeout.as_millis(),
                self.shared.queued_bytes(),
                self.shared.budget
            ))),
        }
    }

    fn set_abort(&self, id: u32, abort: AbortHandle) {
        if let Some(h) = lock(&self.shared.inbound).get_mut(&id) {
            h.abort = Some(abort);
        }
    }

    /// A PAYLOAD for a request we made.
    fn deliver(&self, id: u32, complete: bool, next: bool, payload: Payload) {
        let mut table = lock(&self.shared.pending);
        match table.entries.get(&id) {
            Some(Pending::Response(_)) => {
                if let Some(Pending::Response(tx)) = table.entries.remove(&id) {
                    let _ = tx.send(Ok(if next { payload } else { Payload::default() }));
                }
            }
            Some(Pending::Stream(tx)) => {
                let mut finished = complete;
                if next && tx.try_send(Ok(payload)).is_err() {
                    // The peer sent more than it was granted, or the consumer went away: stop it.
                    self.shared.control(Frame::new(id, Body::Cancel));
                    finished = true;
                }
                if finished {
                    table.entries.remove(&id);
                }
            }
            None => {} // cancelled or unknown: the spec says ignore
        }
    }
}

/// Frames written before each flush, at most.
const WRITE_BATCH: usize = 64;

async fn write_loop(mut writer: FrameSink, mut rx: mpsc::Receiver<Outbound>, shared: Arc<Shared>, timeout: Duration) {
    let stalled = || format!("the peer did not read for {} ms", timeout.as_millis());
    let write = async |writer: &mut FrameSink, frame: Frame| -> Result<(), String> {
        match tokio::time::timeout(timeout, writer.feed(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(stalled()),
        }
    };
    let failure = 'outer: loop {
        let first = tokio::select! {
            biased;
            msg = rx.recv() => msg,
            _ = shared.closed.cancelled() => None,
        };
        let Some(mut msg) = first else { break None };
        // Batch whatever is already queued into one flush.
        let mut batched = 0;
        loop {
            match msg {
                Outbound::Close => {
                    let _ = tokio::time::timeout(timeout, writer.close()).await;
                    break 'outer None;
                }
                Outbound::Frame(frame, _place) => {
                    // `_place` goes back to the budget once the frame is in the sink's buffer.
                    if let Err(e) = write(&mut writer, *frame).await {
                        break 'outer Some(e);
                    }
                }
            }
            batched += 1;
            // Check the cap before taking another frame: a frame taken off the queue must be written.
            if batched == WRITE_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        match tokio::time::timeout(timeout, writer.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Some(format!("flush failed: {e}")),
            Err(_) => break Some(stalled()),
        }
    };
    match failure {
        Some(reason) => {
            debug!(%reason, "closing");
            shared.shut(&reason);
        }
        None => shared.closed.cancel(),
    }
}

fn new_shared(role: Role, peer: String, config: &Config) -> (Arc<Shared>, mpsc::Receiver<Outbound>) {
    let (out, rx) = mpsc::channel(config.outbound_queue.max(1));
    // A cost is a u32 of semaphore permits.
    let budget = config.max_outbound_bytes.clamp(1, (u32::MAX as usize).min(Semaphore::MAX_PERMITS));
    let shared = Arc::new(Shared {
        role,
        peer,
        out,
        room: Arc::new(Semaphore::new(budget)),
        budget,
        pending: Mutex::new(PendingTable::default()),
        inbound: Mutex::new(HashMap::new()),
        next_id: AtomicU32::new(match role {
            Role::Server => 2,
            Role::Client => 1,
        }),
        closed: CancellationToken::new(),
    });
    (shared, rx)
}

/// Sends a last ERROR, lets the writer flush it, and closes.
async fn close_with(shared: &Shared, writer: tokio::task::JoinHandle<()>, fatal: Option<Fatal>, reason: &str) {
    if let Some(f) = fatal {
        shared.control(Frame::error(0, f.code, &f.message));
    }
    let _ = shared.out.try_send(Outbound::Close);
    shared.shut(reason);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

/// Shuts a connection's shared state when dropped.
struct ShutOnDrop(Arc<Shared>);

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        self.0.shut("connection dropped by the server");
    }
}

/// Server role: runs one accepted connection to its end. `gate` holds its pending place until
/// SETUP arrives, then an established one (or the SETUP is refused: the server is full).
pub async fn serve(io: FrameIo, acceptor: Arc<dyn Acceptor>, config: Config, mut gate: Gate) {
    let FrameIo { mut reader, mut writer, peer } = io;
    let span = tracing::info_span!("conn", %peer);
    async move {
        let first = tokio::time::timeout(config.setup_timeout, reader.next()).await;
        let refuse = async |writer: &mut FrameSink, code: u32, message: String| {
            info!(code = error_code::name(code), %message, "setup refused");
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = writer.send(Frame::error(0, code, &message)).await;
                let _ = writer.close().await;
            })
            .await;
        };
        let setup: Setup = match first {
            Err(_) => {
                let msg = format!("no SETUP within {} ms", config.setup_timeout.as_millis());
                return refuse(&mut writer, error_code::INVALID_SETUP, msg).await;
            }
            Ok(None) => return debug!("closed before SETUP"),
            Ok(Some(Err(e))) => return refuse(&mut writer, error_code::CONNECTION_ERROR, e.to_string()).await,
            Ok(Some(Ok(bytes))) => match Frame::decode(bytes) {
                Err(e) => return refuse(&mut writer, error_code::INVALID_SETUP, format!("malformed frame: {e}")).await,
                Ok(Frame { body: Body::Setup(setup), .. }) => setup,
                Ok(Frame { body: Body::Resume { .. }, .. }) => {
                    return refuse(&mut writer, error_code::REJECTED_RESUME, "resume is not supported".into()).await
                }
                Ok(other) => {
                    let msg = format!("first frame must be SETUP, got frame type 0x{:02x}", other.frame_type());
                    return refuse(&mut writer, error_code::INVALID_SETUP, msg).await;
                }
            },
        };
        if setup.major_version != 1 {
            let msg = format!(
                "RSocket version {}.{} is not supported; this server speaks 1.0",
                setup.major_version, setup.minor_version
            );
            return refuse(&mut writer, error_code::UNSUPPORTED_SETUP, msg).await;
        }
        if setup.lease {
            return refuse(&mut writer, error_code::UNSUPPORTED_SETUP, "lease is not supported".into()).await;
        }
        if setup.resume_token.is_some() {
            return refuse(&mut writer, error_code::UNSUPPORTED_SETUP, "resume is not supported".into()).await;
        }
        if let Some(wait) = gate.barred() {
            let msg = format!(
                "too many refused SETUPs from this address: try again in {} s",
                wait.as_secs_f64().ceil() as u64
            );
            return refuse(&mut writer, error_code::REJECTED_SETUP, msg).await;
        }
        if let Err(full) = gate.establish() {
            warn!(%full, "connection refused at SETUP: the server is full");
            return refuse(&mut writer, error_code::REJECTED_SETUP, format!("the server is full ({full})")).await;
        }
        // The client picks its lifetime; a huge one would let a vanished peer hold its place
        // for days.
        let lifetime = Duration::from_millis(u64::from(setup.max_lifetime)).min(config.max_keepalive_lifetime);
        let info = SetupInfo {
            major_version: setup.major_version,
            minor_version: setup.minor_version,
            keepalive_interval: Duration::from_millis(u64::from(setup.keepalive_interval)),
            max_lifetime: lifetime,
            metadata_mime: setup.metadata_mime,
            data_mime: setup.data_mime,
            payload: setup.payload,
            peer: peer.clone(),
        };
        let (shared, rx) = new_shared(Role::Server, peer.clone(), &config);
        let requester = Requester { shared: shared.clone() };
        let responder = match tokio::time::timeout(config.setup_timeout, acceptor.accept(info, requester)).await {
            Ok(Ok(responder)) => {
                gate.succeeded();
                responder
            }
            Ok(Err(e)) => {
                gate.failed();
                return refuse(&mut writer, e.code, e.message).await;
            }
            Err(_) => {
                let msg = "setup was not decided in time".to_string();
                return refuse(&mut writer, error_code::REJECTED_SETUP, msg).await;
            }
        };
        let writer_task = tokio::spawn(write_loop(writer, rx, shared.clone(), config.write_timeout).in_current_span());
        // If this future is dropped (server shutdown), the writer task and inbound tasks must end
        // too, or the socket would stay open with nobody reading it.
        let _shut_on_drop = ShutOnDrop(shared.clone());
        debug!("connection established");
        let running = Running {
            shared: shared.clone(),
            responder,
            inflight: Arc::new(Semaphore::new(config.max_inbound_requests.max(1))),
            config,
            fragments: HashMap::new(),
            fragment_bytes: 0,
            lifetime,
        };
        match running.run(reader).await {
            Ok(reason) => {
                debug!(%reason, "connection closed");
                close_with(&shared, writer_task, None, &reason).await;
            }
            Err(fatal) => {
                info!(code = error_code::name(fatal.code), message = %fatal.message, "closing connection on error");
                let reason = fatal.message.clone();
                close_with(&shared, writer_task, Some(fatal), &reason).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// What a client sends in SETUP.
#[derive(Debug, Clone, Default)]
pub struct SetupParams {
    pub metadata_mime: String,
    pub data_mime: String,
    pub payload: Payload,
}

/// Client role: sends SETUP over `io` and runs the connection in the background.
///
/// RSocket has no SETUP acknowledgement: a rejection arrives later as ERROR on stream 0 and shows up
/// as the connection closing, with the server's message in [`Requester::closed`].
pub async fn connect(
    io: FrameIo,
    params: SetupParams,
    responder: Arc<dyn Responder>,
    config: Config,
) -> Result<Requester, RequestError> {
    let FrameIo { reader, mut writer, peer } = io;
    let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(MAX_U31).clamp(1, MAX_U31);
    let setup = Frame::new(
        0,
        Body::Setup(Setup {
            major_version: 1,
            minor_version: 0,
            keepalive_interval: millis(config.keepalive_interval),
            max_lifetime: millis(config.max_lifetime),
            resume_token: None,
            lease: false,
            metadata_mime: params.metadata_mime,
            data_mime: params.data_mime,
            payload: params.payload,
        }),
    );
    writer.send(setup).await.map_err(|e| match e {
        TransportError::Encode(e) => RequestError::Encode(e.to_string()),
        other => RequestError::Closed(other.to_string()),
    })?;

    let (shared, rx) = new_shared(Role::Client, peer.clone(), &config);
    let span = tracing::info_span!("client", %peer);
    let writer_task =
        tokio::spawn(write_loop(writer, rx, shared.clone(), config.write_timeout).instrument(span.clone()));
    let keepalive_shared = shared.clone();
    let interval = config.keepalive_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let frame = Frame::new(0, Body::Keepalive { respond: true, last_position: 0, data: Bytes::new() });
            if keepalive_shared.send(frame).await.is_err() {
                break;
            }
        }
    });
    let running = Running {
        shared: shared.clone(),
        responder,
        inflight: Arc::new(Semaphore::new(config.max_inbound_requests.max(1))),
        lifetime: config.max_lifetime,
        config,
        fragments: HashMap::new(),
        fragment_bytes: 0,
    };
    let task_shared = shared.clone();
    tokio::spawn(
        async move {
            match running.run(reader).await {
                Ok(reason) => close_with(&task_shared, writer_task, None, &reason).await,
                Err(fatal) => {
                    let reason = fatal.message.clone();
                    close_with(&task_shared, writer_task, Some(fatal), &reason).await
                }
            }
        }
        .instrument(span),
    );
    Ok(Requester { shared })
}
