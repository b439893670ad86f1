//! Getting a connection to `Running`: the server's `AwaitingSetup` and `Accepting` states, and the
//! client's SETUP. [`serve`] and [`connect`] are the two entry points of the crate's connections.
//!
//! Owns what a SETUP must be (version 1.x, no lease; resume only where the server keeps a
//! [`Registry`]), where a RESUME goes, the admission gate's decisions
//! (per-address back-off, the established budget), the setup timeout, and the keepalive lifetime
//! clamp. Each state is a type consumed by the next, so a connection cannot run without an
//! accepted SETUP: `AwaitingSetup::read` → `Accepting::accept` → `Running`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::engine::{Reattach, Redial, Running};
use super::requester::Requester;
use super::resume::{Attach, Registry, ResumeState};
use super::shared::{new_shared, Role, ShutOnDrop};
use super::writer::write_loop;
use super::{Acceptor, Config, RequestError, Responder, SetupInfo};
use crate::admission::Gate;
use crate::frame::{error_code, Body, Frame, Setup, MAX_U31};
use crate::payload::Payload;
use crate::transport::{FrameIo, FrameSink, TransportError};

/// Server role, first state: a connection whose first frame must be a SETUP this server speaks.
struct AwaitingSetup {
    io: FrameIo,
    config: Config,
    gate: Gate,
}

/// Server role, second state: a valid SETUP from an address the gate let in, waiting for the
/// [`Acceptor`] to decide.
struct Accepting {
    io: FrameIo,
    config: Config,
    gate: Gate,
    info: SetupInfo,
    /// The SETUP asked for a resumable session with this token (and this server keeps them).
    resume_token: Option<Bytes>,
}

/// Where a first frame leads.
enum Next {
    /// A SETUP, to be accepted or refused (boxed: a connection moves it once).
    Setup(Box<Accepting>),
    /// A RESUME, handed to the session it names; this connection's task is done.
    Resumed,
}

/// A connection that ends before it runs: the ERROR to send it, or none (the peer left first).
/// It keeps its admission place until the ERROR is sent, so refused peers that do not read are
/// still counted.
struct Refused {
    writer: FrameSink,
    error: Option<(u32, String)>,
    _gate: Gate,
}

impl Refused {
    async fn send(mut self) {
        let Some((code, message)) = self.error else { return debug!("closed before SETUP") };
        info!(code = error_code::name(code), %message, "setup refused");
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.writer.send(Frame::error(0, code, &message)).await;
            let _ = self.writer.close().await;
        })
        .await;
    }
}

impl AwaitingSetup {
    fn refuse(self, code: u32, message: String) -> Refused {
        Refused { writer: self.io.writer, error: Some((code, message)), _gate: self.gate }
    }

