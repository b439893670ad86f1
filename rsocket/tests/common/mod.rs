//! What the RSocket connection tests share: a server on a loopback port, a raw length-prefixed
//! peer that writes and reads frames by hand (for hostile and malformed input), and an acceptor
//! that hands the test the server side of each connection.
#![allow(dead_code)] // each test file uses its own subset

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hodi_rsocket::echo::EchoAcceptor;
use hodi_rsocket::frame::{Body, Frame, Setup};
use hodi_rsocket::server::{Framing, Listener};
use hodi_rsocket::{Acceptor, BoxFuture, Config, Payload, RemoteError, Requester, Responder, SetupInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

pub async fn start(acceptor: Arc<dyn Acceptor>, config: Config) -> (String, CancellationToken) {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let listener = Listener {
        name: "test",
        socket,
        framing: Framing::LengthPrefixed,
        tls: None,
        handshake_timeout: Duration::from_secs(5),
    };
    tokio::spawn(hodi_rsocket::server::run(listener, acceptor, config, shutdown.clone()));
    (addr, shutdown)
}

pub async fn echo_server(config: Config) -> String {
    start(Arc::new(EchoAcceptor::default()), config).await.0
}

pub fn setup_frame(lifetime_ms: u32) -> Frame {
    Frame::new(
        0,
        Body::Setup(Setup {
            major_version: 1,
            minor_version: 0,
            keepalive_interval: 60_000,
            max_lifetime: lifetime_ms,
            resume_token: None,
            lease: false,
            metadata_mime: "application/json".into(),
            data_mime: "application/octet-stream".into(),
            payload: Payload::new("hi"),
        }),
    )
}

pub fn prefixed(frame: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u8((frame.len() >> 16) as u8);
    out.put_u16((frame.len() & 0xFFFF) as u16);
    out.put_slice(frame);
    out
}

/// A peer that writes and reads raw length-prefixed frames.
pub struct RawPeer {
    pub tcp: TcpStream,
}

impl RawPeer {
    pub async fn connect(addr: &str) -> RawPeer {
        RawPeer { tcp: TcpStream::connect(addr).await.expect("connect") }
    }

    pub async fn send_raw(&mut self, frame: &[u8]) {
        self.tcp.write_all(&prefixed(frame)).await.expect("write");
    }

    pub async fn send(&mut self, frame: Frame) {
        self.send_raw(&frame.to_bytes().expect("encode")).await;
    }

    /// The next frame, or None when the server closed the connection.
    pub async fn recv(&mut self, within: Duration) -> Option<Frame> {
        tokio::time::timeout(within, async {
            let mut len = [0u8; 3];
            self.tcp.read_exact(&mut len).await.ok()?;
            let n = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
            let mut body = vec![0u8; n];
            self.tcp.read_exact(&mut body).await.ok()?;
            Some(Frame::decode(Bytes::from(body)).expect("server sent a malformed frame"))
        })
        .await
        .expect("no frame and no close within the time limit")
    }

    pub async fn expect_error_then_close(&mut self, code: u32, text: &str) -> String {
        let frame = self.recv(Duration::from_secs(5)).await.expect("an ERROR frame before the close");
        let Body::Error { code: got, data } = frame.body else { panic!("expected ERROR, got {frame:?}") };
        let message = String::from_utf8_lossy(&data).into_owned();
        assert_eq!((frame.stream_id, got), (0, code), "{message}");
        assert!(message.contains(text), "{message:?} should mention {text:?}");
        assert!(self.recv(Duration::from_secs(5)).await.is_none(), "connection should be closed after the ERROR");
        message
    }
}

impl RawPeer {
    /// Connects from `source` (any 127.x.y.z works on Linux loopback), to count as another address.
    pub async fn connect_from(source: [u8; 4], addr: &str) -> RawPeer {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind((std::net::Ipv4Addr::from(source), 0).into()).expect("bind source address");
        RawPeer { tcp: socket.connect(addr.parse().expect("addr")).await.expect("connect") }
    }
}

/// A server that, on SETUP, hands its Requester to the test, so the test can call the client.
pub struct Capture(pub tokio::sync::mpsc::Sender<Requester>);
impl Acceptor for Capture {
    fn accept(&self, _s: SetupInfo, requester: Requester) -> BoxFuture<Result<Arc<dyn Responder>, RemoteError>> {
        let tx = self.0.clone();
        Box::pin(async move {
            let _ = tx.send(requester).await;
            Ok(Arc::new(hodi_rsocket::echo::Echo::default()) as Arc<dyn Responder>)
        })
    }
}
