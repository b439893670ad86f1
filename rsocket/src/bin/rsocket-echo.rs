//! A small RSocket server on the `hodi_rsocket` layer, for peer tests and benchmarks.
//!
//! Serves [`hodi_rsocket::echo`]. Prints `listening <addr>` once bound.
//!
//! Usage: rsocket-echo [--tls CERT.pem KEY.pem] [ADDR]

use std::sync::Arc;
use std::time::Duration;

use hodi_rsocket::echo::EchoAcceptor;
use hodi_rsocket::server::{Framing, Listener};
use hodi_rsocket::Config;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut tls = None;
    if args.first().map(String::as_str) == Some("--tls") {
        let cert = args.get(1).ok_or("--tls needs CERT and KEY")?.clone();
        let key = args.get(2).ok_or("--tls needs CERT and KEY")?.clone();
        args.drain(..3);
        let chain = CertificateDer::pem_file_iter(&cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&key)?;
        tls = Some(hodi_rsocket::transport::tls::acceptor(chain, key)?);
    }
    let addr = args.first().cloned().unwrap_or_else(|| "127.0.0.1:0".into());
    let socket = tokio::net::TcpListener::bind(&addr).await?;
    use std::io::Write;
    writeln!(std::io::stdout(), "listening {}", socket.local_addr()?)?;
    std::io::stdout().flush()?;
    let listener = Listener {
        name: "echo",
        socket,
        framing: Framing::LengthPrefixed,
        tls,
        handshake_timeout: Duration::from_secs(10),
    };
    let acceptor = Arc::new(EchoAcceptor::default());
    hodi_rsocket::server::run(listener, acceptor, Config::default(), tokio_util::sync::CancellationToken::new()).await;
    Ok(())
}
