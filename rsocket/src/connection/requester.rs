//! [`Requester`]: this side's requests towards the peer (REQUEST_RESPONSE, REQUEST_STREAM with
//! credit, FNF, METADATA_PUSH) and the handles that wait for their answers.
//!
//! Owns the requester's side of a stream: registering it, sending its first frame, CANCEL when the
//! caller stops waiting, REQUEST_N as a stream is consumed. Answers are routed here by the engine
//! through the pending table in [`super::shared`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::shared::{lock, Outbound, Pending, Shared};
use super::RequestError;
use crate::frame::{Body, Frame};
use crate::payload::Payload;

/// A handle to one connection, for requests towards the peer. Cheap to clone.
#[derive(Clone)]
pub struct Requester {
    shared: Arc<Shared>,
}

impl Requester {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Requester { shared }
    }
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
    /// A resumable session says so first (ERROR CONNECTION_CLOSE on stream 0), so that the peer
    /// ends it rather than keep it for a resume that will not come.
    pub fn close(&self) {
        if self.shared.resume.is_some() {
            self.shared.control(Frame::error(0, crate::frame::error_code::CONNECTION_CLOSE, "closed by the peer"));
        }
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
