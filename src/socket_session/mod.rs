//! Socket sessions: the SETUP handshake of app and simulator sockets, authentication, and the per-socket
//! state every command runs with.
//!
//! Owns: decoding `AppConnectionMetadata`, checking org/app/API key or auth token, the socket's
//! modes (simulator, simplex) and registering notification-capable sockets with [`crate::notify`]
//! (server-initiated requests, or a REQUEST_STREAM subscription any app socket may open, simplex
//! or not, whose replies come back as `replyTo` requests).
//! Does not own what commands do (see [`crate::command`]) or how frames move (see `hodi_rsocket`).

use std::sync::Arc;

use bytes::Bytes;
use hodi_rsocket::{Acceptor, BoxFuture, BoxStream, Payload, RemoteError, Requester, Responder, SetupInfo};
use prost::Message;
use tracing::{info, warn, Instrument};

use crate::command::{AppCommand, SimulatorCommand};
use crate::context::Hodi;
use crate::notify::subscription::{NotificationStream, Subscription};
use crate::socket::{Credential, Session};
use crate::store::auth::TokenCheck;
use crate::wire::{AppConnectionMetadata, AppToServerCommand, ServerToAppNotificationReply, SimulatorToServerCommand};

/// Accepts or rejects SETUP frames against the store.
pub struct SessionAcceptor {
    hodi: Arc<Hodi>,
    /// Which listener's SETUPs these are (tls, tcp, ws, wss), for the sockets-by-listener gauge.
    listener: &'static str,
}

impl SessionAcceptor {
    pub fn new(hodi: Arc<Hodi>, listener: &'static str) -> Self {
        SessionAcceptor { hodi, listener }
    }
}

fn reject(message: impl Into<String>) -> RemoteError {
    RemoteError::new(hodi_rsocket::error_code::REJECTED_SETUP, message)
}

impl Acceptor for SessionAcceptor {
    fn accept(&self, setup: SetupInfo, requester: Requester) -> BoxFuture<Result<Arc<dyn Responder>, RemoteError>> {
        let hodi = self.hodi.clone();
        let listener = self.listener;
        Box::pin(async move {
            let meta = AppConnectionMetadata::decode(setup.payload.data.clone())
                .map_err(|e| reject(format!("SETUP data is not an AppConnectionMetadata: {e}")))?;
            let credential = authenticate(&hodi, &meta).await?;
            let session = Arc::new(Session {
                credential,
                connection_id: crate::store::new_id("conn_"),
                org_id: meta.org_id,
                app_id: meta.app_id,
                simulator: meta.simulator_mode,
                simplex: meta.simplex_mode,
                peer: setup.peer.clone(),
                requester,
            });
            let agent =
                setup.payload.metadata.as_ref().map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_default();
            info!(
                connection_id = %session.connection_id, org_id = %session.org_id, app_id = %session.app_id,
                simulator = session.simulator, simplex = session.simplex, %agent, "session started"
            );
            let kind = match (session.simulator, session.simplex) {
                (true, _) => "simulator",
                (false, true) => "simplex_app",
                (false, false) => "app",
            };
            on_close(&hodi, &session, crate::metrics::session_opened(kind, listener));
            close_when_token_expires(&hodi, &session);
            // Simulator sockets set simplex (the SDK does) yet are the customer's side: they always
            // receive what apps send to customers. App sockets receive notifications unless simplex.
            if session.simulator {
                hodi.simulators.register(session.clone());
            } else if !session.simplex {
                hodi.sockets.register(session.clone());
            }
            let responder: Arc<dyn Responder> = if session.simulator {
                Arc::new(SimulatorResponder { hodi, session })
            } else {
                Arc::new(AppResponder { hodi, session })
            };
            Ok(responder)
        })
    }
}

/// When the socket closes: it is counted closed, and its app-data leases end (they belong to the
/// socket that took them), so another socket is not refused for the rest of a lease nobody holds.
/// Until then, it is closed if an operator disables its app.
fn on_close(hodi: &Arc<Hodi>, session: &Arc<Session>, open: crate::metrics::Active) {
    let (hodi, session) = (hodi.clone(), session.clone());
    let mut disabled = hodi.disabled_apps.subscribe();
    // Disabled between its SETUP's check and now: the value already there counts too.
    disabled.mark_changed();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = session.requester.closed() => break,
                changed = disabled.changed() => {
                    if changed.is_err() {
                        session.requester.closed().await;
                        break;
                    }
                    if disabled.borrow_and_update().contains(&session.app_id) {
                        info!(connection_id = %session.connection_id, app_id = %session.app_id, "closing: the app was disabled");
                        session.requester.close_with(
                            hodi_rsocket::error_code::CONNECTION_CLOSE,
                            &format!("app {} was disabled by the operator", session.app_id),
                        );
                    }
                }
            }
        }
        drop(open);
        match hodi.store.release_leases(&session.connection_id).await {
            Ok(0) => {}
            Ok(n) => {
                info!(connection_id = %session.connection_id, leases = n, "released the closed socket's app-data leases")
            }
            Err(e) => warn!(connection_id = %session.connection_id, error = %e, "releasing a closed socket's leases"),
        }
    });
}

