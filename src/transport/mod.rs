//! Listeners: binds the configured addresses (TLS TCP, plain TCP, WebSocket, secure WebSocket) and
//! runs the `hodi_rsocket` accept loop on each, with the session acceptor.
//!
//! Owns addresses and the server certificate (loaded, or created self-signed on first start). Does
//! not own what happens on a connection after the transport handshake.

pub mod certificate;
pub mod descriptors;
pub mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hodi_rsocket::server::{self, Framing, Listener};
use hodi_rsocket::Acceptor;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Where each enabled listener ended up (ports resolved when configured as 0).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Bound {
    pub tls: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    /// SIP over UDP (the voice executor), set by the server after the RSocket listeners.
    pub sip: Option<SocketAddr>,
    /// HTTP for call recordings.
    pub recordings: Option<SocketAddr>,
    /// HTTP for providers' callbacks (`[webhooks]`).
    pub webhooks: Option<SocketAddr>,
    /// SMTP for customers' email (`[inbox]`).
    pub inbox: Option<SocketAddr>,
    /// The operator's HTTP: metrics and health (`listen.http`).
    pub http: Option<SocketAddr>,
}

/// Binds every enabled listener and starts accepting. Returns once all are bound.
pub async fn start(
    config: &Config,
    tls: TlsAcceptor,
    acceptor_for: impl Fn(&'static str) -> Arc<dyn Acceptor>,
    shutdown: CancellationToken,
) -> Result<Bound> {
    let mut limits = descriptors::fitted(config);
    // One registry for every listener: a session set up over TLS may resume over WebSocket. Each
    // detached session keeps its address's connection place, so this bound is a backstop.
    if config.rsocket.resume_window_secs > 0 {
        limits.resume = Some(hodi_rsocket::connection::resume::Registry::new(limits.max_connections.saturating_mul(4)));
    }
    let handshake = Duration::from_millis(config.rsocket.handshake_timeout_ms);
    let mut bound = Bound::default();
    let plan = [
        ("listen.tls", "tls", &config.listen.tls, Framing::LengthPrefixed, true, &mut bound.tls),
        ("listen.tcp", "tcp", &config.listen.tcp, Framing::LengthPrefixed, false, &mut bound.tcp),
        ("listen.ws", "ws", &config.listen.ws, Framing::WebSocket, false, &mut bound.ws),
        ("listen.wss", "wss", &config.listen.wss, Framing::WebSocket, true, &mut bound.wss),
    ];
    for (key, short, addr, framing, secure, slot) in plan {
        if addr.trim().is_empty() {
            continue;
        }
        let socket = TcpListener::bind(addr.as_str()).await.with_context(|| {
            format!("{key} = {addr:?}: cannot listen there (in use, or not an address of this host)")
        })?;
        *slot = Some(socket.local_addr()?);
        let listener =
            Listener { name: key, socket, framing, tls: secure.then(|| tls.clone()), handshake_timeout: handshake };
        tokio::spawn(server::run(listener, acceptor_for(short), limits.clone(), shutdown.clone()));
    }
    Ok(bound)
}
