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

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use super::fragments::Reassembly;
use super::resume::{resumable, Attach, Registry};
use super::shared::{close_with, lock, InboundHandle, Outbound, Pending, Shared, WriterTask};
use super::writer::write_loop;
use super::{Config, Fatal, RemoteError, RequestError, Responder};
use crate::frame::{error_code, Body, Frame, MAX_U31};
use crate::payload::Payload;
use crate::transport::{FrameIo, FrameSink, FrameStream, TransportError};

/// Dials the server again for a RESUME (client role): a new transport, or why not.
pub type Redial = Arc<dyn Fn() -> super::BoxFuture<Result<FrameIo, String>> + Send + Sync>;

/// How a resumable session gets a new transport when it loses one.
pub(super) enum Reattach {
    /// Server: a RESUME naming this session arrives through the registry.
    Server { attach: mpsc::Receiver<Attach>, registry: Arc<Registry> },
    /// Client: dial again and send RESUME.
    Client { redial: Redial },
}

/// How one transport's reading ended.
enum End {
    /// The session is over (closed here, or the peer said so).
    Closed(String),
    Fatal(Fatal),
    /// The transport is gone; a resumable session waits for another.
    Lost(String),
    /// A RESUME for this session arrived on a new transport while this one still looked alive.
    Replaced(Attach),
}

/// The running connection: reader state plus the shared handle.
pub(super) struct Running {
    shared: Arc<Shared>,
    responder: Arc<dyn Responder>,
    config: Config,
    inflight: Arc<Semaphore>,
    fragments: Reassembly,
    /// Silence longer than this closes the connection (the peer's keepalive lifetime).
    lifetime: Duration,
    /// Set on a resumable session: how a lost transport is replaced.
    reattach: Option<Reattach>,
}

impl Running {
    pub(super) fn new(
        shared: Arc<Shared>,
        responder: Arc<dyn Responder>,
        config: Config,
        lifetime: Duration,
        reattach: Option<Reattach>,
    ) -> Self {
        Running {
            shared,
            responder,
            inflight: Arc::new(Semaphore::new(config.max_inbound_requests.max(1))),
            fragments: Reassembly::new(config.max_message_size, config.max_fragmented_streams),
            config,
            lifetime,
            reattach,
        }
    }

