//! Serving an axum router over HTTP/1 on a listener a peer cannot exhaust: connections capped in
//! total and per source address (`hodi_rsocket::admission`), headers due within a deadline, and a
//! connection closed after a fixed lifetime whatever it is doing. Shared by the providers'
//! webhooks and the operator's listener (metrics, health, console).
//!
//! Owns the accept loop and per-connection limits only; what a route does is its owner's.

use std::net::SocketAddr;
use std::time::Duration;

use hodi_rsocket::admission::{Admission, AdmittedListener};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// What one HTTP listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
    /// A connection is closed after this long.
    pub lifetime: Duration,
}

impl Limits {
    /// From a listener's settings (`[webhooks]`, `[http]`): times in seconds, at least one.
    pub fn from_config(
        max_connections: usize,
        per_address: usize,
        header_timeout_secs: u64,
        connection_secs: u64,
    ) -> Limits {
        Limits {
            max_connections,
            max_connections_per_address: per_address,
            header_timeout: Duration::from_secs(header_timeout_secs.max(1)),
            lifetime: Duration::from_secs(connection_secs.max(1)),
        }
    }
}

/// Serves `router` on `listener` (called `name` in logs) until `shutdown`.
pub fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let admission = Admission::new(name, limits.max_connections, limits.max_connections_per_address);
    let mut listener = AdmittedListener::new(name, listener, admission);
    tokio::spawn(async move {
        while let Some((tcp, peer, ticket)) = listener.next(&shutdown).await {
            // The peer's address for routes that want it (`ConnectInfo`): per-address limits.
            let router = router.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(router.clone(), request)
            });
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .serve_connection(TokioIo::new(tcp), service)
                    // A WebSocket (browser calls) leaves this connection's limits for its own.
                    .with_upgrades();
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    served = tokio::time::timeout(limits.lifetime, connection) => {
                        if let Ok(Err(e)) = served {
                            debug!(%peer, error = %e, listener = name, "HTTP connection ended");
                        }
                    }
                }
                drop(ticket);
            });
        }
    });
}

/// Binds `address` for the listener configured at `key`, naming the key when it cannot.
pub async fn bind(key: &str, address: &str) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(address.trim()).await.with_context(|| {
        format!("{key} = {address:?}: cannot listen there (in use, or not an address of this host)")
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
