//! The voice executor with a real SIP peer: sipp (Debian's sip-tester) calls a provisioned voice
//! number, an app written with hodi-sdk drives the call, and the caller presses 1 with RFC 4733
//! packets from sip-tester's pcap.

mod common;

use std::process::Stdio;
use std::time::Duration;

use hodi_sdk::model::voice;
use hodi_sdk::wire::{VoiceCallHangupCause, VoiceCallStatus};
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
}

#[tokio::test]
async fn a_caller_hears_the_app_presses_1_and_the_app_hangs_up() {
    let _ = tracing_subscriber::fmt().with_env_filter("hodi::voice=info").with_test_writer().try_init();
    let (running, _dir) = common::inproc::start().await;
    let dev = running.dev.clone().expect("dev tenant");
    let sip = running.bound.sip.expect("SIP listener");
    let options = Options::new(
        Endpoint::Tcp(running.bound.tcp.expect("tcp").to_string()),
        &dev.org_id,
        &dev.app_id,
        Credentials::ApiKey(dev.api_key.clone()),
    );
    let client = Elarian::connect(options);
    client.connected(WAIT).await.expect("app connected");
    let mut notifications = client.notifications().expect("stream");

    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip/uac_press_1.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .args(["-sf", scenario, "-s", "+254711082000", &sip.to_string(), "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-m",
            "1",
            "-timeout",
            "60s",
            "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)");

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
    assert_eq!(seen.first().map(String::as_str), Some("status 101 digits None cause 0"), "{seen:?}");
    assert!(seen.iter().any(|s| s.contains("digits Some(\"1\")")), "the key press reached the app: {seen:?}");
    let status = tokio::time::timeout(WAIT, sipp.wait()).await.expect("sipp finished").expect("sipp ran");
    let mut err = String::new();
    if let Some(mut e) = sipp.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "sipp saw the call fail: {status:?}\n{err}");
}
