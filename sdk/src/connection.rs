//! One socket kept open: dialling, the SETUP handshake, connection events and reconnection with
//! backoff. Shared by [`crate::Elarian`] and [`crate::Simulator`].
//!
//! Owns the socket's life; does not own what is said on it. A command asks [`Link::requester`] for
//! the live connection and waits (bounded) while the link reconnects; a command in flight when the
//! connection drops fails with [`Error::Interrupted`] — never retried behind the caller's back,
//! because it may already have been applied.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{Payload, RequestError, Requester, Responder, SetupParams};
use hodi_wire::AppConnectionMetadata;
use prost::Message;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::options::{Credentials, Endpoint, Options};
use crate::{Error, Result};

/// Connection events, in the order the spec names them.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    /// Created, not dialled yet.
    Pending,
    Connecting,
    Connected,
    /// The connection closed; the link reconnects unless it was disconnected or rejected.
    Closed(String),
    Error(Error),
}

/// Where the link is now.
#[derive(Clone)]
pub(crate) enum State {
    Pending,
    Connecting,
    Connected(Requester),
    /// Final: disconnected, or the server rejected the credentials.
    Closed(Error),
}

/// Called with each new connection (opens the notification subscription).
pub(crate) type OnConnected = Arc<dyn Fn(Requester) + Send + Sync>;

/// One kept-open socket.
pub(crate) struct Link {
    state: watch::Sender<State>,
    events: broadcast::Sender<ConnectionEvent>,
    options: Options,
    /// Why the latest attempt to connect failed, for commands that give up waiting.
    last_failure: std::sync::Mutex<Option<String>>,
}

impl Link {
    /// Starts connecting in the background at once.
    pub(crate) fn start(
        options: Options,
        simulator: bool,
        responder: Arc<dyn Responder>,
        on_connected: Option<OnConnected>,
    ) -> Arc<Link> {
        let (state, _) = watch::channel(State::Pending);
        let (events, _) = broadcast::channel(64);
        let link = Arc::new(Link { state, events, options, last_failure: Default::default() });
        let _ = link.events.send(ConnectionEvent::Pending);
        tokio::spawn(supervise(link.clone(), simulator, responder, on_connected));
        link
    }

    /// Connection events from now on (a slow reader skips ahead rather than holding the link up).
    pub(crate) fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: ConnectionEvent) {
        let _ = self.events.send(event);
    }

    /// The live connection, waiting up to the command timeout while (re)connecting.
    pub(crate) async fn requester(&self) -> Result<Requester> {
        self.wait_for(self.options.command_timeout, |state| match state {
            State::Connected(r) if !r.is_closed() => Some(Ok(r.clone())),
            State::Closed(e) => Some(Err(e.clone())),
            _ => None,
        })
        .await
    }

    /// Waits until connected (or finally closed), up to `wait`.
    pub(crate) async fn wait_connected(&self, wait: Duration) -> Result<()> {
        self.wait_for(wait, |state| match state {
            State::Connected(_) => Some(Ok(())),
            State::Closed(e) => Some(Err(e.clone())),
            _ => None,
        })
        .await
    }

    /// Watches the state until `pick` decides, up to `wait` ([`Error::NotConnected`] after).
    async fn wait_for<T>(&self, wait: Duration, pick: impl Fn(&State) -> Option<Result<T>>) -> Result<T> {
        let mut rx = self.state.subscribe();
        let found = tokio::time::timeout(wait, async {
            loop {
                if let Some(decided) = pick(&rx.borrow_and_update()) {
                    return decided;
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Closed("client dropped".into()));
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let why = self.last_failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let endpoint = format!("{:?}", self.options.endpoint);
            Err(Error::NotConnected { waited: wait, endpoint, why: why.unwrap_or_else(|| "still connecting".into()) })
        })
    }

    /// One request/response on the live connection, errors mapped to [`Error`].
    pub(crate) async fn request(&self, payload: Payload) -> Result<Payload> {
        let requester = self.requester().await?;
        Ok(requester.request_response(payload).await?)
    }

    /// Closes for good: pending and future commands fail with [`Error::Closed`].
    pub(crate) fn close(&self) {
        let previous = self.state.send_replace(State::Closed(Error::Closed("disconnected".into())));
        if let State::Connected(r) = previous {
            r.close();
        }
    }

    fn closed_for_good(&self) -> bool {
        matches!(&*self.state.borrow(), State::Closed(_))
    }

    /// Moves to `next` unless the link was closed meanwhile (closing wins).
    fn set(&self, next: State) -> bool {
        let mut applied = false;
        self.state.send_if_modified(|s| {
            if matches!(s, State::Closed(_)) {
                return false;
            }
            *s = next.clone();
            applied = true;
            true
        });
        applied
    }
}

