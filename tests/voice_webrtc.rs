//! Browser calls: headless Chromium (Debian's, driven by playwright-core: tests/peers/
//! webrtc_call.js) calls a voice number over Hodi's WebRTC gateway with a token the app minted,
//! hears the app's `say` (the level its own WebRTC stack measures), and presses a key through
//! RTCDTMFSender that reaches `getDigits`. A browser and a baresip phone in one conference hear
//! each other. And the signalling socket against hostile pages: bad
//! tokens, bad messages, a page that never calls, the per-address cap.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hodi_sdk::model::voice;
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Event, Reply};
use tokio_tungstenite::tungstenite::Message;

use common::sip::{app, baresip_with, PhoneOptions, WAIT};

/// The whole browser run.
const RUN: Duration = Duration::from_secs(90);

/// A server with the dev app connected and a token it minted for pages.
struct Browsing {
    running: hodi::server::Running,
    _dir: common::inproc::TestDir,
    dev: hodi::server::DevCredentials,
    client: hodi_sdk::Elarian,
    notifications: hodi_sdk::Notifications,
    token: String,
    http: std::net::SocketAddr,
}

async fn browsing(adjust: impl FnOnce(&mut hodi::config::Config)) -> Browsing {
    let (running, _dir) = common::inproc::start_with(adjust).await;
    let dev = running.dev.clone().expect("dev tenant");
    let (client, notifications) = app(&running).await;
    let token = client.generate_auth_token().await.expect("a token").token;
    let http = running.bound.http.expect("http listener");
    Browsing { running, _dir, dev, client, notifications, token, http }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_hears_the_app_and_its_key_reaches_get_digits() {
    let Browsing { running, _dir, dev, client: _client, mut notifications, token, http } = browsing(|_| {}).await;

    let mut command = page_command(http, &dev, &token, "web-visitor-1");
    command.env("HODI_PRESS", "5");
    let mut page = common::Talking::spawn(command);

    let deadline = tokio::time::Instant::now() + RUN;
    let (mut heard, mut setup_ms, mut ended, mut digits, mut customer) = (None, None, None, None, None);
    let mut page_done = false;
    while !page_done && tokio::time::Instant::now() < deadline {
        tokio::select! {
            line = page.next_line(deadline) => match line {
                Some(line) => {
                    let mut words = line.split_whitespace();
                    match words.next() {
                        Some("SETUP") => setup_ms = words.next().and_then(|w| w.parse::<u64>().ok()),
                        Some("HEARD") => heard = words.next().and_then(|w| w.parse::<f64>().ok()),
                        Some("ENDED") => ended = Some(words.collect::<Vec<_>>().join(" ")),
                        _ => {}
                    }
                }
                None => page_done = true,
            },
            n = notifications.next_within(WAIT) => {
                let Some(n) = n else { continue };
                let Event::ReceivedMessage(m) = &n.event else { continue };
                let Some(call) = m.voice().cloned() else { continue };
                customer = m.customer_number.clone().map(|c| (c.number, c.provider));
                if call.status == VoiceCallStatus::Answered as i32 {
                    let actions = vec![
                        voice::say("Welcome to Hodi, in your browser. Please listen to this whole sentence."),
                        voice::get_digits("Press five.", 1, Duration::from_secs(20)),
                    ];
                    n.reply(Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered");
                } else if let Some(d) = call.dtmf_digits.clone().filter(|d| !d.is_empty()) {
                    digits = Some(d.clone());
                    let bye = vec![voice::say(format!("You pressed {d}. Goodbye."))];
                    n.reply(Reply::message(hodi_sdk::model::message::voice(bye))).await.expect("answered");
                }
            }
        }
    }
    let (ok, output) = page.finish().await;
    assert!(ok, "the page failed\n{output}");
    let level = heard.unwrap_or_else(|| panic!("the page heard nothing\n{output}"));
    assert!(level > 0.05, "what the page heard was silence: {level}\n{output}");
    assert!(setup_ms.is_some_and(|ms| ms < 20_000), "setup {setup_ms:?}\n{output}");
    eprintln!("the page heard level {level}, first audio {setup_ms:?} ms after the socket opened");
    assert_eq!(digits.as_deref(), Some("5"), "the key pressed in the page reached getDigits\n{output}");
    assert_eq!(ended.as_deref(), Some("hung up"), "the app's goodbye ended the call\n{output}");
    let app_provider = hodi_sdk::wire::CustomerNumberProvider::App as i32;
    assert_eq!(customer, Some(("web-visitor-1".to_string(), app_provider)), "the app saw the page's customer");

    // The call's record, like a phone's: answered, audio both ways (the fake microphone's tone).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let records = running.hodi.store.call_records(10).await.expect("records");
        if let Some(r) = records.into_iter().next() {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "no call record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((record.caller.as_str(), record.callee.as_str()), ("web-visitor-1", "+254711082000"));
    assert_eq!((record.sip_status, record.ending.as_str()), (200, "we_hung_up"), "{record:?}");
    assert!(record.packets_sent >= 50 && record.packets_received >= 50, "{record:?}");
}

/// The page script with its environment (no key press unless `press`).
fn page_command(
    http: std::net::SocketAddr,
    dev: &hodi::server::DevCredentials,
    token: &str,
    from: &str,
) -> std::process::Command {
    let mut command = std::process::Command::new("node");
    command
        .arg(common::peers_dir().join("webrtc_call.js"))
        .current_dir(common::peers_dir())
        .env("HODI_HTTP_PORT", http.port().to_string())
        .env("HODI_ORG", &dev.org_id)
        .env("HODI_APP", &dev.app_id)
        .env("HODI_TOKEN", token)
        .env("HODI_TO", "+254711082000")
        .env("HODI_FROM", from);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_and_a_sip_phone_hear_each_other_in_one_conference() {
    let Browsing { running, _dir, dev, client: _client, mut notifications, token, http } = browsing(|_| {}).await;
    let sip = running.bound.sip.expect("SIP");

    // The app: every answered call sits in room "mixed" for 8 s; joins are counted.
    let app = tokio::spawn(async move {
        let (mut joined, mut completed) = (Vec::new(), 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while completed < 2 && tokio::time::Instant::now() < deadline {
            let Some(n) = notifications.next_within(WAIT).await else { continue };
            let Event::ReceivedMessage(m) = &n.event else { continue };
            let Some(v) = m.voice().cloned() else { continue };
            let who = m.customer_number.as_ref().map(|c| c.number.clone()).unwrap_or_default();
            let actions = if v.status == VoiceCallStatus::Answered as i32 {
                vec![common::sip::dial(&["conference:mixed"], Some(8))]
            } else if v.status == VoiceCallStatus::Bridged as i32 {
                joined.push(who);
                vec![]
            } else if v.status == VoiceCallStatus::DialCompleted as i32 {
                completed += 1;
                vec![]
            } else {
                continue;
            };
            n.reply(Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered");
        }
        joined
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let user = "+254700000120";
    let options = PhoneOptions { tone_hz: 450.0, dial: Some(format!("sip:+254711082000@{sip}")) };
    let phone = baresip_with(dir.path(), user, |_| format!("<sip:{user}@127.0.0.1>;regint=0"), options).await;
    let mut page = common::Talking::spawn(page_command(http, &dev, &token, "web-visitor-2"));
    let deadline = tokio::time::Instant::now() + RUN;
    let mut heard = None;
    while let Some(line) = page.next_line(deadline).await {
        if let Some(level) = line.strip_prefix("HEARD ") {
            heard = level.split_whitespace().next().and_then(|w| w.parse::<f64>().ok());
        }
    }
    let (ok, output) = page.finish().await;
    assert!(ok, "the page failed\n{output}");
    let joined = tokio::time::timeout(Duration::from_secs(60), app).await.expect("calls end").expect("app");
    assert!(joined.contains(&"web-visitor-2".to_string()) && joined.contains(&user.to_string()), "{joined:?}");
    // The page heard the phone's tone through the room (nothing else is in it) …
    let level = heard.unwrap_or_else(|| panic!("the page heard nothing in the room\n{output}"));
    assert!(level > 0.05, "{level}\n{output}");
    // … and the phone heard the page's fake microphone (its beeps: the loudest 20 ms of it).
    let samples = phone.heard(8000 * 3).await;
    let loudest = samples
        .chunks(160)
        .map(|f| (f.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / f.len() as f64).sqrt())
        .fold(0.0, f64::max);
    eprintln!("the page heard level {level}; the phone heard the page at RMS {loudest:.0}");
    assert!(loudest > 500.0, "the phone did not hear the page: loudest 20 ms at RMS {loudest:.0}");
}

/// Opens the signalling socket; the handshake's status when it is refused.
async fn open(
    http: std::net::SocketAddr,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, u16> {
    match tokio_tungstenite::connect_async(format!("ws://{http}/voice/webrtc")).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connecting: {e}"),
    }
}

/// Sends `message` and returns the gateway's `ended` reason (the socket closes after it).
async fn refused(http: std::net::SocketAddr, message: Message) -> String {
    let mut ws = open(http).await.expect("upgraded");
    ws.send(message).await.expect("sent");
    let reply = tokio::time::timeout(WAIT, ws.next()).await.expect("a reply in time").expect("a frame").expect("ok");
    let json: serde_json::Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(json["type"], "ended", "{json}");
    let closed = tokio::time::timeout(WAIT, ws.next()).await.expect("closed in time");
    assert!(matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))), "{closed:?}");
    json["reason"].as_str().unwrap_or_default().to_string()
}

fn call(org: &str, app: &str, token: &str, to: &str, sdp: &str) -> Message {
    let json = serde_json::json!({"type": "call", "orgId": org, "appId": app, "token": token, "to": to, "sdp": sdp});
    Message::text(json.to_string())
}

#[tokio::test]
async fn hostile_pages_get_clear_refusals_and_the_gateway_stays_bounded() {
    let Browsing { running: _first, _dir: _first_dir, dev, client, notifications: _notifications, token, http } =
        browsing(|c| c.voice.webrtc_max_calls_per_address = 2).await;
    let (org, app_id) = (dev.org_id.as_str(), dev.app_id.as_str());

    // A page that opens the socket and says nothing is told why and closed (10 s).
    let silent = async {
        let mut ws = open(http).await.expect("upgraded");
        let reply = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("ended in time");
        let text = reply.expect("a frame").expect("ok").into_text().expect("text").to_string();
        assert!(text.contains("no call within 10 s"), "{text}");
    };

    // Not a WebSocket at all.
    let plain = reqwest_like_get(http, "/voice/webrtc").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");

    // Messages that are not a call, or a call that is not well formed.
    assert!(refused(http, Message::text("hello")).await.contains("not a signalling message"));
    assert!(refused(http, Message::binary(vec![1, 2, 3])).await.contains("JSON text"));
    assert!(refused(http, Message::text(r#"{"type":"hangup"}"#)).await.contains("must be a call"));
    let injected = call(org, app_id, &token, "+2547\r\nVia: evil", "v=0");
    assert!(refused(http, injected).await.contains("to must be a number"));
    // A good token with an offer that is not SDP, and with one that has no audio.
    assert!(refused(http, call(org, app_id, &token, "+254711082000", "garbage")).await.contains("SDP"));

    silent.await;

    // Bad tokens: refused each time; after five from this address, the upgrade itself waits.
    for i in 0..5 {
        let reason = refused(http, call(org, app_id, &format!("hodi_tok_guess{i}"), "+254711082000", "v=0")).await;
        assert!(reason.contains("unknown token"), "{reason}");
    }
    let _ = refused(http, call(org, app_id, "hodi_tok_guess5", "+254711082000", "v=0")).await;
    assert_eq!(open(http).await.err(), Some(429), "an address guessing tokens is slowed down");

    // The per-address cap (2 here): a third socket from this address is refused before upgrade.
    // (A fresh server: this address is still waiting out its bad tokens on that one.)
    drop(client);
    let (running, _dir) = common::inproc::start_with(|c| c.voice.webrtc_max_calls_per_address = 2).await;
    let http = running.bound.http.expect("http listener");
    let first = open(http).await.expect("first");
    let second = open(http).await.expect("second");
    assert_eq!(open(http).await.err(), Some(503), "a third socket from one address");
    drop(first);
    // Its place comes back once the gateway notices (the session ends when the socket closes).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match open(http).await {
            Ok(_) => break,
            Err(503) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(code) => panic!("after one closed: {code}"),
        }
    }
    drop(second);
}

/// A plain HTTP GET; the raw response.
async fn reqwest_like_get(http: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(http).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_string(&mut out)).await;
    out
}
