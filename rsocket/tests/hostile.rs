//! Hostile peers against an RSocket listener: each test is an attack that once cost the server
//! memory, places or patience without bound, written as the raw peer that makes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hodi_rsocket::frame::{error_code, Body, Frame};
use hodi_rsocket::server::{Framing, Listener};
use hodi_rsocket::{Acceptor, BoxFuture, Config, Payload, RemoteError, Requester, Responder, SetupInfo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::*;

fn fragment(id: u32, data: &[u8]) -> Frame {
    Frame::new(id, Body::Payload { follows: true, complete: false, next: true, payload: Payload::new(data.to_vec()) })
}

fn request(id: u32, data: &str) -> Frame {
    Frame::new(id, Body::RequestResponse { follows: false, payload: Payload::new(data.to_string()) })
}

/// A million empty fragments once grew the server by 478 MB: they counted nothing toward the
/// reassembly limit. Each fragment now counts its overhead, so the limit ends the flood.
#[tokio::test]
async fn empty_fragments_count_toward_the_reassembly_limit() {
    let config = Config { max_message_size: 64 * 1024, ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    peer.send(Frame::new(1, Body::RequestResponse { follows: true, payload: Payload::default() })).await;
    // 64 KiB / 64 bytes per fragment: the limit is crossed after about a thousand; send up to
    // 20,000 in batches, stopping when the server has closed.
    let one = prefixed(&fragment(1, b"").to_bytes().expect("encode"));
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    for _ in 0..20 {
        if peer.tcp.write_all(&batch).await.is_err() {
            break;
        }
    }
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "reassembly limit of 65536 bytes").await;
}

/// Any number of streams could hold an open fragment. Now a connection has at most
/// `max_fragmented_streams` open at once.
#[tokio::test]
async fn open_fragmented_streams_are_capped() {
    let config = Config { max_fragmented_streams: 4, ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    for i in 0..4 {
        let id = 1 + 2 * i;
        peer.send(Frame::new(id, Body::RequestResponse { follows: true, payload: Payload::new("part") })).await;
    }
    // Four open is allowed: finishing one still works.
    peer.send(Frame::new(1, Body::Payload { follows: false, complete: false, next: true, payload: Payload::new("!") }))
        .await;
    let reply = peer.recv(Duration::from_secs(2)).await.expect("the finished message is answered");
    assert_eq!(reply, Frame::response(1, Payload::new("part!")));
    peer.send(Frame::new(11, Body::RequestResponse { follows: true, payload: Payload::new("four") })).await;
    peer.send(Frame::new(13, Body::RequestResponse { follows: true, payload: Payload::new("five") })).await;
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "more than 4 fragmented messages").await;
}

/// KEEPALIVE with the respond flag echoes its data. A client that sends large ones and never
/// reads once parked +330 MB in the outbound queue (256 frames). Queued bytes are now bounded:
/// the server stops reading the peer once its answers fill the budget, and closes it after the
/// write timeout.
#[tokio::test]
async fn a_keepalive_echo_flood_that_never_reads_is_bounded_in_bytes() {
    let config = Config {
        max_outbound_bytes: 1024 * 1024,
        write_timeout: Duration::from_secs(2),
        max_keepalive_lifetime: Duration::from_secs(60),
        ..Config::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (addr, _stop) = start(Arc::new(Capture(tx)), config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(60_000)).await;
    let server_side = rx.recv().await.expect("server side");
    let data = Bytes::from(vec![b'k'; 1000 * 1000]);
    let frame =
        prefixed(&Frame::new(0, Body::Keepalive { respond: true, last_position: 0, data }).to_bytes().expect("encode"));
    let started = Instant::now();
    let mut written = 0usize;
    let mut peak = 0usize;
    // Write until the server stops reading us (a write blocks for a second) or closes.
    while started.elapsed() < Duration::from_secs(30) {
        match tokio::time::timeout(Duration::from_secs(1), peer.tcp.write_all(&frame)).await {
            Ok(Ok(())) => written += frame.len(),
            Ok(Err(_)) | Err(_) => break,
        }
        peak = peak.max(server_side.queued_bytes());
    }
    let closed_within = tokio::time::timeout(Duration::from_secs(10), server_side.closed()).await;
    eprintln!("keepalive flood: {written} bytes accepted, peak queue {peak} bytes");
    assert!(peak <= 1024 * 1024, "queued {peak} bytes, over the 1 MiB budget");
    // Loopback socket buffers take some megabytes; 256 queued echoes would be 256 MB.
    assert!(written < 48 * 1000 * 1000, "the server read {written} bytes of keepalives while the peer read nothing");
    let reason = closed_within.expect("the server closes a peer that does not read");
    assert!(reason.contains("did not read") || reason.contains("has not read"), "{reason}");
}

/// The client's SETUP chose its keepalive lifetime without an upper bound (2³¹ ms accepted):
/// a vanished peer held its place indefinitely. The server clamps it.
#[tokio::test]
async fn a_huge_setup_lifetime_is_clamped_to_the_server_maximum() {
    let config = Config { max_keepalive_lifetime: Duration::from_millis(500), ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(i32::MAX as u32)).await;
    let started = Instant::now();
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "no frame received for 500 ms").await;
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

/// Unauthenticated sockets used the same places as established ones for the whole setup
/// timeout: 100 silent sockets locked a valid client out of a cap of 100. Pending sockets now
/// have their own budget, capped per source address.
#[tokio::test]
async fn silent_sockets_do_not_lock_out_a_client_that_sets_up() {
    let config = Config {
        max_connections: 100,
        max_pending_setups: 100,
        max_pending_per_address: 20,
        setup_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let addr = echo_server(config).await;
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(RawPeer::connect_from([127, 0, 0, 2], &addr).await);
    }
    // Beyond 20 from that address, the server closes them at once.
    let mut closed = 0;
    for s in silent.iter_mut().skip(20) {
        if s.recv(Duration::from_secs(2)).await.is_none() {
            closed += 1;
        }
    }
    assert_eq!(closed, 130, "sockets beyond the per-address pending cap are closed");
    let mut client = RawPeer::connect(&addr).await;
    client.send(setup_frame(30_000)).await;
    client.send(request(1, "still served")).await;
    let reply = client.recv(Duration::from_secs(2)).await.expect("the client that sets up is served");
    assert_eq!(reply, Frame::response(1, Payload::new("still served")));
    // The first 20 silent sockets are still held: pending, not refused.
    let held = silent.first_mut().expect("one");
    held.send(setup_frame(30_000)).await;
    held.send(request(1, "late but fine")).await;
    assert!(held.recv(Duration::from_secs(2)).await.is_some(), "a pending socket may still set up");
}

/// Established connections are capped per source address too.
#[tokio::test]
async fn established_connections_are_capped_per_address() {
    let addr = echo_server(Config { max_connections_per_address: 2, ..Config::default() }).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut p = RawPeer::connect_from([127, 0, 0, 3], &addr).await;
        p.send(setup_frame(30_000)).await;
        p.send(request(1, "in")).await;
        assert!(p.recv(Duration::from_secs(2)).await.is_some());
        held.push(p);
    }
    let mut third = RawPeer::connect_from([127, 0, 0, 3], &addr).await;
    third.send(setup_frame(30_000)).await;
    third.expect_error_then_close(error_code::REJECTED_SETUP, "from this address").await;
    let mut other = RawPeer::connect_from([127, 0, 0, 4], &addr).await;
    other.send(setup_frame(30_000)).await;
    other.send(request(1, "another address")).await;
    assert!(other.recv(Duration::from_secs(2)).await.is_some(), "another address has its own places");
}

/// Refuses every SETUP, counting how many it examined.
struct WrongKey(Arc<AtomicUsize>);
impl Acceptor for WrongKey {
    fn accept(&self, _s: SetupInfo, _r: Requester) -> BoxFuture<Result<Arc<dyn Responder>, RemoteError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(RemoteError::new(error_code::REJECTED_SETUP, "wrong credentials")) })
    }
}