/// How often the disabled apps are read from the store.
const DISABLED_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the disabled apps every [`DISABLED_EVERY`] (on any node: the CLI writes the store) and
/// publishes a change to every open socket's watcher, until `shutdown`.
pub fn watch_disabled_apps(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DISABLED_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match hodi.store.disabled_apps().await {
                Ok(apps) => {
                    let now: std::collections::HashSet<String> = apps.into_iter().collect();
                    hodi.disabled_apps.send_if_modified(|current| {
                        let changed = **current != now;
                        if changed {
                            *current = Arc::new(now);
                        }
                        changed
                    });
                }
                Err(e) => warn!(error = %e, "reading disabled apps"),
            }
        }
    });
}

/// What every SETUP with a wrong org, app, API key or token is told, whichever it was: different
/// answers would let anyone list which org and app ids exist. The log says which it was.
pub const CREDENTIALS_REFUSED: &str =
    "authentication failed: the org id, app id and API key or auth token do not match (the server log says why)";

async fn authenticate(hodi: &Hodi, meta: &AppConnectionMetadata) -> Result<Credential, RemoteError> {
    let internal = |e: anyhow::Error| {
        warn!(error = %e, "store error during SETUP");
        reject("server error while checking credentials; try again")
    };
    let refused = |why: String| {
        info!(org_id = %meta.org_id, app_id = %meta.app_id, reason = %why, "credentials refused");
        metrics::counter!(crate::metrics::SETUPS_REFUSED).increment(1);
        reject(CREDENTIALS_REFUSED)
    };
    if meta.org_id.is_empty() {
        return Err(reject("SETUP is missing org_id"));
    }
    if meta.app_id.is_empty() {
        return Err(reject("SETUP is missing app_id"));
    }
    if meta.auth_token.is_none() && meta.api_key.is_none() {
        return Err(reject("SETUP needs an api_key or an auth_token"));
    }
    if !hodi.store.org_exists(&meta.org_id).await.map_err(internal)? {
        return Err(refused("unknown org id".into()));
    }
    let Some(disabled) = hodi.store.app_state(&meta.org_id, &meta.app_id).await.map_err(internal)? else {
        return Err(refused("unknown app id in this org".into()));
    };
    let credential = check_credential(hodi, meta, &internal, &refused).await?;
    // Told only to a peer with valid credentials: others learn nothing about the app.
    if disabled {
        info!(org_id = %meta.org_id, app_id = %meta.app_id, "SETUP refused: the app is disabled");
        return Err(reject(format!("app {} is disabled by the operator (hodi app enable)", meta.app_id)));
    }
    Ok(credential)
}

async fn check_credential(
    hodi: &Hodi,
    meta: &AppConnectionMetadata,
    internal: &impl Fn(anyhow::Error) -> RemoteError,
    refused: &impl Fn(String) -> RemoteError,
) -> Result<Credential, RemoteError> {
    match (&meta.auth_token, &meta.api_key) {
        (Some(token), _) => {
            match hodi.store.check_auth_token(&meta.org_id, &meta.app_id, token).await.map_err(internal)? {
                TokenCheck::Valid { expires_at } => Ok(Credential::Token { expires_at }),
                TokenCheck::Expired(at) => {
                    Err(refused(format!("auth token expired {} ms ago", crate::store::now_ms() - at)))
                }
                TokenCheck::Unknown => Err(refused("unknown auth token for this org and app".into())),
            }
        }
        (None, Some(key)) => {
            if hodi.store.api_key_valid(&meta.org_id, key).await.map_err(internal)? {
                Ok(Credential::ApiKey)
            } else {
                Err(refused("wrong API key for this org".into()))
            }
        }
        (None, None) => Err(reject("SETUP needs an api_key or an auth_token")),
    }
}

