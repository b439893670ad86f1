//! Accept loops: each accepted socket gets its own task, in which the TLS handshake and the
//! WebSocket upgrade run under a timeout, then [`crate::connection::serve`] takes over.
//!
//! Owns listening sockets and per-connection task spawning. The accept loop itself never awaits
//! anything a peer controls, so one silent or slow client cannot delay anyone else.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::admission::AcceptBackoff;
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
    pub socket: TcpListener,
    pub framing: Framing,
    pub tls: Option<TlsAcceptor>,
    /// Bound for the TLS handshake and WebSocket upgrade.
    pub handshake_timeout: Duration,
}

/// Accepts until `shutdown` is cancelled.
pub async fn run(listener: Listener, acceptor: Arc<dyn Acceptor>, config: Config, shutdown: CancellationToken) {
    let Listener { socket, framing, tls, handshake_timeout } = listener;
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let mut backoff = AcceptBackoff::new("rsocket");
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(peer = %addr, limit = config.max_connections, "connection limit reached; closing the new connection");
            continue; // dropping `stream` closes it
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let config = config.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let peer = addr.to_string();
            let io = match open(stream, framing, tls.as_ref(), handshake_timeout, config.max_frame_size, peer.clone())
                .await
            {
                Ok(io) => io,
                Err(e) => return debug!(%peer, error = %e, "connection dropped before SETUP"),
            };
            tokio::select! {
                _ = serve(io, acceptor, config) => {}
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