/// Failed SETUPs were not slowed: 1,000 wrong keys in 76 s. After `failed_setups_allowed`
/// refusals an address waits, doubling, and its SETUPs are refused without being examined.
#[tokio::test]
async fn repeated_refused_setups_from_one_address_are_slowed() {
    let examined = Arc::new(AtomicUsize::new(0));
    let config = Config { failed_setups_allowed: 3, ..Config::default() };
    let (addr, _stop) = start(Arc::new(WrongKey(examined.clone())), config).await;
    for _ in 0..3 {
        let mut p = RawPeer::connect_from([127, 0, 0, 5], &addr).await;
        p.send(setup_frame(30_000)).await;
        p.expect_error_then_close(error_code::REJECTED_SETUP, "wrong credentials").await;
    }
    let mut fourth = RawPeer::connect_from([127, 0, 0, 5], &addr).await;
    fourth.send(setup_frame(30_000)).await;
    fourth.expect_error_then_close(error_code::REJECTED_SETUP, "wrong credentials").await;
    // The fourth refusal bars the address for a second: what it sends now is not examined.
    for _ in 0..20 {
        let mut p = RawPeer::connect_from([127, 0, 0, 5], &addr).await;
        p.send(setup_frame(30_000)).await;
        p.expect_error_then_close(error_code::REJECTED_SETUP, "too many refused SETUPs").await;
    }
    assert_eq!(examined.load(Ordering::SeqCst), 4, "SETUPs from a barred address reach the acceptor");
    let mut other = RawPeer::connect_from([127, 0, 0, 6], &addr).await;
    other.send(setup_frame(30_000)).await;
    other.expect_error_then_close(error_code::REJECTED_SETUP, "wrong credentials").await;
    assert_eq!(examined.load(Ordering::SeqCst), 5, "another address is examined");
    // After the wait, the address is examined again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = RawPeer::connect_from([127, 0, 0, 5], &addr).await;
    later.send(setup_frame(30_000)).await;
    later.expect_error_then_close(error_code::REJECTED_SETUP, "wrong credentials").await;
}