/// Dials, reconnects with backoff, and stops when closed or rejected.
async fn supervise(link: Arc<Link>, simulator: bool, responder: Arc<dyn Responder>, on_connected: Option<OnConnected>) {
    let mut delay = link.options.backoff.initial;
    loop {
        if link.closed_for_good() {
            return;
        }
        link.set(State::Connecting);
        link.emit(ConnectionEvent::Connecting);
        match dial(&link.options, simulator, responder.clone()).await {
            Ok(requester) => {
                if !link.set(State::Connected(requester.clone())) {
                    requester.close();
                    return;
                }
                delay = link.options.backoff.initial;
                info!(endpoint = ?link.options.endpoint, simulator, "connected");
                link.emit(ConnectionEvent::Connected);
                if let Some(f) = &on_connected {
                    f(requester.clone());
                }
                let reason = requester.closed().await;
                if link.closed_for_good() {
                    link.emit(ConnectionEvent::Closed(reason));
                    return;
                }
                warn!(%reason, "connection lost; reconnecting");
                link.emit(ConnectionEvent::Closed(reason));
            }
            Err(Error::Rejected(why)) => {
                warn!(%why, "the server rejected the connection; not retrying");
                link.set(State::Closed(Error::Rejected(why.clone())));
                link.emit(ConnectionEvent::Error(Error::Rejected(why)));
                return;
            }
            Err(e) => {
                debug!(error = %e, ?delay, "connect failed; retrying");
                *link.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                link.emit(ConnectionEvent::Error(e));
            }
        }
        let mut state = link.state.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Disconnected while waiting: stop now rather than after the backoff.
            _ = state.wait_for(|s| matches!(s, State::Closed(_))) => return,
        }
        delay = link.options.backoff.after(delay);
    }
}

