//! Hostile peers at the inbox (SMTP): connections beyond the per-address cap are closed at once,
//! an idle client is cut off, an endless line ends the connection, garbage gets errors and
//! nothing else, a client that pipelines past STARTTLS is dropped — and a polite client is still
//! greeted afterwards.

mod common;

use std::time::Duration;

use common::inproc::start_with;
use common::read_until_closed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the server says within `within` (without waiting for it to close).
async fn read_some(tcp: &mut TcpStream, within: Duration) -> String {
    read_until_closed(tcp, within).await.0
}

/// Reads one reply line (up to 2 s).
async fn reply_line(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !got.ends_with(b"\r\n") {
        match tokio::time::timeout_at(deadline, tcp.read(&mut byte)).await {
            Ok(Ok(1)) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_bounds_what_a_hostile_peer_can_hold() {
    let (running, _dir) = start_with(|c| {
        c.inbox.listen = "127.0.0.1:0".into();
        c.inbox.command_timeout_secs = 1;
        c.inbox.session_secs = 30;
        c.inbox.max_connections_per_address = 4;
    })
    .await;
    let addr = running.bound.inbox.expect("inbox listening");

    // Four connections hold the address's places; a fifth is closed without a greeting.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        assert!(reply_line(&mut tcp).await.starts_with("220 "));
        held.push(tcp);
    }
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    let (said, closed) = read_until_closed(&mut fifth, Duration::from_secs(3)).await;
    assert!(closed && said.is_empty(), "a fifth connection from one address: {said:?}");

    // An idle client is cut off after the command timeout (1 s), freeing its place.
    let (_, closed) = read_until_closed(&mut held[0], Duration::from_secs(5)).await;
    assert!(closed, "an idle client was kept");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A line that never ends is not buffered: the connection is closed.
    let mut endless = TcpStream::connect(addr).await.expect("connect");
    read_some(&mut endless, Duration::from_millis(300)).await;
    let chunk = vec![b'A'; 4096];
    for _ in 0..4 {
        if endless.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let (_, closed) = read_until_closed(&mut endless, Duration::from_secs(5)).await;
    assert!(closed, "a 16 KiB line was kept");

    // Garbage gets errors, and no mail is taken without a recipient.
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    read_some(&mut garbage, Duration::from_millis(300)).await;
    garbage.write_all(b"\x00\xff\xfe nonsense\r\nDATA\r\nRCPT TO:<nobody@nowhere.example>\r\n").await.expect("write");
    let said = read_some(&mut garbage, Duration::from_millis(800)).await;
    let codes: Vec<&str> = said.lines().map(|l| &l[..3.min(l.len())]).collect();
    assert_eq!(codes.len(), 3, "one reply a line: {said:?}");
    assert!(codes.iter().all(|c| c.starts_with('5')), "errors only: {said:?}");
    garbage.write_all(b"QUIT\r\n").await.expect("write");
    let (said, closed) = read_until_closed(&mut garbage, Duration::from_secs(3)).await;
    assert!(said.starts_with("221") && closed, "{said:?}");

    // A client that sends commands behind STARTTLS before the handshake is dropped (they would
    // otherwise count as sent over TLS).
    let mut injector = TcpStream::connect(addr).await.expect("connect");
    read_some(&mut injector, Duration::from_millis(300)).await;
    injector.write_all(b"EHLO x\r\n").await.expect("write");
    assert!(read_some(&mut injector, Duration::from_millis(500)).await.contains("STARTTLS"));
    injector.write_all(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n").await.expect("write");
    let (said, closed) = read_until_closed(&mut injector, Duration::from_secs(3)).await;
    assert!(said.starts_with("220") && closed, "pipelined past STARTTLS: {said:?}");

    // After all that, a polite client is greeted and served.
    let mut polite = TcpStream::connect(addr).await.expect("connect");
    assert!(read_some(&mut polite, Duration::from_millis(500)).await.starts_with("220 hodi.localhost ESMTP"));
    polite.write_all(b"EHLO client.example\r\n").await.expect("write");
    assert!(read_some(&mut polite, Duration::from_millis(500)).await.starts_with("250"));
    running.shutdown.cancel();
}