    /// Reads the first frame: a SETUP we speak, from an address allowed in, moves on to `Accepting`;
    /// a RESUME goes to its session.
    async fn read(mut self) -> Result<Next, Refused> {
        let first = tokio::time::timeout(self.config.setup_timeout, self.io.reader.next()).await;
        let setup: Setup = match first {
            Err(_) => {
                let msg = format!("no SETUP within {} ms", self.config.setup_timeout.as_millis());
                return Err(self.refuse(error_code::INVALID_SETUP, msg));
            }
            Ok(None) => return Err(Refused { writer: self.io.writer, error: None, _gate: self.gate }),
            Ok(Some(Err(e))) => return Err(self.refuse(error_code::CONNECTION_ERROR, e.to_string())),
            Ok(Some(Ok(bytes))) => match Frame::decode(bytes) {
                Err(e) => return Err(self.refuse(error_code::INVALID_SETUP, format!("malformed frame: {e}"))),
                Ok(Frame { body: Body::Setup(setup), .. }) => setup,
                Ok(Frame {
                    body: Body::Resume { token, last_received_server_position, first_available_client_position, .. },
                    ..
                }) => {
                    let positions = (last_received_server_position, first_available_client_position);
                    return self.resume(token, positions).map_err(|refused| *refused);
                }
                Ok(other) => {
                    let msg = format!("first frame must be SETUP, got frame type 0x{:02x}", other.frame_type());
                    return Err(self.refuse(error_code::INVALID_SETUP, msg));
                }
            },
        };
        if setup.major_version != 1 {
            let msg = format!(
                "RSocket version {}.{} is not supported; this server speaks 1.0",
                setup.major_version, setup.minor_version
            );
            return Err(self.refuse(error_code::UNSUPPORTED_SETUP, msg));
        }
        if setup.lease {
            return Err(self.refuse(error_code::UNSUPPORTED_SETUP, "lease is not supported".into()));
        }
        if setup.resume_token.is_some() && self.config.resume.is_none() {
            return Err(self.refuse(error_code::UNSUPPORTED_SETUP, "resume is not enabled on this server".into()));
        }
        if setup.resume_token.as_ref().is_some_and(|t| t.len() < MIN_TOKEN) {
            let msg = format!("a resume token must be at least {MIN_TOKEN} bytes (it is the session's key)");
            return Err(self.refuse(error_code::INVALID_SETUP, msg));
        }
        if let Some(wait) = self.gate.barred() {
            let msg = format!(
                "too many refused SETUPs from this address: try again in {} s",
                wait.as_secs_f64().ceil() as u64
            );
            return Err(self.refuse(error_code::REJECTED_SETUP, msg));
        }
        if let Err(full) = self.gate.establish() {
            warn!(%full, "connection refused at SETUP: the server is full");
            return Err(self.refuse(error_code::REJECTED_SETUP, format!("the server is full ({full})")));
        }
        // The client picks its lifetime; a huge one would let a vanished peer hold its place
        // for days.
        let lifetime = Duration::from_millis(u64::from(setup.max_lifetime)).min(self.config.max_keepalive_lifetime);
        let info = SetupInfo {
            major_version: setup.major_version,
            minor_version: setup.minor_version,
            keepalive_interval: Duration::from_millis(u64::from(setup.keepalive_interval)),
            max_lifetime: lifetime,
            metadata_mime: setup.metadata_mime,
            data_mime: setup.data_mime,
            payload: setup.payload,
            peer: self.io.peer.clone(),
        };
        let resume_token = setup.resume_token;
        Ok(Next::Setup(Box::new(Accepting { io: self.io, config: self.config, gate: self.gate, info, resume_token })))
    }

    /// Hands a RESUME's transport to the detached (or about to be) session it names.
    fn resume(self, token: Bytes, (server, client): (u64, u64)) -> Result<Next, Box<Refused>> {
        let Some(registry) = self.config.resume.clone() else {
            return Err(Box::new(
                self.refuse(error_code::REJECTED_RESUME, "resume is not enabled on this server".into()),
            ));
        };
        if let Some(wait) = self.gate.barred() {
            let msg = format!("too many refused SETUPs from this address: try again in {} s", wait.as_secs());
            return Err(Box::new(self.refuse(error_code::REJECTED_RESUME, msg)));
        }
        let Some(session) = registry.find(&token) else {
            // Counted like a refused SETUP: guessing tokens from one address is soon barred.
            self.gate.failed();
            let msg = "no session to resume with this token (unknown, or its window has passed)".to_string();
            return Err(Box::new(self.refuse(error_code::REJECTED_RESUME, msg)));
        };
        let attach =
            Attach { io: self.io, last_received_server_position: server, first_available_client_position: client };
        match session.try_send(attach) {
            Ok(()) => {
                info!("RESUME handed to its session");
                Ok(Next::Resumed)
            }
            Err(e) => {
                let attach = e.into_inner();
                let refused = Refused {
                    writer: attach.io.writer,
                    error: Some((error_code::REJECTED_RESUME, "a resume of this session is already under way".into())),
                    _gate: self.gate,
                };
                Err(Box::new(refused))
            }
        }
    }
}