    /// Reads and handles frames until the connection ends, then closes it: a last ERROR when it
    /// ends on a fatal condition, the writer flushed, every pending request failed. A resumable
    /// session that loses its transport waits (`resume_window`) for another first.
    pub(super) async fn run_to_close(mut self, reader: FrameStream, writer: WriterTask, lost: CancellationToken) {
        let shared = self.shared.clone();
        let (mut reader, mut writer, mut lost) = (reader, writer, lost);
        let outcome = loop {
            let end = self.run(&mut reader, &lost).await;
            let replaced = match end {
                End::Lost(reason) if self.reattach.is_some() && !shared.closed.is_cancelled() => {
                    info!(%reason, "transport lost; waiting for the session to be resumed");
                    None
                }
                End::Replaced(attach) if !shared.closed.is_cancelled() => Some(attach),
                End::Lost(reason) | End::Closed(reason) => break Ok(reason),
                End::Replaced(_) => break Ok("closed".into()),
                End::Fatal(fatal) => break Err(fatal),
            };
            // Detach: the writer stops and hands the queue back; frames it had not written are
            // in the log and go again on the next transport.
            lost.cancel();
            let queue = match (&mut writer).await {
                Ok(Some(queue)) => queue,
                _ => {
                    writer = tokio::spawn(async { None }); // that one is done; close_with awaits this
                    break Ok("the writer ended with the transport".into());
                }
            };
            match self.reattach(queue, replaced).await {
                Ok((r, w, l)) => {
                    info!("session resumed on a new transport");
                    (reader, writer, lost) = (r, w, l);
                }
                Err(reason) => {
                    info!(%reason, "session not resumed; closing");
                    shared.shut(&reason);
                    self.forget();
                    return;
                }
            }
        };
        self.forget();
        match outcome {
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

    /// A session that ends can no longer be resumed.
    fn forget(&self) {
        if let (Some(Reattach::Server { registry, .. }), Some(resume)) = (&self.reattach, &self.shared.resume) {
            registry.remove(&resume.token);
        }
    }

    async fn run(&mut self, reader: &mut FrameStream, lost: &CancellationToken) -> End {
        let resumable_session = self.reattach.is_some();
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shared.closed.cancelled() => return End::Closed("closed".into()),
                _ = lost.cancelled() => return End::Lost("the transport failed".into()),
                attach = next_attach(&mut self.reattach) => return End::Replaced(attach),
                next = tokio::time::timeout(self.lifetime, reader.next()) => next,
            };
            let bytes = match next {
                Err(_) if resumable_session => {
                    return End::Lost(format!("no frame for {} ms", self.lifetime.as_millis()))
                }
                Err(_) => {
                    return End::Fatal(Fatal::connection(format!(
                        "no frame received for {} ms (keepalive lifetime)",
                        self.lifetime.as_millis()
                    )))
                }
                Ok(None) => return End::Lost("peer closed the connection".into()),
                Ok(Some(Err(TransportError::FrameTooLarge { size, max }))) => {
                    return End::Fatal(Fatal::connection(format!(
                        "frame of {size} bytes exceeds the limit of {max} bytes"
                    )))
                }
                Ok(Some(Err(TransportError::TextMessage))) => {
                    return End::Fatal(Fatal::connection("text websocket message: send frames as binary messages"))
                }
                Ok(Some(Err(e))) => return End::Lost(format!("transport error: {e}")),
                Ok(Some(Ok(bytes))) => bytes,
            };
            let len = bytes.len();
            let frame = match Frame::decode(bytes) {
                Ok(frame) => frame,
                Err(e) => return End::Fatal(Fatal::connection(format!("malformed frame: {e}"))),
            };
            if let Some(resume) = &self.shared.resume {
                if resumable(&frame) {
                    resume.received(len);
                }
            }
            match self.handle(frame).await {
                Ok(None) => {}
                Ok(Some(reason)) => return End::Closed(reason),
                Err(fatal) => return End::Fatal(fatal),
            }
        }
    }

