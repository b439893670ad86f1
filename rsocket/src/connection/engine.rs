//! `Running`: the reader of an established connection, and the rules of RSocket's streams.
//!
//! Owns what happens to each frame the peer sends once SETUP is accepted: reassembly (through
//! [`super::fragments`]), new requests handed to the [`Responder`] (answered inline when ready at
//! once, else in a task that CANCEL aborts, at most `max_inbound_requests` at a time), REQUEST_N
//! credit for our streams, answers routed to our pending requests, KEEPALIVE echoes, and the
//! keepalive lifetime. Writes only by queueing frames on [`Shared`]; the writer task sends them.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tracing::{debug, info};

use super::fragments::Reassembly;
use super::shared::{close_with, lock, InboundHandle, Pending, Shared};
use super::{Config, Fatal, RemoteError, RequestError, Responder};
use crate::frame::{error_code, Body, Frame, MAX_U31};
use crate::payload::Payload;
use crate::transport::{FrameStream, TransportError};

/// The running connection: reader state plus the shared handle.
pub(super) struct Running {
    shared: Arc<Shared>,
    responder: Arc<dyn Responder>,
    config: Config,
    inflight: Arc<Semaphore>,
    fragments: Reassembly,
    /// Silence longer than this closes the connection (the peer's keepalive lifetime).
    lifetime: Duration,
}

impl Running {
    pub(super) fn new(shared: Arc<Shared>, responder: Arc<dyn Responder>, config: Config, lifetime: Duration) -> Self {
        Running {
            shared,
            responder,
            inflight: Arc::new(Semaphore::new(config.max_inbound_requests.max(1))),
            fragments: Reassembly::new(config.max_message_size, config.max_fragmented_streams),
            config,
            lifetime,
        }
    }

    /// Reads and handles frames until the connection ends, then closes it: a last ERROR when it
    /// ends on a fatal condition, the writer flushed, every pending request failed.
    pub(super) async fn run_to_close(self, reader: FrameStream, writer: tokio::task::JoinHandle<()>) {
        let shared = self.shared.clone();
        match self.run(reader).await {
            Ok(reason) => {
                debug!(%reason, "connection closed");
                close_with(&shared, writer, None, &reason).await;
            }
            Err(fatal) => {
                info!(code = error_code::name(fatal.code), message = %fatal.message, "closing connection on error");
                let reason = fatal.message.clone();
                close_with(&shared, writer, Some(fatal), &reason).await;
            }
        }
    }

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
        if self.fragments.passes_through(&frame.body) {
            return self.dispatch(id, frame.body).await;
        }
        match self.fragments.take(id, frame.body)? {
            Some(body) => self.dispatch(id, body).await,
            None => Ok(None),
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