/// A socket that came in on a token lasts no longer than the token (plus `auth.token_grace_secs`,
/// so that work in flight as it expires can finish): then it is closed with CONNECTION_CLOSE and
/// must set up again, which needs a new token (from a socket with an API key).
fn close_when_token_expires(hodi: &Arc<Hodi>, session: &Arc<Session>) {
    let Credential::Token { expires_at } = session.credential else { return };
    let grace_ms = crate::store::secs_to_ms(hodi.config.auth.token_grace_secs);
    let left = expires_at.saturating_add(grace_ms).saturating_sub(crate::store::now_ms()).max(0);
    let session = session.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(left as u64)) => {
                info!(connection_id = %session.connection_id, "auth token expired; closing its socket");
                session.requester.close_with(
                    hodi_rsocket::error_code::CONNECTION_CLOSE,
                    "the auth token this socket set up with has expired; set up again with a new one",
                );
            }
            _ = session.requester.closed() => {}
        }
    });
}

/// Commands from an app socket.
struct AppResponder {
    hodi: Arc<Hodi>,
    session: Arc<Session>,
}

impl Responder for AppResponder {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let hodi = self.hodi.clone();
        let session = self.session.clone();
        let span = tracing::info_span!("app_command", connection_id = %session.connection_id, app_id = %session.app_id);
        if let Some(id) = crate::notify::subscription::reply_to(&payload) {
            return Box::pin(async move { answer_notification(&hodi, &session, &id, payload.data) }.instrument(span));
        }
        Box::pin(
            async move {
                let started = std::time::Instant::now();
                let raw = AppToServerCommand::decode(payload.data.clone())
                    .map_err(|e| RemoteError::invalid(format!("request data is not an AppToServerCommand: {e}")))?;
                // hodi-sdk proves a connection with an empty request: told apart from bad ones.
                let name = if payload.data.is_empty() { "empty" } else { crate::command::name(&raw) };
                let reply = match AppCommand::from_proto(raw, &payload.data) {
                    Ok(command) => command.apply(&hodi, &session).await,
                    Err(e) => Err(e),
                };
                crate::metrics::command("app", name, started.elapsed(), reply.is_ok());
                Ok(Payload::new(Bytes::from(reply?.encode_to_vec())))
            }
            .instrument(span),
        )
    }

    /// The notification subscription (see [`crate::notify::subscription`]).
    fn request_stream(&self, payload: Payload) -> BoxStream<Result<Payload, RemoteError>> {
        match self.subscribe(payload) {
            Ok(stream) => Box::pin(stream),
            Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })),
        }
    }
}

impl AppResponder {
    fn subscribe(&self, payload: Payload) -> Result<NotificationStream, RemoteError> {
        crate::notify::subscription::is_subscribe_request(&payload)?;
        let (sub, stream) = Subscription::open(self.hodi.sockets.connected.clone());
        self.hodi.sockets.subscribe(&self.session, sub).map_err(RemoteError::rejected)?;
        info!(connection_id = %self.session.connection_id, app_id = %self.session.app_id, "notification subscription opened");
        let (hodi, session) = (self.hodi.clone(), self.session.clone());
        Ok(stream.on_drop(move || {
            info!(connection_id = %session.connection_id, "notification subscription ended");
            hodi.sockets.unsubscribe(&session);
        }))
    }
}

/// An app's answer to a notification it received on its subscription.
fn answer_notification(hodi: &Hodi, session: &Session, id: &str, data: Bytes) -> Result<Payload, RemoteError> {
    let reply = ServerToAppNotificationReply::decode(data)
        .map_err(|e| RemoteError::invalid(format!("a replyTo request needs a ServerToAppNotificationReply: {e}")))?;
    let taken = hodi.sockets.subscription(session).is_some_and(|sub| sub.answer(id, reply));
    if taken {
        Ok(Payload::default())
    } else {
        Err(RemoteError::rejected(format!(
            "no notification {id:?} awaits a reply on this socket (unknown, already answered, or timed out and queued again)"
        )))
    }
}

/// Commands from a simulator socket.
struct SimulatorResponder {
    hodi: Arc<Hodi>,
    session: Arc<Session>,
}

impl Responder for SimulatorResponder {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let hodi = self.hodi.clone();
        let session = self.session.clone();
        let span = tracing::info_span!("simulator_command", connection_id = %session.connection_id);
        Box::pin(
            async move {
                let empty = payload.data.is_empty();
                let raw = SimulatorToServerCommand::decode(payload.data).map_err(|e| {
                    RemoteError::invalid(format!("request data is not a SimulatorToServerCommand: {e}"))
                })?;
                let started = std::time::Instant::now();
                let name = if empty { "empty" } else { crate::command::simulator_command_name(&raw) };
                let reply = match SimulatorCommand::from_proto(raw) {
                    Ok(command) => command.apply(&hodi, &session).await,
                    Err(e) => Err(e),
                };
                crate::metrics::command("simulator", name, started.elapsed(), reply.is_ok());
                Ok(Payload::new(Bytes::from(reply?.encode_to_vec())))
            }
            .instrument(span),
        )
    }
}
