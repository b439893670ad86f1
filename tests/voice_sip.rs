//! The voice executor with a real SIP peer: sipp (Debian's sip-tester) calls a provisioned voice
//! number, an app written with hodi-sdk drives the call, and the caller presses 1 with RFC 4733
//! packets from sip-tester's pcap.

mod common;

use std::process::Stdio;
use std::time::Duration;

use hodi_sdk::model::voice;
use hodi_sdk::wire::{VoiceCallHangupCause, VoiceCallStatus};
use hodi_sdk::{Event, Reply};

use common::sip::{answered, app, baresip, rtp, sdp, sdp_port, to_tag, Caller, Peer, WAIT};

#[tokio::test]
async fn a_caller_hears_the_app_presses_1_and_the_app_hangs_up() {
    caller_presses_1("udp").await;
}

#[tokio::test]
async fn the_same_call_over_sip_tcp() {
    caller_presses_1("tcp").await;
}

async fn caller_presses_1(transport: &str) {
    let _ = tracing_subscriber::fmt().with_env_filter("hodi::voice=info").with_test_writer().try_init();
    let (running, _dir) = common::inproc::start().await;
    let dev = running.dev.clone().expect("dev tenant");
    let sip = match transport {
        "tcp" => running.sip.as_ref().expect("voice").tcp.expect("SIP over TCP"),
        _ => running.bound.sip.expect("SIP listener"),
    };
    let (_client, mut notifications) = app(&running).await;

    let mut sipp = caller_sipp("uac_press_1.xml", sip, if transport == "tcp" { "t1" } else { "u1" });

    // The app: a greeting and a prompt on answer, a confirmation of the key pressed.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the call did not finish: {seen:?}");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        let Event::ReceivedMessage(m) = &n.event else {
            seen.push(n.name().to_string());
            continue;
        };
        let Some(call) = m.voice().cloned() else { continue };
        seen.push(format!("status {} digits {:?} cause {}", call.status, call.dtmf_digits, call.hangup_cause));
        let digits = call.dtmf_digits.clone().unwrap_or_default();
        if call.status == VoiceCallStatus::Answered as i32 {
            let actions =
                vec![voice::say("Welcome to Hodi."), voice::get_digits("Press 1 to pay.", 1, Duration::from_secs(10))];
            n.reply(Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered");
        } else if !digits.is_empty() {
            n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say(format!(
                "You pressed {digits}."
            ))])))
            .await
            .expect("answered");
        } else if call.status == VoiceCallStatus::Completed as i32 {
            assert_eq!(call.hangup_cause, VoiceCallHangupCause::NormalClearing as i32);
            break;
        }
    }
    // Session notices come through the outbox and may arrive before or after the call's first.
    let first_voice = seen.iter().find(|s| s.starts_with("status"));
    assert_eq!(first_voice.map(String::as_str), Some("status 101 digits None cause 0"), "{seen:?}");
    assert!(seen.iter().any(|s| s.contains("digits Some(\"1\")")), "the key press reached the app: {seen:?}");
    let status = tokio::time::timeout(WAIT, sipp.wait()).await.expect("sipp finished").expect("sipp ran");
    let mut err = String::new();
    if let Some(mut e) = sipp.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "sipp saw the call fail: {status:?}\n{err}");

    // The call's record: answered, we hung up, audio went both ways.
    let records = records(&running, 1).await;
    let [r] = &records[..] else { panic!("one record: {records:?}") };
    assert_eq!(
        (r.direction.as_str(), r.caller.as_str(), r.callee.as_str()),
        ("inbound", "+254700000777", "+254711082000")
    );
    assert_eq!((r.sip_status, r.ending.as_str(), r.org_id.as_deref()), (200, "we_hung_up", Some(dev.org_id.as_str())));
    // "Welcome to Hodi." and "You pressed 1." are about two seconds of 20 ms packets.
    assert!(r.packets_sent >= 80, "{r:?}");
    assert!(r.packets_received >= 2 && r.packets_lost == 0, "the key press arrived: {r:?}");
    assert!(r.duration_ms >= 1_500 && r.answered_at.is_some(), "{r:?}");

    // `hodi calls` lists it, filtered and as JSON, with when it started and why it ended.
    let hodi_calls = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hodi"))
            .arg("calls")
            .args(args)
            .env("HODI_DATA_DIR", &running.hodi.config.data_dir)
            .env("HODI_DATABASE_URL", running.hodi.config.database_url())
            .output()
            .expect("hodi calls");
        assert!(out.status.success(), "hodi calls {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed: serde_json::Value =
        serde_json::from_str(&hodi_calls(&["--json", "--number", "+254700000777", "--since-mins", "5"])).expect("JSON");
    let mine = listed.as_array().and_then(|a| a.iter().find(|c| c["id"] == r.id.as_str())).expect("the call listed");
    assert_eq!((mine["sip_status"].as_i64(), mine["ending"].as_str()), (Some(200), Some("we_hung_up")));
    let outbound: serde_json::Value =
        serde_json::from_str(&hodi_calls(&["--json", "--direction", "outbound"])).expect("JSON");
    assert!(outbound.as_array().is_some_and(|a| a.iter().all(|c| c["id"] != r.id.as_str())), "filtered out");
    let table = hodi_calls(&["--number", "+254700000777"]);
    let line = table.lines().find(|l| l.contains(&r.id)).unwrap_or_else(|| panic!("{table}"));
    assert!(line.starts_with("20") && line.contains("Z ") && line.contains("answered"), "{line}");

    // The operator sees it in the metrics (other tests in this process may have added calls).
    let http = running.bound.http.expect("the operator's listener").to_string();
    let (_, metrics) = common::http_get(&http, "/metrics").await;
    let ended = ["direction=\"inbound\"", "ending=\"we_hung_up\""];
    assert!(common::metric_sample(&metrics, "hodi_calls_total", &ended) >= Some(1.0), "{metrics}");
    assert!(common::metric_sample(&metrics, "hodi_call_rtp_loss_ratio_count", &[]) >= Some(1.0), "{metrics}");
    // The greeting it played went out packet by packet, each one's lateness measured.
    let sent = common::metric_sample(&metrics, "hodi_rtp_send_lateness_seconds_count", &[]);
    assert!(sent >= Some(r.packets_sent as f64), "{} packets sent, lateness of {sent:?}:\n{metrics}", r.packets_sent);
    let active = common::metric_sample(&metrics, "hodi_calls_active", &["direction=\"inbound\""]);
    assert!(active.is_some_and(|n| n >= 0.0), "calls in progress are counted (and counted out):\n{metrics}");
}

