//! The connection state machine over real loopback sockets: raw frames from a hand-driven peer for
//! the error paths, and our own client for both request directions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hodi_rsocket::frame::{error_code, Body, Frame};
use hodi_rsocket::transport::length_prefixed;
use hodi_rsocket::{BoxFuture, Config, Payload, RemoteError, RequestError, Requester, Responder, SetupParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::*;

#[tokio::test]
async fn first_frame_must_be_setup() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::new("x") })).await;
    peer.expect_error_then_close(error_code::INVALID_SETUP, "first frame must be SETUP").await;
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    let mut setup = setup_frame(30_000);
    if let Body::Setup(s) = &mut setup.body {
        s.major_version = 2;
    }
    peer.send(setup).await;
    peer.expect_error_then_close(error_code::UNSUPPORTED_SETUP, "version 2.0").await;
}

#[tokio::test]
async fn no_setup_within_the_timeout_is_refused() {
    let config = Config { setup_timeout: Duration::from_millis(300), ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.expect_error_then_close(error_code::INVALID_SETUP, "no SETUP within 300 ms").await;
}

#[tokio::test]
async fn malformed_frame_after_setup_gets_error_and_close() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    // A PAYLOAD whose metadata length runs past the end of the frame.
    peer.send_raw(&[0, 0, 0, 1, 0x29, 0x00, 0xFF, 0xFF, 0xFF, 1]).await;
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "malformed frame").await;
}

#[tokio::test]
async fn garbage_bytes_get_error_and_close() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    // "GET" read as a 24-bit length is 4.7 MB: refused as oversize before any body is buffered.
    let frame = peer.recv(Duration::from_secs(5)).await.expect("an ERROR frame");
    assert!(matches!(frame.body, Body::Error { .. }), "{frame:?}");
    assert!(peer.recv(Duration::from_secs(5)).await.is_none());
}

#[tokio::test]
async fn oversize_frame_gets_error_and_close() {
    let config = Config { max_frame_size: 1024, ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    let big = Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::new(vec![7u8; 2000]) });
    peer.send(big).await;
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "exceeds the limit of 1024 bytes").await;
}

#[tokio::test]
async fn keepalive_is_answered_and_silence_past_the_lifetime_closes() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(500)).await;
    peer.send(Frame::new(0, Body::Keepalive { respond: true, last_position: 0, data: Bytes::from_static(b"ping") }))
        .await;
    let reply = peer.recv(Duration::from_secs(2)).await.expect("keepalive reply");
    assert_eq!(reply.body, Body::Keepalive { respond: false, last_position: 0, data: Bytes::from_static(b"ping") });
    let started = Instant::now();
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "keepalive lifetime").await;
    assert!(started.elapsed() >= Duration::from_millis(400), "closed too early: {:?}", started.elapsed());
}

#[tokio::test]
async fn fragments_are_reassembled_and_the_cap_enforced() {
    // Each fragment counts 64 bytes besides its payload.
    let config = Config { max_message_size: 400, ..Config::default() };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    peer.send(Frame::new(1, Body::RequestResponse { follows: true, payload: Payload::with_metadata("ab", "m1") }))
        .await;
    peer.send(Frame::new(1, Body::Payload { follows: true, complete: false, next: true, payload: Payload::new("cd") }))
        .await;
    peer.send(Frame::new(
        1,
        Body::Payload { follows: false, complete: false, next: true, payload: Payload::with_metadata("ef", "m2") },
    ))
    .await;
    let reply = peer.recv(Duration::from_secs(2)).await.expect("reply");
    assert_eq!(reply, Frame::response(1, Payload::with_metadata("abcdef", "m1m2")));
    // Now exceed the 400-byte cap with fragments of one message (5 × (30 + 64)).
    peer.send(Frame::new(3, Body::RequestResponse { follows: true, payload: Payload::new(vec![1u8; 30]) })).await;
    for _ in 0..4 {
        peer.send(Frame::new(
            3,
            Body::Payload { follows: true, complete: false, next: true, payload: Payload::new(vec![1u8; 30]) },
        ))
        .await;
    }
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "reassembly limit of 400 bytes").await;
}

#[tokio::test]
async fn stream_id_parity_is_enforced() {
    let addr = echo_server(Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    peer.send(Frame::new(2, Body::RequestResponse { follows: false, payload: Payload::new("x") })).await;
    peer.expect_error_then_close(error_code::CONNECTION_ERROR, "wrong parity").await;
}

/// A client-side responder that answers server-initiated requests with "client:<data>".
struct ClientSide;
impl Responder for ClientSide {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        Box::pin(async move { Ok(Payload::new(format!("client:{}", String::from_utf8_lossy(&payload.data)))) })
    }
}

async fn client(addr: &str, responder: Arc<dyn Responder>) -> Requester {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let io = length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    hodi_rsocket::connect(io, SetupParams::default(), responder, Config::default()).await.expect("setup sent")
}

#[tokio::test]
async fn requests_flow_both_ways_on_one_connection() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (addr, _stop) = start(Arc::new(Capture(tx)), Config::default()).await;
    let client = client(&addr, Arc::new(ClientSide)).await;
    let server_side = rx.recv().await.expect("server requester");
    let (a, b) = tokio::join!(
        client.request_response(Payload::new("to-server")),
        server_side.request_response(Payload::new("to-client"))
    );
    assert_eq!(a.expect("client->server").data, Bytes::from_static(b"to-server"));
    assert_eq!(b.expect("server->client").data, Bytes::from_static(b"client:to-client"));
    let items: Vec<_> = client
        .request_stream(Payload::new("10"), 3)
        .await
        .expect("stream")
        .map(|r| String::from_utf8_lossy(&r.expect("item").data).into_owned())
        .collect()
        .await;
    assert_eq!(items.len(), 10);
    assert_eq!(items[9], "item-9");
}