impl Accepting {
    /// Asks the acceptor, within the setup timeout; accepted, the connection runs to its end.
    async fn accept(self, acceptor: &dyn Acceptor) -> Result<(), Refused> {
        let FrameIo { reader, writer, peer } = self.io;
        let lifetime = self.info.max_lifetime;
        // A resumable session is registered before the acceptor runs: a token in use is refused.
        let (resume, reattach) = match (&self.resume_token, &self.config.resume) {
            (Some(token), Some(registry)) => {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                if let Err(why) = registry.insert(token, tx) {
                    return Err(Refused {
                        writer,
                        error: Some((error_code::REJECTED_SETUP, why.into())),
                        _gate: self.gate,
                    });
                }
                let state = ResumeState::new(token.clone(), self.config.resume_buffer_bytes);
                (Some(state), Some(Reattach::Server { attach: rx, registry: registry.clone() }))
            }
            _ => (None, None),
        };
        let forget = |registry: &Option<Arc<Registry>>| {
            if let (Some(token), Some(registry)) = (&self.resume_token, registry) {
                registry.remove(token);
            }
        };
        let (shared, queue) = new_shared(Role::Server, peer, &self.config, resume);
        let requester = Requester::new(shared.clone());
        let responder =
            match tokio::time::timeout(self.config.setup_timeout, acceptor.accept(self.info, requester)).await {
                Ok(Ok(responder)) => {
                    self.gate.succeeded();
                    responder
                }
                Ok(Err(e)) => {
                    forget(&self.config.resume);
                    self.gate.failed();
                    return Err(Refused { writer, error: Some((e.code, e.message)), _gate: self.gate });
                }
                Err(_) => {
                    forget(&self.config.resume);
                    let msg = "setup was not decided in time".to_string();
                    return Err(Refused { writer, error: Some((error_code::REJECTED_SETUP, msg)), _gate: self.gate });
                }
            };
        let lost = CancellationToken::new();
        let writer_task = tokio::spawn(
            write_loop(writer, queue, shared.clone(), self.config.write_timeout, lost.clone()).in_current_span(),
        );
        // If this future is dropped (server shutdown), the writer task and inbound tasks must end
        // too, or the socket would stay open with nobody reading it. The gate is held (and so the
        // connection's place) until then.
        let _shut_on_drop = ShutOnDrop(shared.clone());
        let _gate = self.gate;
        debug!("connection established");
        Running::new(shared, responder, self.config, lifetime, reattach).run_to_close(reader, writer_task, lost).await;
        Ok(())
    }
}

/// Server role: runs one accepted connection to its end. `gate` holds its pending place until
/// SETUP arrives, then an established one (or the SETUP is refused: the server is full).
pub async fn serve(io: FrameIo, acceptor: Arc<dyn Acceptor>, config: Config, gate: Gate) {
    let span = tracing::info_span!("conn", peer = %io.peer);
    async move {
        let refused = match (AwaitingSetup { io, config, gate }).read().await {
            Ok(Next::Setup(accepting)) => accepting.accept(acceptor.as_ref()).await,
            Ok(Next::Resumed) => Ok(()),
            Err(refused) => Err(refused),
        };
        if let Err(refused) = refused {
            refused.send().await;
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
    /// Ask for a resumable session: the token (random, at least 16 bytes: it is the session's
    /// key) and how to reach the server again.
    pub resume: Option<ClientResume>,
}

/// A client's side of resumption.
#[derive(Clone)]
pub struct ClientResume {
    pub token: Bytes,
    pub redial: Redial,
}

impl std::fmt::Debug for ClientResume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientResume").field("token_bytes", &self.token.len()).finish()
    }
}

/// Resume tokens shorter than this are refused: a token is all a RESUME needs.
pub const MIN_TOKEN: usize = 16;

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
            resume_token: params.resume.as_ref().map(|r| r.token.clone()),
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

    let resume = params.resume.as_ref().map(|r| ResumeState::new(r.token.clone(), config.resume_buffer_bytes));
    let reattach = params.resume.map(|r| Reattach::Client { redial: r.redial });
    let (shared, queue) = new_shared(Role::Client, peer.clone(), &config, resume);
    let span = tracing::info_span!("client", %peer);
    let lost = CancellationToken::new();
    let writer_task = tokio::spawn(
        write_loop(writer, queue, shared.clone(), config.write_timeout, lost.clone()).instrument(span.clone()),
    );
    let keepalive_shared = shared.clone();
    let interval = config.keepalive_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let last_position = keepalive_shared.resume.as_ref().map_or(0, |r| r.received_position());
            let frame = Frame::new(0, Body::Keepalive { respond: true, last_position, data: Bytes::new() });
            if keepalive_shared.send(frame).await.is_err() {
                break;
            }
        }
    });
    let lifetime = config.max_lifetime;
    let running = Running::new(shared.clone(), responder, config, lifetime, reattach);
    tokio::spawn(running.run_to_close(reader, writer_task, lost).instrument(span));
    Ok(Requester::new(shared))
}