/// The call records once `n` are stored (each is written as its call task ends).
async fn records(running: &hodi::server::Running, n: usize) -> Vec<hodi::store::calls::CallRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = running.hodi.store.call_records(100).await.expect("records");
        if r.len() >= n || tokio::time::Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_sip_and_calls_hodi_cannot_take_get_the_right_error_and_the_listener_lives_on() {
    let (running, _dir) = common::inproc::start().await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;

    // Garbage and a request without Call-ID: 400 with a Warning where a response is possible.
    peer.send("\0\x01garbage that is not SIP").await;
    let me = peer.addr();
    peer.send(&format!("OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKa\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")).await;
    let r = peer.responses().await;
    assert_eq!(r.last().map(|x| x.0), Some(400), "{r:?}");
    assert!(r[0].1.contains("Warning: 399 hodi \"missing Call-ID header\""), "{}", r[0].1);

    // OPTIONS: 200 with what we allow.
    peer.send(&format!("OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKb\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")).await;
    let r = peer.responses().await;
    assert!(r.last().is_some_and(|x| x.0 == 200 && x.1.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS")), "{r:?}");

    // A BYE for no call: 481.
    peer.send(&format!("BYE sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>;tag=2\nCall-ID: nothing\nCSeq: 2 BYE\nContent-Length: 0\n\n")).await;
    assert_eq!(peer.responses().await.last().map(|x| x.0), Some(481));

    // A number nobody provisioned: 404 at once, statelessly (no call exists to retransmit it; a
    // retransmitted INVITE is refused again).
    peer.send(&peer.invite("c404", "+19999999", &sdp(4000, "0"))).await;
    let r = peer.responses().await;
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![404], "{r:?}");
    peer.send(&peer.invite("c404", "+19999999", &sdp(4000, "0"))).await;
    assert_eq!(peer.responses().await.iter().map(|x| x.0).collect::<Vec<_>>(), vec![404], "the retransmission");
    peer.send(&peer.ack("c404", "+19999999", &to_tag(&r[0].1))).await;

    // An offer with no codec we speak: 488 saying why.
    peer.send(&peer.invite("c488", "+254711082000", &format!("{}a=rtpmap:18 G729/8000\n", sdp(4000, "18")))).await;
    let r = peer.responses().await;
    let last = r.last().expect("a final response");
    assert_eq!(last.0, 488, "{r:?}");
    assert!(last.1.contains("no codec in common"), "{}", last.1);
    peer.send(&peer.ack("c488", "+254711082000", &to_tag(&last.1))).await;

    // No app connected: nobody takes the call (480).
    peer.send(&peer.invite("c480", "+254711082000", &sdp(4000, "0 101"))).await;
    let r = peer.responses().await;
    assert_eq!(r.last().map(|x| x.0), Some(480), "{r:?}");
    peer.send(&peer.ack("c480", "+254711082000", &to_tag(&r.last().expect("final").1))).await;

    // Still listening: OPTIONS answered.
    peer.send(&format!("OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKd\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: o2\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")).await;
    assert_eq!(peer.responses().await.last().map(|x| x.0), Some(200));
    // Refusals before any org owned the call (404, 488) are counted, not stored; 480 was to the
    // dev org's number, so it is that org's call record.
    let rec = records(&running, 1).await;
    let statuses: Vec<i64> = rec.iter().map(|r| r.sip_status).collect();
    assert_eq!(statuses, vec![480], "{statuses:?}");
    assert_eq!(running.sip.as_ref().expect("voice").refusals.total(), 3);
}

#[tokio::test]
async fn an_app_that_rejects_gets_603_sent_and_a_caller_who_hangs_up_mid_prompt_is_heard() {
    let (running, _dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;

    // The app rejects the first call.
    peer.send(&peer.invite("rej", "+254711082000", &sdp(4000, "0 101"))).await;
    let n = answered(&mut notifications).await;
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::reject()]))).await.expect("answered");
    let r = peer.responses().await;
    let last = r.last().expect("final");
    assert_eq!(last.0, 603, "{r:?}");
    peer.send(&peer.ack("rej", "+254711082000", &to_tag(&last.1))).await;

    // The second call gets a long prompt; the caller hangs up in the middle of it.
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let port = rtp.local_addr().expect("addr").port();
    peer.send(&peer.invite("mid", "+254711082000", &sdp(port, "0 101"))).await;
    let answered = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Answered as i32) {
                break n;
            }
        }
    };
    let long = "This is a very long announcement that nobody will listen to until the end. ".repeat(4);
    answered.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say(long)]))).await.expect("answered");
    let r = peer.responses().await;
    let ok = r.last().expect("final");
    assert_eq!(ok.0, 200, "{r:?}");
    let tag = to_tag(&ok.1);
    peer.send(&peer.ack("mid", "+254711082000", &tag)).await;
    // Audio arrives, then the caller hangs up.
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, rtp.recv_from(&mut buf)).await.expect("RTP within 30 s").expect("recv");
    assert_eq!(n, 12 + 160, "20 ms of G.711");
    let me = peer.addr();
    peer.send(&format!(
        "BYE sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbye\nFrom: <sip:+254700000888@{me}>;tag=tmid\n\
         To: <sip:+254711082000@h>;tag={tag}\nCall-ID: mid\nCSeq: 2 BYE\nContent-Length: 0\n\n"
    ))
    .await;
    assert_eq!(peer.responses().await.last().map(|x| x.0), Some(200));
    let deadline = tokio::time::Instant::now() + WAIT;
    let hung_up = loop {
        assert!(tokio::time::Instant::now() < deadline, "no hang-up notification");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if let Some(v) = m.voice().filter(|v| v.status == VoiceCallStatus::Completed as i32) {
                break v.clone();
            }
        }
    };
    assert_eq!(hung_up.hangup_cause, VoiceCallHangupCause::NormalClearing as i32);
    let rec = records(&running, 2).await;
    let endings: Vec<(&str, i64)> = rec.iter().map(|r| (r.ending.as_str(), r.sip_status)).collect();
    assert!(endings.contains(&("rejected", 603)) && endings.contains(&("customer_hung_up", 200)), "{endings:?}");
    let mid = rec.iter().find(|r| r.ending == "customer_hung_up").expect("the hung-up call");
    // Far less than the whole announcement (tens of seconds) was sent.
    assert!(mid.packets_sent >= 1 && mid.duration_ms < 10_000, "{mid:?}");
}