/// A new transport to the endpoint: TCP, then TLS and the WebSocket upgrade as it says.
async fn transport(options: &Options, max: usize) -> Result<hodi_rsocket::transport::FrameIo> {
    let address = options.endpoint.address()?;
    let tcp = tokio::time::timeout(SETUP_WAIT, tokio::net::TcpStream::connect(&address))
        .await
        .map_err(|_| Error::Connect(format!("{address}: no answer in {SETUP_WAIT:?}")))?
        .map_err(|e| Error::Connect(format!("{address}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let ws = |e: hodi_rsocket::transport::TransportError| Error::Connect(e.to_string());
    Ok(match &options.endpoint {
        Endpoint::Tcp(_) => hodi_rsocket::transport::length_prefixed::frame_io(tcp, max, address),
        Endpoint::WebSocket(url) => {
            hodi_rsocket::transport::websocket::connect(url, tcp, max, address).await.map_err(ws)?
        }
        Endpoint::Tls(_) => {
            let tls = tls_handshake(options, tcp).await?;
            hodi_rsocket::transport::length_prefixed::frame_io(tls, max, address)
        }
        Endpoint::SecureWebSocket(url) => {
            let tls = tls_handshake(options, tcp).await?;
            hodi_rsocket::transport::websocket::connect(url, tls, max, address).await.map_err(ws)?
        }
    })
}

/// A resume token: 16 random bytes from the operating system (through rustls' provider), the
/// session's key should a connection drop.
fn resume_token() -> Result<Bytes> {
    let mut token = [0u8; 16];
    tokio_rustls::rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut token)
        .map_err(|_| Error::Connect("no randomness for a resume token".into()))?;
    Ok(Bytes::copy_from_slice(&token))
}

/// The TLS handshake for a TLS endpoint, checking the server's certificate against
/// `options.trust` for the endpoint's host.
async fn tls_handshake(
    options: &Options,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let host = options.endpoint.tls_host()?.unwrap_or_default();
    let mut roots = rustls::RootCertStore::empty();
    match &options.trust {
        crate::Trust::PublicRoots => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        crate::Trust::Pem(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Invalid(format!("trusted certificates: {e}")))?;
                roots.add(cert).map_err(|e| Error::Invalid(format!("trusted certificate refused: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::Invalid("trusted certificates: the PEM holds no certificate".into()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Connect(format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| Error::Invalid(format!("{host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(SETUP_WAIT, connector.connect(name, tcp))
        .await
        .map_err(|_| Error::Connect(format!("{host}: no TLS handshake in {SETUP_WAIT:?}")))?
        .map_err(|e| Error::Connect(format!("TLS with {host}: {e}")))
}

/// How long the server has to accept or refuse a SETUP.
const SETUP_WAIT: Duration = Duration::from_secs(10);

/// Transport, SETUP, and proof of acceptance.
///
/// RSocket does not acknowledge SETUP. The proof is a request with an empty command: any answer on
/// its stream (Hodi and Elarian both answer an error) means the SETUP was accepted, while a refused
/// SETUP closes the connection with the server's reason.
async fn dial(options: &Options, simulator: bool, responder: Arc<dyn Responder>) -> Result<Requester> {
    match set_up(options, simulator, responder.clone(), !options.resume_window.is_zero()).await {
        // A server that does not keep resumable sessions refuses to; a plain one will do.
        Err(Error::Connect(why)) if why.contains("UNSUPPORTED_SETUP") && why.contains("resume") => {
            debug!(%why, "the server does not resume sessions; setting up without");
            set_up(options, simulator, responder, false).await
        }
        other => other,
    }
}

/// One SETUP over a new transport, resumable or not.
async fn set_up(
    options: &Options,
    simulator: bool,
    responder: Arc<dyn Responder>,
    resumable: bool,
) -> Result<Requester> {
    let config = hodi_rsocket::Config { resume_window: options.resume_window, ..hodi_rsocket::Config::default() };
    let io = transport(options, config.max_frame_size).await?;
    // Resumable: a dropped connection is dialled again and the session carries on (RESUME),
    // nothing lost or sent twice, for up to `resume_window`.
    let resume = if !resumable {
        None
    } else {
        let again = options.clone();
        let max = config.max_frame_size;
        let redial: hodi_rsocket::Redial = Arc::new(move || {
            let again = again.clone();
            Box::pin(async move { transport(&again, max).await.map_err(|e| e.to_string()) })
        });
        Some(hodi_rsocket::ClientResume { token: resume_token()?, redial })
    };
    let (api_key, auth_token) = match &options.credentials {
        Credentials::ApiKey(k) => (Some(k.clone()), None),
        Credentials::AuthToken(t) => (None, Some(t.clone())),
    };
    let meta = AppConnectionMetadata {
        org_id: options.org_id.clone(),
        app_id: options.app_id.clone(),
        api_key,
        auth_token,
        // Always simplex: hodi-sdk never takes server-initiated notification requests. An app gets
        // its notifications on the subscription it opens (with credit, so they wait server-side);
        // a simulator socket receives the customer's side regardless of this flag.
        simplex_mode: true,
        simulator_mode: simulator,
    };
    let params = SetupParams {
        metadata_mime: "application/json".into(),
        data_mime: "application/octet-stream".into(),
        payload: Payload::with_metadata(meta.encode_to_vec(), Bytes::from_static(b"{\"agent\":\"hodi-sdk\"}")),
        resume,
    };
    let requester =
        hodi_rsocket::connect(io, params, responder, config).await.map_err(|e| Error::Connect(e.to_string()))?;
    match tokio::time::timeout(SETUP_WAIT, requester.request_response(Payload::new(Bytes::new()))).await {
        Ok(Ok(_)) | Ok(Err(RequestError::Remote(_))) => Ok(requester),
        Ok(Err(RequestError::Closed(why))) if why.contains("REJECTED_SETUP") || why.contains("INVALID_SETUP") => {
            Err(Error::Rejected(why))
        }
        Ok(Err(e)) => Err(Error::Connect(e.to_string())),
        Err(_) => {
            requester.close();
            Err(Error::Connect(format!("no answer to SETUP in {SETUP_WAIT:?}")))
        }
    }
}
