//! Browser call setup: a WebRTC client of our own (str0m, as a browser would: full ICE,
//! controlling, DTLS client) calls the voice number through Hodi's gateway — the signalling
//! socket, the token check, ICE, DTLS-SRTP, the executor's call and the app's first action — and
//! the time from opening the socket to the first audio packet decrypted is measured, one call at
//! a time and then several at once. (Chromium cannot be driven here at rate; its own setup in
//! tests/voice_webrtc.rs is 0.2–0.5 s, microphone and ICE gathering included.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use hodi_sdk::model::{message, voice};
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input, Output, RtcConfig};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

/// How long one call may take to bring audio.
const PATIENCE: Duration = Duration::from_secs(20);

struct Level {
    concurrent: usize,
    calls: usize,
    failed: usize,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_call: f64,
}

/// One call: opened, answered, first audio; the setup time.
async fn one_call(http: SocketAddr, org: &str, app: &str, token: &str) -> Result<Duration> {
    let started = Instant::now();
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = RtcConfig::new().clear_codecs().enable_pcmu(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().context("an offer")?;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/voice/webrtc")).await?;
    let call = serde_json::json!({
        "type": "call", "orgId": org, "appId": app, "token": token, "to": "+254711082000",
        "sdp": offer.to_sdp_string(),
    });
    ws.send(Message::text(call.to_string())).await?;
    let answer = loop {
        let m = tokio::time::timeout(PATIENCE, ws.next()).await?.context("socket closed")??;
        let json: serde_json::Value = serde_json::from_str(m.to_text()?)?;
        match json["type"].as_str() {
            Some("answer") => break json["sdp"].as_str().unwrap_or_default().to_string(),
            Some("ended") => bail!("ended: {}", json["reason"]),
            _ => {}
        }
    };
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut buf = vec![0u8; 2048];
    loop {
        let wake = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    socket.send_to(&t.contents, t.destination).await?;
                }
                Output::Event(RtcEvent::MediaData(_)) => {
                    // The app's first words, decrypted.
                    let _ = ws.send(Message::text(r#"{"type":"hangup"}"#)).await;
                    return Ok(started.elapsed());
                }
                Output::Event(_) => {}
            }
        };
        if tokio::time::Instant::now() > deadline {
            bail!("no audio within {PATIENCE:?}");
        }
        let wake = tokio::time::Instant::from_std(wake).min(tokio::time::Instant::now() + Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                let contents = buf[..n].try_into()?;
                rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }))?;
            }
            _ = tokio::time::sleep_until(wake) => rtc.handle_input(Input::Timeout(Instant::now()))?,
            m = ws.next() => {
                if let Some(Ok(Message::Text(t))) = m {
                    if t.contains("\"ended\"") {
                        bail!("ended before audio: {t}");
                    }
                }
            }
        }
    }
}

async fn level(server: &super::BenchServer, token: &str, concurrent: usize, calls: usize) -> Result<Level> {
    let http = server.running.bound.http.context("http listener")?;
    let (org, app) = (server.dev.org_id.clone(), server.dev.app_id.clone());
    let cpu0 = super::cpu_seconds();
    let mut times = Vec::with_capacity(calls);
    let mut failed = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < calls || !tasks.is_empty() {
        while next < calls && tasks.len() < concurrent {
            let (org, app, token) = (org.clone(), app.clone(), token.to_string());
            tasks.spawn(async move { one_call(http, &org, &app, &token).await });
            next += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(t))) => times.push(t.as_secs_f64() * 1000.0),
            Some(Ok(Err(e))) => {
                failed += 1;
                eprintln!("a call failed: {e:#}");
            }
            Some(Err(e)) => bail!("a call task: {e}"),
            None => break,
        }
    }
    let cpu = super::cpu_seconds() - cpu0;
    // Let the gateway and executor finish the hung-up calls before the next level.
    let sip = server.running.sip.clone().context("voice executor")?;
    let idle = Instant::now() + Duration::from_secs(30);
    while sip.live() > 0 && Instant::now() < idle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Level {
        concurrent,
        calls,
        failed,
        p50_ms: super::percentile(&times, 0.5),
        p99_ms: super::percentile(&times, 0.99),
        cpu_ms_per_call: cpu * 1000.0 / times.len().max(1) as f64,
    })
}

async fn run(calls: usize) -> Result<Vec<Level>> {
    let server = super::BenchServer::start("webrtc", |c| {
        c.voice.sip_udp = "127.0.0.1:0".into();
        c.listen.http = "127.0.0.1:0".into();
        c.voice.webrtc_max_calls = 1000;
        c.voice.webrtc_max_calls_per_address = 1000;
        c.voice.max_calls_per_address = 1000;
    })
    .await?;
    let client = Elarian::connect(Options::new(
        Endpoint::Tcp(server.addr.clone()),
        &server.dev.org_id,
        &server.dev.app_id,
        Credentials::ApiKey(server.dev.api_key.clone()),
    ));
    client.connected(Duration::from_secs(10)).await?;
    let token = client.generate_auth_token().await?.token;
    let mut notifications = client.notifications()?;
    // The app: a greeting on answer (the same words each time: synthesised once, then cached).
    tokio::spawn(async move {
        while let Some(n) = notifications.next().await {
            let Event::ReceivedMessage(m) = &n.event else { continue };
            if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Answered as i32) {
                let greeting = message::voice(vec![voice::say("Welcome to Hodi. Thank you for calling.")]);
                let _ = n.reply(Reply::message(greeting)).await;
            }
        }
    });
    // A first call warms the prompt cache.
    level(&server, &token, 1, 1).await?;
    let mut levels = Vec::new();
    for concurrent in [1, 10] {
        levels.push(level(&server, &token, concurrent, calls).await?);
    }
    drop(client);
    server.stop();
    Ok(levels)
}

pub fn main(args: &[String]) -> Result<()> {
    let calls = super::arg(args, "--calls", 200.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let levels = runtime.block_on(run(calls))?;
    let mut table = String::from(
        "| calls at once | calls | failed | setup p50 | setup p99 | CPU per call (server + client) |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in &levels {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.1} ms |\n",
            l.concurrent, l.calls, l.failed, l.p50_ms, l.p99_ms, l.cpu_ms_per_call
        ));
    }
    let section = format!(
        "## Browser call setup (WebRTC)\n\n`hodi-bench webrtc --calls {calls}` on the embedded store: a str0m client (full ICE, \
         controlling, DTLS client — a browser's side) opens the signalling socket, sends its offer and the app's token, and \
         counts the time to the first audio packet it decrypts: the token check, ICE, the DTLS handshake, the executor's \
         call, the app's answer and its first `say` (cached). CPU is this whole process's (the gateway, the executor, the \
         app and the client), per call.\n\n{table}"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Browser call setup", &section)
}