#[tokio::test]
async fn a_voice_message_calls_the_customer_through_the_trunk_and_the_app_drives_the_call() {
    let phone_port = common::free_port();
    let (running, _dir) = common::inproc::start_with(|c| c.voice.trunk = format!("127.0.0.1:{phone_port}")).await;
    let (client, mut notifications) = app(&running).await;

    // The customer's phone: sipp answering on the trunk address.
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip/uas_answer_press_2.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &phone_port.to_string()])
        .args(["-mp", &common::free_port().to_string(), "-m", "1", "-timeout", "60s", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)");
    tokio::time::sleep(Duration::from_millis(500)).await; // sipp binds its port

    let hello = hodi_sdk::model::message::voice(vec![voice::say("Hello from Hodi.")]);
    let sent = client
        .customer("+254700000999")
        .send_message(hodi_sdk::model::channel::voice("+254711082000"), hello)
        .await
        .expect("the call is placed");
    assert_eq!(sent.status, "SESSION_INITIATED", "{sent:?}");

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the call did not finish: {seen:?}");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        let Event::ReceivedMessage(m) = &n.event else { continue };
        let Some(call) = m.voice().cloned() else { continue };
        seen.push((call.status, call.direction, call.dtmf_digits.clone()));
        if call.status == VoiceCallStatus::Answered as i32 {
            let more = vec![voice::get_digits("Press 2 to hear your balance.", 1, Duration::from_secs(10))];
            n.reply(Reply::message(hodi_sdk::model::message::voice(more))).await.expect("answered");
        } else if call.dtmf_digits.as_deref() == Some("2") {
            let bye = vec![voice::say("Your balance is five hundred shillings.")];
            n.reply(Reply::message(hodi_sdk::model::message::voice(bye))).await.expect("answered");
        } else if call.status == VoiceCallStatus::Completed as i32 {
            break;
        }
    }
    let outbound = hodi_sdk::wire::CustomerEventDirection::Outbound as i32;
    assert_eq!(seen.first(), Some(&(VoiceCallStatus::Answered as i32, outbound, None)), "{seen:?}");
    assert!(seen.iter().any(|s| s.2.as_deref() == Some("2")), "the key press reached the app: {seen:?}");
    let status = tokio::time::timeout(WAIT, sipp.wait()).await.expect("sipp finished").expect("sipp ran");
    assert!(status.success(), "the phone saw the call fail: {status:?}");

    let records = records(&running, 1).await;
    let [r] = &records[..] else { panic!("one record: {records:?}") };
    assert_eq!(
        (r.direction.as_str(), r.caller.as_str(), r.callee.as_str()),
        ("outbound", "+254711082000", "+254700000999")
    );
    assert_eq!((r.sip_status, r.ending.as_str()), (200, "we_hung_up"));
    assert!(r.packets_sent >= 80 && r.packets_received >= 2, "{r:?}");
}

/// Fetches a URL over plain HTTP/1.0 (what the recordings listener serves).
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
    tcp.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await.expect("request");
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut all)).await.expect("in time").expect("read");
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    let code = String::from_utf8_lossy(&all[9..12]).parse().unwrap_or(0);
    (code, all[split + 4..].to_vec())
}

#[tokio::test]
async fn a_caller_leaves_a_message_and_the_app_gets_a_recording_it_can_fetch() {
    let (running, _dir) = common::inproc::start().await;
    let sip = running.bound.sip.expect("SIP listener");
    let (_client, mut notifications) = app(&running).await;
    let mut sipp = caller_sipp("uac_leave_message.xml", sip, "u1");

    let mut recording = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let session_recording = loop {
        assert!(tokio::time::Instant::now() < deadline, "the call did not finish");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        let Event::ReceivedMessage(m) = &n.event else { continue };
        let Some(call) = m.voice().cloned() else { continue };
        if call.status == VoiceCallStatus::Answered as i32 {
            // The whole call is recorded too; then the message itself.
            let record = hodi_sdk::wire::VoiceCallAction {
                entry: Some(hodi_sdk::wire::voice_call_action::Entry::RecordSession(Default::default())),
            };
            let get = hodi_sdk::wire::VoiceCallAction {
                entry: Some(hodi_sdk::wire::voice_call_action::Entry::GetRecording(
                    hodi_sdk::wire::GetRecordingCallAction {
                        timeout: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
                        max_length: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                        finish_on_key: Some("#".into()),
                        play_beep: true,
                        trim_silence: true,
                        prompt: Some(hodi_sdk::wire::get_recording_call_action::Prompt::Say(
                            hodi_sdk::wire::SayCallAction {
                                text: "Leave a message.".into(),
                                voice: 0,
                                play_beep: false,
                            },
                        )),
                    },
                )),
            };
            n.reply(Reply::message(hodi_sdk::model::message::voice(vec![record, get]))).await.expect("answered");
        } else if let Some(url) =
            call.recording_url.clone().filter(|_| call.status != VoiceCallStatus::Completed as i32)
        {
            recording = Some(url);
            n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say("Thank you.")])))
                .await
                .expect("answered");
        } else if call.status == VoiceCallStatus::Completed as i32 {
            break call.recording_url.clone();
        }
    };
    let status = tokio::time::timeout(WAIT, sipp.wait()).await.expect("sipp finished").expect("sipp ran");
    assert!(status.success(), "sipp saw the call fail: {status:?}");

    // The message: several seconds of the caller's (non-silent) audio, 8 kHz mono.
    let url = recording.expect("a recording URL after getRecording");
    let (code, wav) = http_get(&url).await;
    assert_eq!(code, 200, "{url}");
    let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).expect("a WAV");
    assert_eq!((reader.spec().sample_rate, reader.spec().channels), (8000, 1));
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.expect("sample")).collect();
    assert!(samples.len() >= 8000 * 3 && samples.len() <= 8000 * 15, "{} samples", samples.len());
    let level = samples.iter().map(|s| i64::from(*s).abs()).sum::<i64>() / samples.len() as i64;
    assert!(level > 300, "the recording holds the caller's audio (mean level {level})");
    // The whole call: longer than the message, and reachable too.
    let session = session_recording.expect("recordSession's URL on the hang-up");
    let (code, whole) = http_get(&session).await;
    assert_eq!(code, 200);
    assert!(whole.len() > wav.len(), "the session recording covers the whole call");
    // Paths outside the recordings are refused.
    let base = url.split("/recordings/").next().expect("base");
    assert_eq!(http_get(&format!("{base}/recordings/../x.wav")).await.0, 404);
    assert_eq!(http_get(&format!("{base}/recordings/call_x/..%2F..%2Fhodi.db")).await.0, 404);

    // The org's console lists the call with players for both recordings, served to its session.
    let http = running.bound.http.expect("the operator's listener").to_string();
    let dev = running.dev.as_ref().expect("dev tenant");
    let (_, head, _) = common::http_request(&http, &common::console_login_request(&dev.org_id, &dev.api_key)).await;
    let cookie = common::session_cookie(&head).expect("logged in");
    let (status, _, page) =
        common::http_request(&http, &common::http_get_request("/console/calls", Some(&cookie))).await;
    let page = String::from_utf8_lossy(&page).into_owned();
    assert_eq!(status, 200);
    let players: Vec<&str> =
        page.split("src=\"").skip(1).filter_map(|s| s.split('"').next()).filter(|s| s.ends_with(".wav")).collect();
    assert_eq!(players.len(), 2, "a player per recording: {page}");
    let file = url.rsplit('/').next().expect("file name");
    let mine = players.iter().find(|p| p.ends_with(file)).expect("the message's player");
    let (status, head, body) = common::http_request(&http, &common::http_get_request(mine, Some(&cookie))).await;
    assert!(status == 200 && head.contains("audio/wav"), "{head}");
    assert!(body == wav, "the console plays the same recording ({} bytes, {} expected)", body.len(), wav.len());
    let (status, ..) = common::http_request(&http, &common::http_get_request(mine, None)).await;
    assert_eq!(status, 303, "not without a session");
}

