//! The operator's HTTP listener (`listen.http`): `/healthz` and `/readyz` answer, `/metrics` shows
//! in Prometheus text what an operator looks for after real traffic (sockets open by kind,
//! commands by name and outcome with latency histograms, refused SETUPs, notifications answered,
//! the outbox of an app with no socket, pending reminders) and never a customer's number; and the
//! listener bounds what a hostile peer can hold, like every listener.

mod common;

use std::time::{Duration, SystemTime};

use common::inproc::start_with;
use common::{http_get, metric_sample, read_until_closed, Hodi};
use hodi_sdk::model::{channel, Reminder};
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply, Simulator};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

fn options(hodi: &Hodi, api_key: &str) -> Options {
    let creds = &hodi.creds;
    Options::new(
        Endpoint::Tcp(hodi.listening.tcp.clone().expect("tcp")),
        &creds.org_id,
        &creds.app_id,
        Credentials::ApiKey(api_key.into()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_show_what_the_server_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let http = hodi.listening.http.clone().expect("the operator's listener is bound");
    assert_eq!(http_get(&http, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(&http, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(http_get(&http, "/nothing-here").await.0, 404);

    // Traffic: an app with three getState, a phone texting it, a wrong key, a reminder pending.
    let app = Elarian::connect(options(&hodi, &hodi.creds.api_key));
    app.connected(WAIT).await.expect("app connected");
    let mut notifications = app.notifications().expect("notifications");
    for _ in 0..3 {
        app.customer("+254700555001").get_state().await.expect("getState");
    }
    app.customer("+254700555001")
        .add_reminder(Reminder {
            key: "later".into(),
            remind_at: SystemTime::now() + Duration::from_secs(3600),
            interval: None,
            payload: None,
        })
        .await
        .expect("reminder set");
    let phone = Simulator::connect(options(&hodi, &hodi.creds.api_key));
    phone.connected(WAIT).await.expect("phone connected");
    let text = |t: &str| {
        vec![hodi_sdk::wire::InboundMessageBody {
            entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(t.into())),
        }]
    };
    phone.receive_message("+254700555001", channel::sms("21356"), text("hello"), None).await.expect("texted");
    let n = notifications.next_within(WAIT).await.expect("the text reached the app");
    assert!(matches!(n.event, Event::ReceivedMessage(_)));
    n.reply(Reply::default()).await.expect("answered");
    let wrong = Elarian::connect(options(&hodi, "hodi_key_wrong"));
    assert!(wrong.connected(Duration::from_secs(5)).await.is_err(), "a wrong key was let in");

    // The answer is recorded just after the app sends it: scrape until it shows (10 s at most).
    let answered = ["outcome=\"answered\""];
    let started = std::time::Instant::now();
    let metrics = loop {
        let (status, metrics) = http_get(&http, "/metrics").await;
        assert_eq!(status, 200);
        if metric_sample(&metrics, "hodi_notifications_total", &answered) >= Some(1.0) {
            break metrics;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the answer never counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let get_state = ["socket=\"app\"", "command=\"getCustomerState\"", "outcome=\"ok\""];
    assert_eq!(metric_sample(&metrics, "hodi_commands_total", &get_state), Some(3.0), "{metrics}");
    let received = ["socket=\"simulator\"", "command=\"receiveMessage\"", "outcome=\"ok\""];
    assert_eq!(metric_sample(&metrics, "hodi_commands_total", &received), Some(1.0), "{metrics}");
    let count = metric_sample(&metrics, "hodi_command_duration_seconds_count", &["command=\"getCustomerState\""]);
    assert_eq!(count, Some(3.0), "a latency histogram per command:\n{metrics}");
    assert!(metrics.contains("# TYPE hodi_command_duration_seconds histogram"), "{metrics}");
    // hodi-sdk sets up simplex and subscribes: a simplex_app socket.
    assert_eq!(
        metric_sample(&metrics, "hodi_sessions", &["kind=\"simplex_app\"", "listener=\"tcp\""]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(metric_sample(&metrics, "hodi_sessions", &["kind=\"simulator\""]), Some(1.0), "{metrics}");
    let probes = metric_sample(&metrics, "hodi_commands_total", &["command=\"empty\""]);
    assert!(probes >= Some(1.0), "hodi-sdk's connection checks are told apart:\n{metrics}");
    assert_eq!(metric_sample(&metrics, "hodi_commands_total", &["command=\"unknown\""]), None, "{metrics}");
    assert!(metric_sample(&metrics, "hodi_setups_refused_total", &[]) >= Some(1.0), "{metrics}");
    assert_eq!(metric_sample(&metrics, "hodi_reminders_pending", &[]), Some(1.0), "{metrics}");
    let sms_in = ["direction=\"inbound\"", "channel=\"sms\""];
    assert_eq!(metric_sample(&metrics, "hodi_messages_total", &sms_in), Some(1.0), "{metrics}");
    assert!(!metrics.contains("254700555001"), "a customer's number in the metrics:\n{metrics}");

    // The app goes away; what is texted meanwhile waits in its outbox, and the gauge says so.
    app.disconnect();
    drop(notifications);
    tokio::time::sleep(Duration::from_millis(500)).await;
    phone.receive_message("+254700555001", channel::sms("21356"), text("anyone?"), None).await.expect("texted");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, metrics) = http_get(&http, "/metrics").await;
    let app_label = format!("app=\"{}\"", hodi.creds.app_id);
    assert_eq!(metric_sample(&metrics, "hodi_outbox_depth", &[&app_label]), Some(1.0), "{metrics}");
    let age = metric_sample(&metrics, "hodi_outbox_oldest_age_seconds", &[&app_label]).expect("the oldest's age");
    assert!((1.0..60.0).contains(&age), "the oldest has waited about a second: {age}");
    assert_eq!(metric_sample(&metrics, "hodi_sessions", &["kind=\"simplex_app\""]), Some(0.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_listener_bounds_what_a_hostile_peer_can_hold() {
    let (running, _dir) = start_with(|c| {
        c.http.header_timeout_secs = 1;
        c.http.max_connections_per_address = 4;
    })
    .await;
    let addr = running.bound.http.expect("the operator's listener").to_string();

    // Four idle connections hold the address's places; a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(&addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut fifth, Duration::from_secs(2)).await;
    assert!(closed, "a fifth connection from one address was kept");
    // They sent no headers: each is cut off after the header timeout.
    for tcp in &mut held {
        let (_, closed) = read_until_closed(tcp, Duration::from_secs(5)).await;
        assert!(closed, "a connection that sent no headers was kept");
    }
    drop(held);
    // A request that is not HTTP gets 400 and the connection closes; the listener still answers.
    let mut garbage = TcpStream::connect(&addr).await.expect("connect");
    garbage.write_all(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n").await.expect("written");
    let (answer, closed) = read_until_closed(&mut garbage, Duration::from_secs(5)).await;
    assert!(closed && answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // Methods other than GET are refused without reading on.
    let mut post = TcpStream::connect(&addr).await.expect("connect");
    post.write_all(b"POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        .await
        .expect("written");
    let (answer, _) = read_until_closed(&mut post, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer:?}");
    assert_eq!(http_get(&addr, "/healthz").await, (200, "ok\n".into()));
}

async fn http_raw(addr: &str, request: &[u8]) -> (u16, String, String) {
    let (status, head, body) = common::http_request(addr, request).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Vec<u8> {
    common::http_get_request(path, cookie)
}

fn login(org: &str, key: &str) -> Vec<u8> {
    common::console_login_request(org, key)
}

fn session_cookie(head: &str) -> Option<String> {
    common::session_cookie(head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_strangers_forged_sessions_and_oversized_or_odd_requests() {
    let (running, _dir) = start_with(|c| c.http.max_body_bytes = 4096).await;
    let addr = running.bound.http.expect("the operator's listener").to_string();
    let dev = running.dev.as_ref().expect("dev tenant");

    // No session, or a made-up one: to the login page, nothing shown.
    for cookie in [None, Some("hodi_console=0123456789abcdef"), Some("hodi_console=x; other=1")] {
        for path in ["/console/dashboard", "/console/api/overview", "/console/customers?q=x", "/console/phone"] {
            let (status, head, _) = http_raw(&addr, &get(path, cookie)).await;
            assert!(status == 303 && head.contains("location: /console/login"), "{path} {cookie:?}: {head}");
        }
    }
    // A wrong key, an absurd org id: 401 with the form, no cookie.
    for (org, key) in [(dev.org_id.as_str(), "wrong"), (&*"o".repeat(3000), "k")] {
        let (status, head, body) = http_raw(&addr, &login(org, key)).await;
        assert_eq!(status, 401, "{head}");
        assert!(body.contains("do not match") && session_cookie(&head).is_none(), "{head}");
    }
    // A body beyond `http.max_body_bytes` is refused unread.
    let huge = login(&dev.org_id, &"k".repeat(10_000));
    let (status, ..) = http_raw(&addr, &huge).await;
    assert_eq!(status, 413);

    // The right key: a session cookie, HttpOnly and SameSite=Strict, that opens the pages.
    let (status, head, _) = http_raw(&addr, &login(&dev.org_id, &dev.api_key)).await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("HttpOnly") && head.contains("SameSite=Strict") && head.contains("Path=/console"), "{head}");
    let first = session_cookie(&head).expect("a session cookie");
    let (status, head, body) = http_raw(&addr, &get("/console/api/overview", Some(&first))).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(head.contains("x-frame-options: DENY"), "{head}");
    let overview: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(overview["recent"].is_array(), "{overview}");

    // Paths that try to leave the assets or recordings: not found.
    for path in [
        "/console/assets/..%2F..%2FCargo.toml",
        "/console/assets/nothing.js",
        "/console/recordings/..%2F..%2Fetc/passwd.wav",
        "/console/recordings/call_1/..%2Fx.wav",
        "/console/recordings/call_1/rec_1.wav",
    ] {
        let (status, head, _) = http_raw(&addr, &get(path, Some(&first))).await;
        assert_eq!(status, 404, "{path}: {head}");
    }
    let (status, _, script) = http_raw(&addr, &get("/console/assets/phone.js", None)).await;
    assert!(status == 200 && script.contains("simulator_mode"), "{status}");

    // Sessions are bounded: past the cap, the oldest is gone.
    for _ in 0..hodi::console::login::MAX_SESSIONS {
        let (status, ..) = http_raw(&addr, &login(&dev.org_id, &dev.api_key)).await;
        assert_eq!(status, 303);
    }
    let (status, ..) = http_raw(&addr, &get("/console/api/overview", Some(&first))).await;
    assert_eq!(status, 303, "the oldest session outlived the cap");

    // Logging out ends the session.
    let (_, head, _) = http_raw(&addr, &login(&dev.org_id, &dev.api_key)).await;
    let cookie = session_cookie(&head).expect("cookie");
    let logout = format!("POST /console/logout HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let (status, head, _) = http_raw(&addr, logout.as_bytes()).await;
    assert!(status == 303 && head.contains("Max-Age=0"), "{head}");
    let (status, ..) = http_raw(&addr, &get("/console/dashboard", Some(&cookie))).await;
    assert_eq!(status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_once_the_store_stops_answering_while_healthz_stays_200() {
    let (running, _dir) = start_with(|_| {}).await;
    let addr = running.bound.http.expect("the operator's listener").to_string();
    assert_eq!(http_get(&addr, "/readyz").await, (200, "ready\n".into()));
    // The store's connections closed, as when the database goes away.
    running.hodi.store.pool().close().await;
    let (status, body) = http_get(&addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the store does not answer"), "{body}");
    assert_eq!(http_get(&addr, "/healthz").await, (200, "ok\n".into()), "the process itself still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_that_expire_undelivered_are_counted() {
    let (running, _dir) = start_with(|c| c.notify.ttl_secs = 1).await;
    let addr = running.bound.http.expect("the operator's listener").to_string();
    // Texts to an app with no socket: they wait, then their time to live runs out.
    let dev = running.dev.as_ref().expect("dev tenant");
    let phone = Simulator::connect(Options::new(
        Endpoint::Tcp(running.bound.tcp.expect("tcp").to_string()),
        &dev.org_id,
        &dev.app_id,
        Credentials::ApiKey(dev.api_key.clone()),
    ));
    phone.connected(WAIT).await.expect("phone connected");
    for i in 0..3 {
        let text = vec![hodi_sdk::wire::InboundMessageBody {
            entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(format!("late {i}"))),
        }];
        phone.receive_message("+254700777001", channel::sms("21356"), text, None).await.expect("texted");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, metrics) = http_get(&addr, "/metrics").await;
        if metric_sample(&metrics, "hodi_notifications_total", &["outcome=\"expired\""]).is_some_and(|n| n >= 3.0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "expired notifications not counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(running.hodi.store.outbox_len().await.expect("outbox"), 0, "they left the outbox");
}
