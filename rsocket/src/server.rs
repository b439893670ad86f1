//! Accept loops: each accepted socket gets its own task, in which the TLS handshake and the
//! WebSocket upgrade run under a timeout, then [`crate::connection::serve`] takes over.
//!
//! Owns listening sockets and per-connection task spawning. The accept loop itself never awaits
//! anything a peer controls, so one silent or slow client cannot delay anyone else.

use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::admission::{AcceptBackoff, Admission, Failures, Gate, Throttle};
use crate::connection::{serve, Acceptor, Config};
use crate::transport::{length_prefixed, tls, websocket, FrameIo, TransportError};

/// Which framing a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// 3-byte length prefix (TCP, TLS).
    LengthPrefixed,
    /// One frame per binary WebSocket message.
    WebSocket,
}

/// One listening socket and how to treat what it accepts.
pub struct Listener {
    /// Names the listener in logs and refusals (`listen.tcp` …).
    pub name: &'static str,
    pub socket: TcpListener,
    pub framing: Framing,
    pub tls: Option<TlsAcceptor>,
    /// Bound for the TLS handshake and WebSocket upgrade.
    pub handshake_timeout: Duration,
}

/// Accepts until `shutdown` is cancelled.
///
/// Every accepted socket first takes a pending place (in total and for its source address:
/// [`Config::max_pending_setups`], [`Config::max_pending_per_address`]); without one it is closed
/// at once. Its SETUP then trades it for an established place ([`Config::max_connections`],
/// [`Config::max_connections_per_address`]), or is refused with REJECTED_SETUP.
pub async fn run(listener: Listener, acceptor: Arc<dyn Acceptor>, config: Config, shutdown: CancellationToken) {
    let Listener { name, socket, framing, tls, handshake_timeout } = listener;
    let pending = Admission::new(name, config.max_pending_setups, config.max_pending_per_address);
    let established = Admission::new(name, config.max_connections, config.max_connections_per_address);
    let failures = Failures::new(config.failed_setups_allowed);
    let mut backoff = AcceptBackoff::new(name);
    let mut refusals = Throttle::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        backoff.accepted();
        let place = match pending.admit(addr.ip()) {
            Ok(place) => place,
            Err(refused) => {
                if let Some(count) = refusals.hit() {
                    warn!(listener = name, peer = %addr, %refused, count, "connections closed at accept (count since the last warning)");
                }
                continue; // dropping `stream` closes it
            }
        };
        let gate = Gate::new(addr.ip(), place, established.clone(), failures.clone());
        let _ = stream.set_nodelay(true);
        if let Some(idle) = config.tcp_keepalive {
            // Finds peers that vanished without a FIN while the connection is quiet (between
            // RSocket keepalives, or before SETUP).
            let probes = TcpKeepalive::new().with_time(idle).with_interval(Duration::from_secs(10)).with_retries(3);
            let _ = SockRef::from(&stream).set_tcp_keepalive(&probes);
        }
        let acceptor = acceptor.clone();
        let config = config.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let peer = addr.to_string();
            // Boxed, so that the handshake's state (TLS, WebSocket upgrade) is freed once done
            // instead of sizing the task for the connection's whole life.
            let opening =
                Box::pin(open(stream, framing, tls.as_ref(), handshake_timeout, config.max_frame_size, peer.clone()));
            let io = match opening.await {
                Ok(io) => io,
                Err(e) => return debug!(%peer, error = %e, "connection dropped before SETUP"),
            };
            tokio::select! {
                _ = serve(io, acceptor, config, gate) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn open(
    stream: TcpStream,
    framing: Framing,
    tls_acceptor: Option<&TlsAcceptor>,
    timeout: Duration,
    max_frame_size: usize,
    peer: String,
) -> Result<FrameIo, TransportError> {
    match (framing, tls_acceptor) {
        (Framing::LengthPrefixed, None) => Ok(length_prefixed::frame_io(stream, max_frame_size, peer)),
        (Framing::LengthPrefixed, Some(acceptor)) => {
            let stream = tls::handshake(acceptor, stream, timeout).await?;
            Ok(length_prefixed::frame_io(stream, max_frame_size, peer))
        }
        (Framing::WebSocket, None) => upgrade(stream, timeout, max_frame_size, peer).await,
        (Framing::WebSocket, Some(acceptor)) => {
            let stream = tls::handshake(acceptor, stream, timeout).await?;
            upgrade(stream, timeout, max_frame_size, peer).await
        }
    }
}

async fn upgrade<S>(io: S, timeout: Duration, max_frame_size: usize, peer: String) -> Result<FrameIo, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match tokio::time::timeout(timeout, websocket::accept(io, max_frame_size, peer)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::HandshakeTimeout(timeout)),
    }
}