/// Packets on `socket` whose payload is filled with `fill`, within `wait`.
async fn count_fill(socket: &tokio::net::UdpSocket, fill: u8, wait: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        if len == 172 && buf[12..len].iter().all(|b| *b == fill) {
            n += 1;
        }
    }
    n
}

/// A caller (PCMU) on the dev number whose app records the call and dials +254700000321 through
/// a hand-driven trunk that answers with `answer_formats`: everything the bridge tests need.
struct Bridged {
    running: hodi::server::Running,
    _dir: common::inproc::TestDir,
    notifications: hodi_sdk::Notifications,
    _client: hodi_sdk::Elarian,
    trunk: tokio::net::UdpSocket,
    trunk_addr: std::net::SocketAddr,
    caller: Peer,
    a_rtp: tokio::net::UdpSocket,
    b_rtp: tokio::net::UdpSocket,
    hodi_a_port: u16,
    hodi_b_port: u16,
    hodi_sip: std::net::SocketAddr,
    invite: String,
}

async fn bridged(answer_formats: &str) -> Bridged {
    // The trunk: a hand-driven phone that answers whatever Hodi dials.
    let trunk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let trunk_addr = trunk.local_addr().expect("addr");
    let (running, _dir) = common::inproc::start_with(|c| c.voice.trunk = trunk_addr.to_string()).await;
    let (_client, mut notifications) = app(&running).await;

    // The caller.
    let caller = Peer::new(running.bound.sip.expect("SIP")).await;
    let a_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    caller.send(&caller.invite("dial1", "+254711082000", &sdp(a_rtp.local_addr().expect("a").port(), "0 101"))).await;
    let n = answered(&mut notifications).await;
    let dial = hodi_sdk::wire::VoiceCallAction {
        entry: Some(hodi_sdk::wire::voice_call_action::Entry::Dial(hodi_sdk::wire::DialCallAction {
            customer_numbers: vec![hodi_sdk::model::cellular("+254700000321")],
            record: true,
            sequential: true,
            ringback_tone: None,
            caller_id: None,
            max_duration: Some(60),
        })),
    };
    let record = hodi_sdk::wire::VoiceCallAction {
        entry: Some(hodi_sdk::wire::voice_call_action::Entry::RecordSession(Default::default())),
    };
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![record, dial]))).await.expect("answered");
    let r = caller.responses().await;
    let ok = r.last().expect("final");
    assert_eq!(ok.0, 200, "{r:?}");
    let a_tag = to_tag(&ok.1);
    let hodi_a_port = sdp_port(&ok.1);
    caller.send(&caller.ack("dial1", "+254711082000", &a_tag)).await;

    // Hodi dials the trunk: answer it, pointing its audio at the B side's RTP socket.
    let b_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let mut buf = vec![0u8; 65536];
    let (len, hodi_sip) =
        tokio::time::timeout(WAIT, trunk.recv_from(&mut buf)).await.expect("an INVITE").expect("recv");
    let invite = String::from_utf8_lossy(&buf[..len]).to_string();
    assert!(invite.starts_with("INVITE sip:+254700000321@"), "{invite}");
    assert!(invite.contains("From: <sip:+254711082000@"), "the caller id is our number: {invite}");
    let hodi_b_port = sdp_port(&invite);
    let header = |name: &str| invite.lines().find(|l| l.starts_with(name)).expect(name).to_string();
    let answer_sdp = sdp(b_rtp.local_addr().expect("b").port(), answer_formats).replace('\n', "\r\n");
    let ok_b = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=phoneb\r\n{}\r\n{}\r\nContact: <sip:phone@{trunk_addr}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer_sdp}",
        header("Via:"),
        header("From:"),
        header("To:"),
        header("Call-ID:"),
        header("CSeq:"),
        answer_sdp.len()
    );
    trunk.send_to(ok_b.as_bytes(), hodi_sip).await.expect("200");
    let (len, _) = tokio::time::timeout(WAIT, trunk.recv_from(&mut buf)).await.expect("the ACK").expect("recv");
    assert!(String::from_utf8_lossy(&buf[..len]).starts_with("ACK "), "ACK for the 200");
    tokio::time::sleep(Duration::from_millis(300)).await; // the bridge is up
    Bridged {
        running,
        _dir,
        notifications,
        _client,
        trunk,
        trunk_addr,
        caller,
        a_rtp,
        b_rtp,
        hodi_a_port,
        hodi_b_port,
        hodi_sip,
        invite,
    }
}

