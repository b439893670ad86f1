//! Trunks that want credentials, with sipp as the trunk: a voice message's INVITE is challenged
//! (401) and sent again with a digest answer that sipp verifies (over UDP and over TCP); a wrong
//! password is refused and the app hears the call was not answered; Hodi registers with a trunk
//! that wants it (401, then 200) and shows whether it holds.

mod common;

use std::process::Stdio;
use std::time::Duration;

use hodi_sdk::model::voice;
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Event, Reply};

use common::sip::{app, WAIT};

const PASSWORD: &str = "trunk-secret";

/// sipp as the trunk on `port`, running `scenario` once; it expects user "hodi" and `password`.
fn trunk(scenario: &str, port: u16, transport: &str, password: &str) -> tokio::process::Child {
    let scenario = format!("{}/tests/sip/{scenario}", env!("CARGO_MANIFEST_DIR"));
    tokio::process::Command::new("sipp")
        .args(["-sf", &scenario, "-t", transport, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &common::free_port().to_string(), "-m", "1", "-timeout", "60s", "-nostdin"])
        .args(["-key", "password", password])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)")
}

/// A voice message through a challenging trunk reached over `transport`, Hodi configured with
/// `password`: the voice statuses the app saw, and how sipp ended.
async fn call_through(transport: &str, password: &str) -> (Vec<i32>, std::process::Output) {
    let port = common::free_port();
    let (running, _dir) = common::inproc::start_with(|c| {
        c.voice.trunk = format!("127.0.0.1:{port}");
        c.voice.trunk_username = "hodi".into();
        c.voice.trunk_password = hodi::config::providers::Secret::new(password);
        if transport == "t1" {
            c.voice.trunk_transport = hodi::config::TrunkTransport::Tcp;
        }
    })
    .await;
    let (client, mut notifications) = app(&running).await;
    let sipp = trunk("uas_trunk_auth.xml", port, transport, PASSWORD);
    tokio::time::sleep(Duration::from_millis(500)).await; // sipp binds its port

    let hello = hodi_sdk::model::message::voice(vec![voice::say("Hello through the trunk.")]);
    let sent = client
        .customer("+254700000555")
        .send_message(hodi_sdk::model::channel::voice("+254711082000"), hello)
        .await
        .expect("the call is placed");
    assert_eq!(sent.status, "SESSION_INITIATED", "{sent:?}");
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the call did not finish: {statuses:?}");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        let Event::ReceivedMessage(m) = &n.event else { continue };
        let Some(call) = m.voice().cloned() else { continue };
        statuses.push(call.status);
        if call.status == VoiceCallStatus::Answered as i32 {
            n.reply(Reply::message(hodi_sdk::model::message::voice(vec![voice::say("Goodbye.")])))
                .await
                .expect("answered");
        } else {
            break;
        }
    }
    let out = tokio::time::timeout(WAIT, sipp.wait_with_output()).await.expect("sipp finished").expect("sipp ran");
    (statuses, out)
}

#[tokio::test]
async fn a_trunk_that_challenges_gets_hodis_credentials_over_udp() {
    let (statuses, sipp) = call_through("u1", PASSWORD).await;
    assert_eq!(statuses, [VoiceCallStatus::Answered as i32, VoiceCallStatus::Completed as i32]);
    assert!(sipp.status.success(), "the trunk saw the call fail: {}", String::from_utf8_lossy(&sipp.stderr));
}

#[tokio::test]
async fn a_trunk_that_challenges_gets_hodis_credentials_over_tcp() {
    let (statuses, sipp) = call_through("t1", PASSWORD).await;
    assert_eq!(statuses, [VoiceCallStatus::Answered as i32, VoiceCallStatus::Completed as i32]);
    assert!(sipp.status.success(), "the trunk saw the call fail: {}", String::from_utf8_lossy(&sipp.stderr));
}

#[tokio::test]
async fn a_wrong_trunk_password_is_refused_and_the_app_hears_not_answered() {
    let (statuses, _) = call_through("u1", "not-the-secret").await;
    assert_eq!(statuses, [VoiceCallStatus::NotAnswered as i32]);
}

/// Hodi with `voice.trunk_register` against sipp's registrar scenario: whether the registration
/// came to hold, and the gauge.
async fn register_with(password: &str) -> bool {
    let port = common::free_port();
    let sipp = trunk("uas_trunk_register.xml", port, "u1", PASSWORD);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (running, _dir) = common::inproc::start_with(|c| {
        c.voice.trunk = format!("127.0.0.1:{port}");
        c.voice.trunk_username = "hodi".into();
        c.voice.trunk_password = hodi::config::providers::Secret::new(password);
        c.voice.trunk_register = true;
    })
    .await;
    let out = tokio::time::timeout(WAIT, sipp.wait_with_output()).await.expect("sipp finished").expect("sipp ran");
    assert!(out.status.success(), "sipp: {}", String::from_utf8_lossy(&out.stderr));
    let link = &running.sip.as_ref().expect("voice").trunk;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !link.registered() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    link.registered()
}

#[tokio::test]
async fn hodi_registers_with_a_trunk_that_wants_it_and_a_refusal_shows() {
    assert!(register_with(PASSWORD).await, "registered with the right password");
    assert!(!register_with("wrong").await, "not registered with a wrong one");
}