/// Over WebSocket an oversize message closed the connection without the RSocket ERROR that TCP
/// sends.
#[tokio::test]
async fn an_oversize_websocket_message_gets_an_rsocket_error() {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = Listener {
        name: "ws",
        socket,
        framing: Framing::WebSocket,
        tls: None,
        handshake_timeout: Duration::from_secs(5),
    };
    let config = Config { max_frame_size: 1024, ..Config::default() };
    let acceptor = Arc::new(hodi_rsocket::echo::EchoAcceptor::default());
    tokio::spawn(hodi_rsocket::server::run(listener, acceptor, config, Default::default()));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.expect("websocket");
    let binary = |f: Frame| Message::Binary(f.to_bytes().expect("encode"));
    ws.send(binary(setup_frame(30_000))).await.expect("setup");
    ws.send(binary(request(1, "small"))).await.expect("small");
    ws.send(binary(request(3, &"x".repeat(4096)))).await.expect("big");
    let mut frames = Vec::new();
    let started = Instant::now();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let Message::Binary(b) = msg {
            frames.push(Frame::decode(b).expect("a frame"));
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert_eq!(frames.first(), Some(&Frame::response(1, Payload::new("small"))), "{frames:?}");
    let Some(Frame { stream_id: 0, body: Body::Error { code, data } }) = frames.get(1) else {
        panic!("no ERROR on stream 0 after the oversize message: {frames:?}");
    };
    assert_eq!(*code, error_code::CONNECTION_ERROR);
    assert!(String::from_utf8_lossy(data).contains("exceeds the limit of 1024 bytes"), "{data:?}");
}