#[tokio::test]
async fn dial_bridges_the_caller_and_the_dialled_phone_both_ways_and_records_both() {
    let Bridged {
        running,
        _dir,
        mut notifications,
        _client,
        trunk,
        trunk_addr,
        caller,
        a_rtp,
        b_rtp,
        hodi_a_port,
        hodi_b_port,
        hodi_sip,
        invite,
    } = bridged("0 101").await;
    let header = |name: &str| invite.lines().find(|l| l.starts_with(name)).expect(name).to_string();
    let mut buf = vec![0u8; 65536];

    // Audio both ways: the caller's reaches the phone, the phone's reaches the caller.
    for seq in 0..25u16 {
        a_rtp.send_to(&rtp(seq, 0, 0x11), ("127.0.0.1", hodi_a_port)).await.expect("a → hodi");
        b_rtp.send_to(&rtp(seq, 0, 0x22), ("127.0.0.1", hodi_b_port)).await.expect("b → hodi");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (to_b, to_a) = tokio::join!(
        count_fill(&b_rtp, 0x11, Duration::from_secs(1)),
        count_fill(&a_rtp, 0x22, Duration::from_secs(1))
    );
    assert!(to_b >= 20, "the phone heard the caller: {to_b} of 25");
    assert!(to_a >= 20, "the caller heard the phone: {to_a} of 25");

    // The phone hangs up; the app hears how the dial went and ends the call.
    let call_id = header("Call-ID:");
    let bye = format!(
        "BYE sip:+254711082000@{} SIP/2.0\r\nVia: SIP/2.0/UDP {trunk_addr};branch=z9hG4bKbyeb\r\nFrom: {};tag=phoneb\r\n{}\r\n{call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        hodi_sip,
        header("To:").trim_start_matches("To: "),
        header("From:").replacen("From:", "To:", 1),
    );
    trunk.send_to(bye.as_bytes(), hodi_sip).await.expect("bye");
    let dialled = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if let Some(v) = m.voice().filter(|v| v.status == VoiceCallStatus::DialCompleted as i32) {
                let v = v.clone();
                n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say("Goodbye.")])))
                    .await
                    .expect("answered");
                break v;
            }
        }
    };
    let data = dialled.dial_data.expect("dialData");
    assert_eq!(data.destination_number, "+254700000321");
    assert!(data.duration.is_some_and(|d| d.seconds >= 0) && data.started_at.is_some());
    // Hodi hangs up on the caller after "Goodbye"; the hang-up carries the call's recording.
    let (len, _) = loop {
        let got =
            tokio::time::timeout(WAIT, caller.socket.recv_from(&mut buf)).await.expect("Hodi's BYE").expect("recv");
        if buf[..got.0].starts_with(b"BYE ") {
            break got;
        }
    };
    let bye_a = String::from_utf8_lossy(&buf[..len]).to_string();
    let ok_a = bye_a
        .lines()
        .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
        .collect::<Vec<_>>()
        .join("\r\n");
    caller
        .socket
        .send_to(
            format!("SIP/2.0 200 OK\r\n{ok_a}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            running.bound.sip.expect("sip"),
        )
        .await
        .expect("200");
    let completed = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if let Some(v) = m.voice().filter(|v| v.status == VoiceCallStatus::Completed as i32) {
                break v.clone();
            }
        }
    };
    let url = completed.recording_url.expect("the session recording");
    let (code, wav) = http_get(&url).await;
    assert_eq!(code, 200);
    let samples: Vec<i16> = hound::WavReader::new(std::io::Cursor::new(&wav))
        .expect("wav")
        .into_samples::<i16>()
        .map(|s| s.expect("s"))
        .collect();
    // μ-law 0x11 is -15,484 and 0x22 is -7,420: only both legs mixed (sent at the same moments)
    // pass 20,000, so such samples prove the recording holds the caller and the phone together.
    let both = samples.iter().filter(|s| s.unsigned_abs() > 20_000).count();
    assert!(both >= 10 * 160, "both legs recorded together: {both} mixed samples");

    let records = records(&running, 2).await;
    let dirs: Vec<(&str, &str)> = records.iter().map(|r| (r.direction.as_str(), r.callee.as_str())).collect();
    assert!(dirs.contains(&("inbound", "+254711082000")) && dirs.contains(&("outbound", "+254700000321")), "{dirs:?}");
    let leg = records.iter().find(|r| r.direction == "outbound").expect("the dialled leg");
    assert_eq!((leg.ending.as_str(), leg.sip_status), ("customer_hung_up", 200), "the phone hung up: {leg:?}");
}

#[tokio::test]
async fn a_dialled_phone_answering_in_a_law_is_bridged_to_a_mu_law_caller_through_transcoding() {
    let b = bridged("8 101").await;
    assert!(b.invite.contains("RTP/AVP 0 8 101"), "both laws offered, the caller's first: {}", b.invite);
    // The caller speaks μ-law, the phone A-law: each hears the other in its own law.
    let a_law = hodi::voice::media::g711::ulaw_to_alaw(0x11);
    let mu_law = hodi::voice::media::g711::alaw_to_ulaw(0x22);
    let (mut to_b, mut to_a) = (0, 0);
    let mut buf = [0u8; 2048];
    for seq in 0..40u16 {
        b.a_rtp.send_to(&rtp(seq, 0, 0x11), ("127.0.0.1", b.hodi_a_port)).await.expect("a → hodi");
        b.b_rtp.send_to(&rtp(seq, 8, 0x22), ("127.0.0.1", b.hodi_b_port)).await.expect("b → hodi");
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(1), b.b_rtp.recv_from(&mut buf)).await {
            if n == 172 && buf[1] & 0x7F == 8 && buf[12..n].iter().all(|x| *x == a_law) {
                to_b += 1;
            }
        }
        while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(1), b.a_rtp.recv_from(&mut buf)).await {
            if n == 172 && buf[1] & 0x7F == 0 && buf[12..n].iter().all(|x| *x == mu_law) {
                to_a += 1;
            }
        }
    }
    assert!(to_b >= 30, "the A-law phone heard the caller in A-law: {to_b} of 40");
    assert!(to_a >= 30, "the μ-law caller heard the phone in μ-law: {to_a} of 40");
    drop(b.running);
}