/// A responder that never answers.
struct Never;
impl Responder for Never {
    fn request_response(&self, _p: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn close_fails_every_pending_request_at_once() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (addr, _stop) = start(Arc::new(Capture(tx)), Config::default()).await;
    let client = client(&addr, Arc::new(Never)).await;
    let server_side = rx.recv().await.expect("server requester");
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let s = server_side.clone();
            tokio::spawn(async move { s.request_response(Payload::new(format!("{i}"))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.close();
    let started = Instant::now();
    for p in pending {
        let result = tokio::time::timeout(Duration::from_secs(5), p).await.expect("settled").expect("task");
        assert!(matches!(result, Err(RequestError::Closed(_))), "{result:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(server_side.request_response(Payload::new("late")).await, Err(RequestError::Closed(_))));
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_not_buffered() {
    let config = Config {
        write_timeout: Duration::from_millis(500),
        outbound_queue: 8,
        max_inbound_requests: 8,
        ..Config::default()
    };
    let addr = echo_server(config).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(60_000)).await;
    // Flood 64 KiB echo requests and never read: the server's writes stall, its queue fills, it
    // stops reading us, and after the write timeout it drops the connection.
    let body = vec![9u8; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0u32;
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) && !closed {
        let id = 1 + 2 * sent;
        let frame = Frame::new(id, Body::RequestResponse { follows: false, payload: Payload::new(body.clone()) });
        match tokio::time::timeout(
            Duration::from_secs(2),
            peer.tcp.write_all(&prefixed(&frame.to_bytes().expect("encode"))),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) => closed = true,
            Err(_) => {
                // Our writes are blocked: the server stopped reading. Now drain: the server must close
                // after its write timeout, having sent no more than its bounded queue allowed.
                let mut sink = vec![0u8; 1 << 20];
                let mut total = 0usize;
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), peer.tcp.read(&mut sink)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            closed = true;
                            break;
                        }
                        Ok(Ok(n)) => total += n,
                        Err(_) => break,
                    }
                    assert!(total < 64 << 20, "server kept sending far beyond its bounded queue");
                }
                break;
            }
        }
    }
    eprintln!("stop-reading: sent {sent} requests in {:?}, closed={closed}", started.elapsed());
    assert!(closed, "the server should have closed a connection that stopped reading (sent {sent})");
    assert!(sent < 2048, "the server read {sent} requests while the peer read no replies");
}

#[tokio::test]
async fn server_initiated_streams_use_even_ids_from_2() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (addr, _stop) = start(Arc::new(Capture(tx)), Config::default()).await;
    let mut peer = RawPeer::connect(&addr).await;
    peer.send(setup_frame(30_000)).await;
    let server_side = rx.recv().await.expect("server requester");
    let first = tokio::spawn({
        let s = server_side.clone();
        async move { s.request_response(Payload::new("one")).await }
    });
    let frame = peer.recv(Duration::from_secs(2)).await.expect("request");
    assert_eq!(frame.stream_id, 2);
    assert!(matches!(frame.body, Body::RequestResponse { .. }));
    peer.send(Frame::response(2, Payload::new("answer"))).await;
    assert_eq!(&first.await.expect("task").expect("reply").data[..], b"answer");
    let second = tokio::spawn(async move { server_side.request_response(Payload::new("two")).await });
    let frame = peer.recv(Duration::from_secs(2)).await.expect("request");
    assert_eq!(frame.stream_id, 4);
    peer.send(Frame::error(4, error_code::APPLICATION_ERROR, "nope")).await;
    let err = second.await.expect("task").expect_err("error reply");
    assert!(matches!(err, RequestError::Remote(RemoteError { code: error_code::APPLICATION_ERROR, .. })), "{err:?}");
}

#[tokio::test]
async fn setups_beyond_the_connection_limit_are_refused() {
    let addr = echo_server(Config { max_connections: 2, ..Config::default() }).await;
    let mut a = RawPeer::connect(&addr).await;
    let mut b = RawPeer::connect(&addr).await;
    for p in [&mut a, &mut b] {
        p.send(setup_frame(30_000)).await;
        p.send(Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::new("in") })).await;
        assert!(p.recv(Duration::from_secs(2)).await.is_some(), "within the limit");
    }
    let mut c = RawPeer::connect(&addr).await;
    c.send(setup_frame(30_000)).await;
    c.expect_error_then_close(error_code::REJECTED_SETUP, "the server is full").await;
    drop(a);
    // The slot frees when the server notices the close.
    let started = Instant::now();
    loop {
        let mut d = RawPeer::connect(&addr).await;
        d.send(setup_frame(30_000)).await;
        d.send(Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::new("again") })).await;
        if d.recv(Duration::from_secs(2)).await.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a freed slot is reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn thousands_of_concurrent_requests_on_one_connection_all_complete() {
    // Regression: the writer once dropped the frame after a full batch of 64.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (addr, _stop) = start(Arc::new(Capture(tx)), Config::default()).await;
    let client = client(&addr, Arc::new(ClientSide)).await;
    let server_side = rx.recv().await.expect("server requester");
    for requester in [client.clone(), server_side.clone()] {
        let tasks: Vec<_> = (0..3000)
            .map(|i| {
                let r = requester.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(3), r.request_response(Payload::new(format!("{i}")))).await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let reply = t.await.expect("task").unwrap_or_else(|_| panic!("request {i} got no reply")).expect("reply");
            assert!(String::from_utf8_lossy(&reply.data).ends_with(&format!("{i}")));
        }
    }
}
