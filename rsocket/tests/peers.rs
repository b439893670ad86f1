//! The rsocket layer against a generic third-party peer (npm rsocket-core 0.0.27, run by node from
//! `tests/peers`), and TLS behaviour with a silent client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hodi_rsocket::echo::EchoAcceptor;
use hodi_rsocket::server::{Framing, Listener};
use hodi_rsocket::transport::{length_prefixed, tls};
use hodi_rsocket::{Config, Payload, SetupParams};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn peers_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers");
    assert!(
        dir.join("node_modules/rsocket-core").exists(),
        "the node test peers are not installed: run `npm ci --prefix tests/peers` (./scripts/test does this)"
    );
    dir
}

struct EchoProcess(Child);
impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_echo() -> (EchoProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsocket-echo"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn rsocket-echo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    (EchoProcess(child), port)
}

fn run_peer(port: &str, scenario: &str) -> String {
    let out = Command::new("node")
        .arg("rsocket_peer.js")
        .arg(scenario)
        .current_dir(peers_dir())
        .env("ECHO_PORT", port)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{scenario}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn generic_peer_request_response() {
    let (_echo, port) = start_echo();
    assert!(run_peer(&port, "request-response").contains("\"echoed\":51"));
}

#[test]
fn generic_peer_request_stream_honours_request_n() {
    let (_echo, port) = start_echo();
    assert!(run_peer(&port, "request-n").contains("\"items\":100"));
}

#[test]
fn generic_peer_cancel_stops_the_producer() {
    let (_echo, port) = start_echo();
    run_peer(&port, "cancel");
}

#[test]
fn generic_peer_silent_past_its_lifetime_is_closed() {
    let (_echo, port) = start_echo();
    run_peer(&port, "keepalive-timeout");
}

#[tokio::test]
async fn a_silent_tls_client_does_not_delay_others() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let acceptor = tls::acceptor(vec![cert_der.clone()], key).expect("acceptor");
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = Listener {
        name: "tls",
        socket,
        framing: Framing::LengthPrefixed,
        tls: Some(acceptor),
        handshake_timeout: Duration::from_secs(30),
    };
    tokio::spawn(hodi_rsocket::server::run(
        listener,
        Arc::new(EchoAcceptor::default()),
        Config::default(),
        Default::default(),
    ));

    // Five clients connect and never start the handshake.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(addr).await.expect("silent connect"));
    }
    let mut roots = RootCertStore::empty();
    roots.add(cert_der).expect("root");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from("localhost").expect("name"), tcp),
    )
    .await
    .expect("handshake not delayed by silent clients")
    .expect("handshake");
    let io = length_prefixed::frame_io(stream, 1 << 20, addr.to_string());
    let client = hodi_rsocket::connect(
        io,
        SetupParams::default(),
        Arc::new(hodi_rsocket::echo::Echo::default()),
        Config::default(),
    )
    .await
    .expect("setup");
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request_response(Payload::new("through")))
        .await
        .expect("in time")
        .expect("reply");
    assert_eq!(&reply.data[..], b"through");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    drop(silent);
}