#[tokio::test]
async fn a_queue_holds_the_first_caller_until_the_second_dequeues_and_they_talk() {
    let (running, _dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let sip = running.bound.sip.expect("SIP");
    let action = |entry| hodi_sdk::wire::VoiceCallAction { entry: Some(entry) };

    // The first caller waits in "support" (hold music: the default tone).
    let waiter = Peer::new(sip).await;
    let w_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    waiter.send(&waiter.invite("q1", "+254711082000", &sdp(w_rtp.local_addr().expect("w").port(), "0 101"))).await;
    let n = answered(&mut notifications).await;
    let enqueue = action(hodi_sdk::wire::voice_call_action::Entry::Enqueue(hodi_sdk::wire::EnqueueCallAction {
        hold_music: None,
        queue_name: Some("support".into()),
    }));
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![enqueue]))).await.expect("answered");
    let ok = waiter.responses().await.pop().expect("200");
    assert_eq!(ok.0, 200);
    waiter.send(&waiter.ack("q1", "+254711082000", &to_tag(&ok.1))).await;
    let hodi_w_port = sdp_port(&ok.1);
    // On hold: RTP (the hold tone) arrives while nobody takes the call.
    let mut buf = [0u8; 2048];
    tokio::time::timeout(WAIT, w_rtp.recv_from(&mut buf)).await.expect("hold audio").expect("recv");

    // The second caller (an agent) dequeues.
    let agent = Peer::new(sip).await;
    let a_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    agent.send(&agent.invite("q2", "+254711082000", &sdp(a_rtp.local_addr().expect("a").port(), "0 101"))).await;
    let n = loop {
        let n = notifications.next_within(WAIT).await.expect("the second call");
        if let Event::ReceivedMessage(m) = &n.event {
            if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Answered as i32) {
                break n;
            }
        }
    };
    let dequeue = action(hodi_sdk::wire::voice_call_action::Entry::Dequeue(hodi_sdk::wire::DequeueCallAction {
        channel_number: None,
        record: false,
        queue_name: Some("support".into()),
    }));
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![dequeue]))).await.expect("answered");
    let ok = agent.responses().await.pop().expect("200");
    assert_eq!(ok.0, 200);
    let agent_tag = to_tag(&ok.1);
    agent.send(&agent.ack("q2", "+254711082000", &agent_tag)).await;
    let hodi_a_port = sdp_port(&ok.1);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // They hear each other.
    for seq in 0..25u16 {
        w_rtp.send_to(&rtp(seq, 0, 0x11), ("127.0.0.1", hodi_w_port)).await.expect("w → hodi");
        a_rtp.send_to(&rtp(seq, 0, 0x22), ("127.0.0.1", hodi_a_port)).await.expect("a → hodi");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (to_agent, to_waiter) = tokio::join!(
        count_fill(&a_rtp, 0x11, Duration::from_secs(1)),
        count_fill(&w_rtp, 0x22, Duration::from_secs(1))
    );
    assert!(to_agent >= 20 && to_waiter >= 20, "bridged both ways: {to_agent} and {to_waiter} of 25");

    // The agent hangs up; the waiting caller's app hears it was dequeued, with the queue data.
    let me = agent.addr();
    agent
        .send(&format!(
            "BYE sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKqb\nFrom: <sip:+254700000888@{me}>;tag=tq2\n\
             To: <sip:+254711082000@h>;tag={agent_tag}\nCall-ID: q2\nCSeq: 2 BYE\nContent-Length: 0\n\n"
        ))
        .await;
    let dequeued = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if let Some(v) = m.voice().filter(|v| v.status == VoiceCallStatus::Dequeued as i32) {
                let v = v.clone();
                n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say("Thanks for waiting.")])))
                    .await
                    .expect("ok");
                break v;
            }
        }
    };
    let q = dequeued.queue_data.expect("queueData");
    assert_eq!(q.dequeued_to_number.as_deref(), Some("+254700000888"));
    assert!(q.enqueued_at.is_some() && q.dequeued_at.is_some());
}

#[tokio::test]
async fn cancel_while_ringing_hold_by_re_invite_and_garbage_rtp_are_handled() {
    let (running, _dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;
    let me = peer.addr();

    // CANCEL while the app is still deciding: 200 for the CANCEL, 487 for the INVITE.
    peer.send(&peer.invite("cx", "+254711082000", &sdp(4000, "0"))).await;
    let held = answered(&mut notifications).await;
    peer.send(&format!(
        "CANCEL sip:+254711082000@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKcx\nFrom: <sip:+254700000888@{me}>;tag=tcx\n\
         To: <sip:+254711082000@h>\nCall-ID: cx\nCSeq: 1 CANCEL\nContent-Length: 0\n\n"
    ))
    .await;
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 65536];
    while codes.len() < 2 {
        let (n, _) =
            tokio::time::timeout(WAIT, peer.socket.recv_from(&mut buf)).await.expect("responses").expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let code: u16 = text[8..11].parse().unwrap_or(0);
        if code == 487 {
            // The 487 is retransmitted until ACKed, as any final response to an INVITE.
            peer.send(&peer.ack("cx", "+254711082000", &to_tag(&text))).await;
        }
        if code >= 200 {
            codes.push((code, text.lines().find(|l| l.starts_with("CSeq:")).unwrap_or_default().to_string()));
        }
    }
    assert!(
        codes.contains(&(200, "CSeq: 1 CANCEL".into())) && codes.contains(&(487, "CSeq: 1 INVITE".into())),
        "{codes:?}"
    );
    drop(held);

    // A call on hold: re-INVITE with sendonly stops our audio; sendrecv brings it back.
    let rtp_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let port = rtp_sock.local_addr().expect("addr").port();
    peer.send(&peer.invite("hold", "+254711082000", &sdp(port, "0 101"))).await;
    let n = answered(&mut notifications).await;
    let long = "one two three four five six seven eight nine ten eleven twelve. ".repeat(6);
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say(long)]))).await.expect("answered");
    let ok = peer.responses().await.pop().expect("200");
    let tag = to_tag(&ok.1);
    peer.send(&peer.ack("hold", "+254711082000", &tag)).await;
    let hodi_port = sdp_port(&ok.1);
    tokio::time::timeout(WAIT, rtp_sock.recv_from(&mut buf)).await.expect("audio before hold").expect("recv");
    // Garbage to the RTP port changes nothing.
    for junk in [&b"\x00\x01\x02"[..], &[0xFFu8; 300][..], &b"\x80"[..]] {
        rtp_sock.send_to(junk, ("127.0.0.1", hodi_port)).await.expect("junk");
    }
    let reinvite = |cseq: u32, direction: &str| {
        let body = format!("{}a={direction}\n", sdp(port, "0 101")).replace('\n', "\r\n");
        format!(
            "INVITE sip:+254711082000@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKre{cseq}\nFrom: <sip:+254700000888@{me}>;tag=thold\n\
             To: <sip:+254711082000@h>;tag={tag}\nCall-ID: hold\nCSeq: {cseq} INVITE\nContent-Type: application/sdp\nContent-Length: {}\n\n{body}",
            body.len()
        )
    };
    peer.send(&reinvite(2, "sendonly")).await;
    let r = peer.responses().await;
    assert_eq!(r.last().map(|x| x.0), Some(200), "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), rtp_sock.recv_from(&mut buf)).await {}
    let quiet = tokio::time::timeout(Duration::from_millis(500), rtp_sock.recv_from(&mut buf)).await;
    assert!(quiet.is_err(), "no audio while on hold");
    peer.send(&reinvite(3, "sendrecv")).await;
    let r = peer.responses().await;
    assert_eq!(r.last().map(|x| x.0), Some(200), "{r:?}");
    tokio::time::timeout(WAIT, rtp_sock.recv_from(&mut buf)).await.expect("audio after resume").expect("recv");
}

