//! TLS for TCP and WebSocket listeners: the handshake, bounded by a timeout.
//!
//! The handshake runs inside each connection's own task (see [`crate::server`]), so a client that
//! connects and says nothing delays nobody but itself, and is dropped when the timeout passes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::TransportError;

/// Builds an acceptor from a certificate chain and its private key.
pub fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TransportError> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server side of the handshake, giving up after `timeout`.
pub async fn handshake<S>(acceptor: &TlsAcceptor, io: S, timeout: Duration) -> Result<TlsStream<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(TransportError::Tls(e.to_string())),
        Err(_) => Err(TransportError::HandshakeTimeout(timeout)),
    }
}
