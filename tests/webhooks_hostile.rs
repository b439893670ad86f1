//! Hostile peers at the webhook listener: connections beyond the per-address cap are closed at
//! once, a peer that trickles its headers is cut off, an oversize body is refused unread, a wrong
//! token stores nothing — and a well-behaved callback still gets through.

mod common;

use std::time::{Duration, Instant};

use common::inproc::start_with;
use common::read_until_closed;
use hodi::config::providers::{AfricasTalking, Provider, Secret};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: hodi\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_listener_bounds_what_a_hostile_peer_can_hold() {
    let (running, _dir) = start_with(|c| {
        c.webhooks.header_timeout_secs = 1;
        c.webhooks.connection_secs = 5;
        c.webhooks.max_connections_per_address = 4;
        c.webhooks.max_body_bytes = 1024;
        let at = AfricasTalking {
            username: "sandbox".into(),
            api_key: Secret::new("k"),
            base_url: "http://127.0.0.1:9".into(),
            webhook_token: Secret::new("tok"),
            ..AfricasTalking::default()
        };
        c.providers.insert("at".into(), Provider::AfricasTalking(at));
    })
    .await;
    let addr = running.bound.webhooks.expect("webhooks listening");

    // Four idle connections hold the address's places; a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut fifth, Duration::from_secs(2)).await;
    assert!(closed, "a fifth connection from one address was kept");

    // The idle ones sent no headers: each is cut off after the header timeout, not kept.
    let started = Instant::now();
    for tcp in &mut held {
        let (_, closed) = read_until_closed(tcp, Duration::from_secs(5)).await;
        assert!(closed, "a connection that sent no headers was kept");
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // Trickling a header a byte at a time does not keep it open either.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let mut cut = false;
    for byte in b"POST /hooks/at/tok/sms HTTP/1.1\r\nHost: hodi\r\nX-Slow: ".iter().cycle().take(200) {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(cut || closed, "a trickling peer was kept for {:?}", started.elapsed());

    // An oversize body is refused.
    let mut big = TcpStream::connect(addr).await.expect("connect");
    let body = format!("from=%2B254700000001&to=21356&text={}", "x".repeat(4096));
    big.write_all(post("/hooks/at/tok/sms", &body).as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut big, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A wrong token is 403; a malformed body 400; neither stores a message.
    for (path, body, status) in [
        ("/hooks/at/nope/sms", "from=%2B254700000001&to=21356&text=forged", "403"),
        ("/hooks/at/tok/sms", "text=no+numbers", "400"),
        ("/hooks/nosuch/tok/sms", "from=%2B254700000001&to=21356&text=x", "404"),
    ] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(post(path, body).as_bytes()).await.expect("write");
        let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {answer}");
    }

    // A good callback still gets through (to a number no org has bound: answered, nothing stored).
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(post("/hooks/at/tok/sms", "from=%2B254700000001&to=21356&text=hello&id=x1").as_bytes())
        .await
        .expect("write");
    let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let dev = running.dev.clone().expect("dev");
    let number =
        hodi::store::customers::StoredNumber { provider: 2, number: "+254700000001".into(), partition: String::new() };
    let (customer, _) = running.hodi.store.customer_by_number(&dev.org_id, &number).await.expect("customer");
    let messages = running.hodi.store.messages_for(&customer.id, 10).await.expect("messages");
    assert!(messages.is_empty(), "a refused or unbound callback stored a message: {messages:?}");
    running.stop().await;
}