/// sipp calling the dev voice number at `sip` with one of `tests/sip/`'s scenarios, once.
fn caller_sipp(scenario: &str, sip: std::net::SocketAddr, transport: &str) -> tokio::process::Child {
    let scenario = format!("{}/tests/sip/{scenario}", env!("CARGO_MANIFEST_DIR"));
    tokio::process::Command::new("sipp")
        .args(["-t", transport, "-sf", &scenario, "-s", "+254711082000", &sip.to_string()])
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &common::free_port().to_string(),
            "-mp",
            &common::free_port().to_string(),
        ])
        .args(["-m", "1", "-timeout", "60s", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)")
}

#[tokio::test]
async fn play_sends_the_wav_and_redirect_asks_the_app_again() {
    let (running, dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    // A half-second 1 kHz tone at 16 kHz (resampled to 8 kHz on the way).
    let wav = dir.path().join("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).expect("wav");
    for i in 0..8000 {
        w.write_sample(((i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 16_000.0).sin() * 12_000.0) as i16)
            .expect("s");
    }
    w.finalize().expect("finalize");

    let peer = Peer::new(running.bound.sip.expect("SIP")).await;
    let rtp_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    peer.send(&peer.invite("play", "+254711082000", &sdp(rtp_sock.local_addr().expect("a").port(), "0"))).await;
    let n = answered(&mut notifications).await;
    let redirect = hodi_sdk::wire::VoiceCallAction {
        entry: Some(hodi_sdk::wire::voice_call_action::Entry::Redirect(hodi_sdk::wire::RedirectCallAction {
            url: "https://app.example/next".into(),
        })),
    };
    // The same tone from an http URL (a one-shot server), then from the file.
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("http");
    let url = format!("http://{}/tone.wav", http.local_addr().expect("addr"));
    let body = std::fs::read(&wav).expect("wav bytes");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if let Ok((mut conn, _)) = http.accept().await {
            let mut req = [0u8; 1024];
            let _ = conn.read(&mut req).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(&body).await;
        }
    });
    let actions = vec![voice::play(url), voice::play(format!("file://{}", wav.display())), redirect];
    n.reply(Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered");
    let ok = peer.responses().await.pop().expect("200");
    assert_eq!(ok.0, 200);
    peer.send(&peer.ack("play", "+254711082000", &to_tag(&ok.1))).await;

    // About 25 packets of tone: loud μ-law, not silence.
    let mut buf = [0u8; 2048];
    let mut loud = 0;
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(400), rtp_sock.recv_from(&mut buf)).await {
        let level: i64 =
            buf[12..n].iter().map(|b| i64::from(hodi::voice::media::g711::ulaw_decode(*b)).abs()).sum::<i64>() / 160;
        if level > 3000 {
            loud += 1;
        }
    }
    assert!((45..=55).contains(&loud), "{loud} packets of the tone (twice half a second)");

    // The redirect: the app is asked again (no digits) and its answer runs next.
    let again = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Active as i32 && v.dtmf_digits.is_none()) {
                break n;
            }
        }
    };
    again.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::reject()]))).await.expect("answered");
    // `reject` on an answered call hangs up.
    let bye = loop {
        let (n, _) = tokio::time::timeout(WAIT, peer.socket.recv_from(&mut buf)).await.expect("a BYE").expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("BYE ") {
            break text;
        }
    };
    assert!(bye.contains("Call-ID: play"), "{bye}");
}

#[tokio::test]
async fn a_dial_to_baresip_bridges_audio_both_ways_as_the_far_end_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let phone = baresip(dir.path(), "+254700000777").await;
    let trunk = phone.addr.to_string();
    let (running, _dir) = common::inproc::start_with(|c| c.voice.trunk = trunk).await;
    let (_client, mut notifications) = app(&running).await;

    // What the Elarian JS SDK sends for a dial without maxDuration: no limit, not 0 s.
    let actions = vec![common::sip::dial(&["+254700000777"], Some(0))];
    let mut caller = Caller::call(running.bound.sip.expect("SIP"), &mut notifications, "bs1", actions).await;
    // baresip's tone comes through the bridge (ringback before it is a quieter 440+480 Hz mix).
    caller.hear_tone("no audio from baresip through the bridge").await;
    // Talk on for 10 s: long enough for RTCP to go both ways (Hodi's first report after about a
    // second, baresip's every ~5 s echoing it) so the dialled leg's record gets a round trip.
    let talk = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < talk {
        caller.talk().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The caller hangs up: Hodi ends the dialled leg too, and baresip closes its recordings.
    caller.hang_up().await;

    // baresip's recording of what it heard: the caller's level, for about a second or more.
    let heard = phone.heard(8000).await;
    let caller_level = heard.iter().filter(|s| (i32::from(**s) + 15_484).abs() < 600).count();
    assert!(
        caller_level >= 8000,
        "baresip heard the caller through the bridge: {caller_level} samples at the caller's level"
    );

    // Call quality: baresip's RTCP reports echoed Hodi's, giving the dialled leg a round trip,
    // and a clean loopback line scores what G.711 can.
    let legs = records(&running, 2).await;
    let leg = legs.iter().find(|r| r.direction == "outbound").expect("the dialled leg's record");
    // baresip's delay since Hodi's SR can come out a fraction of a millisecond longer than the
    // whole loopback trip (it did in about one CI run in three): that is a round trip of zero,
    // which the record keeps, not a missing one.
    let rtt = leg.rtt_ms.expect("a round trip from baresip's reports");
    assert!((0.0..50.0).contains(&rtt), "a loopback round trip: {rtt} ms");
    let mos = leg.mos.expect("a MOS");
    assert!((4.2..=4.5).contains(&mos), "a clean line: MOS {mos}");
    let caller_leg = legs.iter().find(|r| r.direction == "inbound").expect("the caller's record");
    assert!(
        caller_leg.mos.is_some_and(|m| m > 4.0),
        "no RTCP from the hand-driven caller, still a MOS: {caller_leg:?}"
    );
    let http = running.bound.http.expect("the operator's listener").to_string();
    let (_, metrics) = common::http_get(&http, "/metrics").await;
    assert!(common::metric_sample(&metrics, "hodi_call_mos_count", &[]) >= Some(2.0), "{metrics}");
}