    /// Gets the session a new transport (within `resume_window`), sends the peer what it missed,
    /// and starts that transport's writer on `queue`.
    async fn reattach(
        &mut self,
        queue: mpsc::Receiver<Outbound>,
        mut arrived: Option<Attach>,
    ) -> Result<(FrameStream, WriterTask, CancellationToken), String> {
        let Some(resume) = self.shared.resume.clone() else { return Err("not resumable".into()) };
        let deadline = tokio::time::Instant::now() + self.config.resume_window;
        let window = self.config.resume_window;
        let timeout = self.config.write_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.shared.closed.is_cancelled() {
                return Err("closed while detached".into());
            }
            let (io, replay) = match self.reattach.as_mut() {
                Some(Reattach::Server { attach, .. }) => {
                    let next = match arrived.take() {
                        Some(a) => Some(a),
                        None => tokio::select! {
                            a = attach.recv() => a,
                            _ = tokio::time::sleep_until(deadline) => None,
                            _ = self.shared.closed.cancelled() => None,
                        },
                    };
                    let Some(a) = next else {
                        return Err(format!("not resumed within {} s", window.as_secs()));
                    };
                    let mut writer = a.io.writer;
                    let refused = if a.first_available_client_position > resume.received_position() {
                        Some(format!(
                            "the client holds frames only from position {}, past the {} received",
                            a.first_available_client_position,
                            resume.received_position()
                        ))
                    } else {
                        resume.replay_from(a.last_received_server_position).err()
                    };
                    if let Some(why) = refused {
                        refuse(&mut writer, &why).await;
                        return Err(format!("resume refused: {why}"));
                    }
                    let ok =
                        Frame::new(0, Body::ResumeOk { last_received_client_position: resume.received_position() });
                    let replay = resume.replay_from(a.last_received_server_position)?;
                    let mut frames = vec![ok];
                    frames.extend(replay);
                    (FrameIo { reader: a.io.reader, writer, peer: a.io.peer }, frames)
                }
                Some(Reattach::Client { redial }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!("could not resume within {} s", window.as_secs()));
                    }
                    let dialled = tokio::time::timeout(self.config.setup_timeout, redial()).await;
                    let mut io = match dialled {
                        Ok(Ok(io)) => io,
                        Ok(Err(e)) => {
                            debug!(error = %e, "redial failed; trying again");
                            tokio::time::sleep(backoff.min(deadline - tokio::time::Instant::now())).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let frame = Frame::new(
                        0,
                        Body::Resume {
                            major_version: 1,
                            minor_version: 0,
                            token: resume.token.clone(),
                            last_received_server_position: resume.received_position(),
                            first_available_client_position: resume.first_available(),
                        },
                    );
                    if tokio::time::timeout(timeout, io.writer.send(frame)).await.map_or(true, |r| r.is_err()) {
                        continue;
                    }
                    let answer = tokio::time::timeout(self.config.setup_timeout, io.reader.next()).await;
                    let position = match answer.map(|a| a.map(|r| r.map(Frame::decode))) {
                        Ok(Some(Ok(Ok(Frame { body: Body::ResumeOk { last_received_client_position }, .. })))) => {
                            last_received_client_position
                        }
                        Ok(Some(Ok(Ok(Frame { body: Body::Error { code, data }, .. })))) => {
                            return Err(format!(
                                "the server refused to resume: {} ({code}): {}",
                                error_code::name(code),
                                String::from_utf8_lossy(&data)
                            ));
                        }
                        Ok(Some(Ok(Ok(other)))) => {
                            return Err(format!("the server answered RESUME with frame type {}", other.frame_type()))
                        }
                        _ => continue, // the new transport failed too: dial again
                    };
                    let replay = resume.replay_from(position)?;
                    (io, replay)
                }
                None => return Err("not resumable".into()),
            };
            let FrameIo { reader, mut writer, .. } = io;
            if write_all(&mut writer, replay, timeout).await.is_err() {
                continue; // lost again before it started: wait for (or dial) another
            }
            let lost = CancellationToken::new();
            let task =
                tokio::spawn(write_loop(writer, queue, self.shared.clone(), timeout, lost.clone()).in_current_span());
            return Ok((reader, task, lost));
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
            Body::Keepalive { respond, data, last_position } => {
                let mut mine = 0;
                if let Some(resume) = &self.shared.resume {
                    resume.acknowledged(last_position);
                    mine = resume.received_position();
                }
                if respond {
                    let reply = Frame::new(0, Body::Keepalive { respond: false, last_position: mine, data });
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
                return Err(Fatal::connection("RESUME and RESUME_OK belong before a connection runs, not on it"))
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

/// The next RESUME for this session (server role); never, otherwise.
async fn next_attach(reattach: &mut Option<Reattach>) -> Attach {
    match reattach {
        Some(Reattach::Server { attach, .. }) => match attach.recv().await {
            Some(a) => a,
            None => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

/// Tells a RESUME why it is refused, and closes that transport.
async fn refuse(writer: &mut FrameSink, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = writer.send(Frame::error(0, error_code::REJECTED_RESUME, why)).await;
        let _ = writer.close().await;
    })
    .await;
}

/// Writes `frames` and flushes, within `timeout` each.
async fn write_all(writer: &mut FrameSink, frames: Vec<Frame>, timeout: Duration) -> Result<(), ()> {
    for frame in frames {
        match tokio::time::timeout(timeout, writer.feed(frame)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
    }
    match tokio::time::timeout(timeout, writer.flush()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