#[tokio::test]
async fn a_parallel_dial_bridges_the_first_to_answer_and_cancels_the_other() {
    let trunk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let trunk_addr = trunk.local_addr().expect("addr");
    let (running, _dir) = common::inproc::start_with(|c| c.voice.trunk = trunk_addr.to_string()).await;
    let (_client, mut notifications) = app(&running).await;
    let caller = Peer::new(running.bound.sip.expect("SIP")).await;
    caller.send(&caller.invite("par", "+254711082000", &sdp(4002, "0 101"))).await;
    let n = answered(&mut notifications).await;
    let dial = hodi_sdk::wire::VoiceCallAction {
        entry: Some(hodi_sdk::wire::voice_call_action::Entry::Dial(hodi_sdk::wire::DialCallAction {
            customer_numbers: vec![
                hodi_sdk::model::cellular("+254700000401"),
                hodi_sdk::model::cellular("+254700000402"),
            ],
            record: false,
            sequential: false,
            ringback_tone: None,
            caller_id: Some("+254711082999".into()),
            max_duration: Some(2),
        })),
    };
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![dial]))).await.expect("answered");
    let ok = caller.responses().await.pop().expect("200");
    caller.send(&caller.ack("par", "+254711082000", &to_tag(&ok.1))).await;

    // Both numbers ring at once.
    let mut buf = vec![0u8; 65536];
    let mut invites = std::collections::HashMap::new();
    while invites.len() < 2 {
        let (len, from) = tokio::time::timeout(WAIT, trunk.recv_from(&mut buf)).await.expect("INVITEs").expect("recv");
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        if let Some(number) = text.strip_prefix("INVITE sip:").and_then(|r| r.split('@').next()) {
            assert!(text.contains("From: <sip:+254711082999@"), "the caller id set by the action: {text}");
            invites.insert(number.to_string(), (text.clone(), from));
        }
    }
    let reply_to = |text: &str, status: &str, tag: &str, body: &str| {
        let header = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
        let ctype = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".to_string() };
        format!(
            "SIP/2.0 {status}\r\n{}\r\n{}\r\n{};tag={tag}\r\n{}\r\n{}\r\nContact: <sip:phone@{trunk_addr}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            header("Via:"),
            header("From:"),
            header("To:"),
            header("Call-ID:"),
            header("CSeq:"),
            body.len()
        )
    };
    let (first, hodi) = invites.get("+254700000401").cloned().expect("the first number");
    let (second, _) = invites.get("+254700000402").cloned().expect("the second number");
    trunk.send_to(reply_to(&second, "180 Ringing", "p2", "").as_bytes(), hodi).await.expect("180");
    let answer = sdp(4444, "0 101").replace('\n', "\r\n");
    trunk.send_to(reply_to(&first, "200 OK", "p1", &answer).as_bytes(), hodi).await.expect("200");

    // The winner is ACKed; the other gets a CANCEL, which is answered, and its 487 is ACKed.
    let mut acked_first = false;
    let mut cancelled_second = false;
    let mut acked_487 = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(acked_first && cancelled_second && acked_487) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first ACKed {acked_first}, second cancelled {cancelled_second}, 487 ACKed {acked_487}"
        );
        let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_secs(1), trunk.recv_from(&mut buf)).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        let call_id = text.lines().find(|l| l.starts_with("Call-ID:")).unwrap_or_default().to_string();
        let of_first = first.contains(&call_id);
        if text.starts_with("ACK ") && of_first {
            acked_first = true;
        } else if text.starts_with("CANCEL ") && !of_first {
            cancelled_second = true;
            trunk.send_to(reply_to(&text, "200 OK", "p2", "").as_bytes(), hodi).await.expect("200 CANCEL");
            trunk.send_to(reply_to(&second, "487 Request Terminated", "p2", "").as_bytes(), hodi).await.expect("487");
        } else if text.starts_with("ACK ") && !of_first {
            acked_487 = true;
        }
    }
    // maxDuration (2 s) ends the bridge: Hodi hangs up the dialled leg (answered here), and the
    // app hears how it went.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(Ok((len, from))) = tokio::time::timeout(WAIT, trunk.recv_from(&mut buf)).await {
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.starts_with("BYE ") {
                let keep: Vec<&str> = text
                    .lines()
                    .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
                    .collect();
                let ok = format!("SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n", keep.join("\r\n"));
                let _ = trunk.send_to(ok.as_bytes(), from).await;
            }
        }
    });
    let dialled = loop {
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if let Some(v) = m.voice().filter(|v| v.status == VoiceCallStatus::DialCompleted as i32) {
                break v.clone();
            }
        }
    };
    assert_eq!(dialled.dial_data.expect("dialData").destination_number, "+254700000401");
    let records = records(&running, 2).await;
    let legs: Vec<(&str, &str)> =
        records.iter().filter(|r| r.direction == "outbound").map(|r| (r.callee.as_str(), r.ending.as_str())).collect();
    assert!(legs.contains(&("+254700000402", "cancelled")), "{legs:?}");
}

#[tokio::test]
async fn an_app_that_answers_with_no_actions_gets_a_200_then_our_bye_after_the_ack() {
    let (running, _dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;

    for (call_id, reply) in [("empty-msg", Some(Vec::new())), ("empty-reply", None)] {
        peer.send(&peer.invite(call_id, "+254711082000", &sdp(4002, "0 101"))).await;
        let n = answered(&mut notifications).await;
        match reply {
            Some(actions) => n.reply(Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered"),
            None => n.ack().await.expect("answered"),
        }
        let r = peer.responses().await;
        let ok = r.last().expect("a final response");
        // The INVITE gets its final answer: a 200 with SDP (never a BYE in place of it).
        assert_eq!(ok.0, 200, "{call_id}: {r:?}");
        assert!(ok.1.contains("m=audio"), "{call_id}: the 200 carries our SDP: {}", ok.1);
        // Our BYE waits for the caller's ACK: nothing but 200 retransmissions before it.
        let mut buf = vec![0u8; 65536];
        let early = tokio::time::timeout(Duration::from_millis(700), peer.socket.recv_from(&mut buf)).await;
        if let Ok(Ok((len, _))) = early {
            let text = String::from_utf8_lossy(&buf[..len]);
            assert!(text.starts_with("SIP/2.0 200"), "{call_id}: before the ACK only our 200 again, got {text}");
        }
        peer.send(&peer.ack(call_id, "+254711082000", &to_tag(&ok.1))).await;
        let bye = loop {
            let (len, _) = tokio::time::timeout(WAIT, peer.socket.recv_from(&mut buf))
                .await
                .expect("a BYE within 30 s")
                .expect("recv");
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.starts_with("BYE ") {
                break text;
            }
        };
        assert!(bye.contains(&format!("Call-ID: {call_id}")), "{bye}");
        let echoed: Vec<&str> = bye
            .lines()
            .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
            .collect();
        peer.send(&format!("SIP/2.0 200 OK\n{}\nContent-Length: 0\n\n", echoed.join("\n"))).await;
    }
    let rec = records(&running, 2).await;
    let endings: Vec<(i64, &str)> = rec.iter().map(|r| (r.sip_status, r.ending.as_str())).collect();
    assert_eq!(endings, vec![(200, "we_hung_up"), (200, "we_hung_up")], "{rec:?}");
}
