//! Hodi as the registrar of an org's own phones: baresip registers with digest authentication
//! and rings when the app dials its extension; sipp registers, is refused with a wrong password,
//! and places a call (challenged with 407) that the app of the user's number answers; a peer
//! that keeps guessing is locked out while others are not.

mod common;

use std::process::Stdio;
use std::time::Duration;

use hodi::voice::registrar::{digest, sip_user};
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Event, Reply};

use common::sip::{answered, app, baresip_with, dial, sdp, Caller, Peer, WAIT};

const DOMAIN: &str = "acme.example";
const PASSWORD: &str = "correct-horse";

/// The dev org's SIP user `name` (extension `ext`), whose calls go to the dev voice number's app.
async fn provision(running: &hodi::server::Running, name: &str, ext: &str) {
    let dev = running.dev.clone().expect("dev tenant");
    let user = sip_user(&dev.org_id, DOMAIN, name, PASSWORD, Some(ext.into()), Some("+254711082000".into()))
        .expect("valid user");
    running.hodi.store.put_sip_user(&user).await.expect("provisioned");
}

fn registrations(running: &hodi::server::Running) -> usize {
    running.sip.as_ref().expect("voice").registrar.registrations()
}

/// sipp as user `name` with `password`, running `scenario` once against Hodi's SIP listener.
async fn sipp(scenario: &str, sip: std::net::SocketAddr, name: &str, password: &str) -> std::process::Output {
    let scenario = format!("{}/tests/sip/{scenario}", env!("CARGO_MANIFEST_DIR"));
    let child = tokio::process::Command::new("sipp")
        .args(["-t", "u1", "-sf", &scenario, "-s", name, "-au", name, "-ap", password, &sip.to_string()])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &common::free_port().to_string()])
        .args(["-mp", &common::free_port().to_string(), "-m", "1", "-timeout", "30s", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("sipp ended").expect("sipp")
}

#[tokio::test]
async fn baresip_registers_with_digest_and_a_dial_to_its_extension_rings_it() {
    let (running, _dir) = common::inproc::start().await;
    provision(&running, "alice", "101").await;
    let sip = running.bound.sip.expect("SIP");
    let dir = tempfile::tempdir().expect("tempdir");
    let account =
        |_| format!("<sip:alice@{DOMAIN}>;auth_pass={PASSWORD};outbound=\"sip:{sip}\";regint=60;answermode=auto");
    let phone = baresip_with(dir.path(), "alice", account, Default::default()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while registrations(&running) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "baresip did not register:\n{}", phone.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let user = running.hodi.store.sip_user(DOMAIN, "alice").await.expect("store").expect("alice");
    let devices = running.sip.as_ref().expect("voice").registrar.devices(&user);
    assert_eq!(devices.len(), 1);
    assert!(devices[0].contact.contains(&phone.addr.port().to_string()), "{:?}", devices[0].contact);

    // A customer calls the app, which dials extension 101: baresip rings and answers, and its
    // tone reaches the caller through the bridge.
    let (_client, mut notifications) = app(&running).await;
    let mut caller = Caller::call(sip, &mut notifications, "reg1", vec![dial(&["101"], Some(30))]).await;
    caller.hear_tone("no audio from the registered phone through the bridge").await;
    // The dialled leg's record names the phone's user.
    caller.hang_up().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = running.hodi.store.call_records(10).await.expect("records");
        if let Some(leg) = records.iter().find(|r| r.direction == "outbound") {
            assert_eq!((leg.callee.as_str(), leg.sip_status), ("alice@acme.example", 200), "{leg:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no record of the dialled leg: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// REGISTERs from a hand-driven peer: (response code, whole response).
async fn register(peer: &Peer, name: &str, cseq: u32, extra: &str) -> (u16, String) {
    let me = peer.addr();
    peer.send(&format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKr{cseq}{name}\n\
         From: <sip:{name}@{DOMAIN}>;tag=f{name}\nTo: <sip:{name}@{DOMAIN}>\nCall-ID: reg-{name}-{me}\n\
         CSeq: {cseq} REGISTER\nContact: <sip:{name}@{me}>\n{extra}Max-Forwards: 70\nContent-Length: 0\n\n"
    ))
    .await;
    peer.responses().await.pop().expect("a response")
}

/// A REGISTER challenged, then answered with `password`.
async fn register_with(peer: &Peer, name: &str, password: &str, cseq: u32) -> (u16, String) {
    let (code, challenge) = register(peer, name, cseq, "").await;
    if code != 401 {
        return (code, challenge);
    }
    let headers: Vec<&str> = challenge.lines().filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).collect();
    let read = digest::read_challenge(headers).expect("a digest challenge we can answer");
    let answer = read.answer(name, password, "REGISTER", &format!("sip:{DOMAIN}"), "abcdef", 1);
    register(peer, name, cseq + 1, &format!("Authorization: {answer}\nExpires: 120\n")).await
}

#[tokio::test]
async fn wrong_passwords_are_refused_counted_and_a_guessing_address_is_locked_out() {
    let (running, _dir) = common::inproc::start().await;
    provision(&running, "bob", "102").await;
    let sip = running.bound.sip.expect("SIP");

    // sipp, a real digest client: the right password registers, a wrong one gets 403.
    let ok = sipp("uac_register_ok.xml", sip, "bob", PASSWORD).await;
    assert!(ok.status.success(), "sipp registering: {}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(registrations(&running), 1);
    let refused = sipp("uac_register_refused.xml", sip, "bob", "not-the-password").await;
    assert!(refused.status.success(), "sipp with a wrong password: {}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(registrations(&running), 1, "a refused REGISTER adds nothing");

    // What a peer gets wrong gets its own answer; none of it is a failed guess.
    let peer = Peer::from("127.0.0.3", sip).await;
    let (code, text) = register(&peer, "bob", 1, "").await;
    assert_eq!(code, 401);
    assert!(text.contains("algorithm=MD5") && !text.contains("algorithm=SHA-256"), "MD5 unless configured: {text}");
    let (code, _) = register(&peer, "bob", 2, "Authorization: Digest garbage\n").await;
    assert_eq!(code, 401, "unreadable credentials are challenged again");
    let (code, _) = register(&peer, "bob", 3, "Authorization: Digest username=\"bob\", realm=\"acme.example\", nonce=\"1.abc\", uri=\"sip:acme.example\", response=\"00\"\n").await;
    assert_eq!(code, 401, "a nonce we never made is challenged again");
    let (code, text) = register_with(&Peer::from("127.0.0.4", sip).await, "bob", PASSWORD, 1).await;
    assert_eq!(code, 200, "{text}");
    let short = Peer::from("127.0.0.4", sip).await;
    let (code, challenge) = register(&short, "bob", 1, "").await;
    assert_eq!(code, 401);
    let headers: Vec<&str> = challenge.lines().filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).collect();
    let answer =
        digest::read_challenge(headers).expect("challenge").answer("bob", PASSWORD, "REGISTER", "sip:x", "c", 1);
    let (code, text) = register(&short, "bob", 2, &format!("Authorization: {answer}\nExpires: 10\n")).await;
    assert_eq!(code, 423, "{text}");
    assert!(text.contains("Min-Expires: 60"), "{text}");

    // An address that keeps guessing is locked out; another address is not.
    let guesser = Peer::from("127.0.0.3", sip).await;
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(register_with(&guesser, "bob", &format!("guess-{i}"), 10 + 2 * i).await.0);
    }
    assert_eq!(codes, [403; 6]);
    let (code, text) = register_with(&guesser, "bob", PASSWORD, 30).await;
    assert_eq!(code, 403, "locked out even with the right password: {text}");
    assert!(text.contains("Too Many Failed Attempts") && text.contains("Retry-After:"), "{text}");
    let (code, _) = register_with(&guesser, "mallory", PASSWORD, 40).await;
    assert_eq!(code, 403);
    let (code, text) = register_with(&Peer::from("127.0.0.5", sip).await, "bob", PASSWORD, 1).await;
    assert_eq!(code, 200, "another address still registers: {text}");
    let (code, _) = register_with(&Peer::from("127.0.0.6", sip).await, "mallory", PASSWORD, 1).await;
    assert_eq!(code, 403, "an unknown user is refused like a wrong password");

    let http = running.bound.http.expect("the operator's listener").to_string();
    let (_, metrics) = common::http_get(&http, "/metrics").await;
    let count = |reason: &str| {
        common::metric_sample(&metrics, "hodi_sip_auth_failures_total", &[&format!("reason=\"{reason}\"")])
    };
    assert!(count("wrong_password") >= Some(7.0), "{metrics}");
    assert!(count("locked_out") >= Some(2.0), "{metrics}");
    assert!(count("unknown_user") >= Some(1.0), "{metrics}");
    assert!(common::metric_sample(&metrics, "hodi_sip_registrations", &[]) >= Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_registered_phone_places_a_call_that_its_numbers_app_answers() {
    let (running, _dir) = common::inproc::start().await;
    provision(&running, "carol", "103").await;
    let sip = running.bound.sip.expect("SIP");
    let (_client, mut notifications) = app(&running).await;

    // Without credentials the INVITE is challenged for them (407), and nothing reaches the app.
    let peer = Peer::new(sip).await;
    let me = peer.addr();
    let invite = peer
        .invite("noauth", "+254711099999", &sdp(4000, "0"))
        .replace(&format!("From: <sip:+254700000888@{me}>"), &format!("From: <sip:carol@{DOMAIN}>"));
    peer.send(&invite).await;
    let (code, text) = peer.responses().await.pop().expect("a response");
    assert_eq!(code, 407, "{text}");
    assert!(text.contains("Proxy-Authenticate: Digest realm=\"acme.example\""), "{text}");

    let call = tokio::spawn(sipp("uac_phone_calls.xml", sip, "carol", PASSWORD));
    let n = answered(&mut notifications).await;
    let Event::ReceivedMessage(m) = &n.event else { unreachable!("answered() returns a received message") };
    assert_eq!(m.customer_number.as_ref().map(|c| c.number.as_str()), Some("carol@acme.example"));
    assert_eq!(
        m.customer_number.as_ref().map(|c| c.provider),
        Some(hodi_sdk::wire::CustomerNumberProvider::App as i32)
    );
    assert_eq!(m.channel.as_ref().map(|c| c.number.as_str()), Some("+254711082000"));
    assert_eq!(m.voice().map(|v| v.status), Some(VoiceCallStatus::Answered as i32));
    n.reply(Reply::message(hodi_sdk::model::message::voice(vec![hodi_sdk::model::voice::say("Hello Carol.")])))
        .await
        .expect("answered");
    let out = call.await.expect("sipp task");
    assert!(out.status.success(), "the phone's call: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = running.hodi.store.call_records(10).await.expect("records");
        if let Some(r) = records.iter().find(|r| r.caller == "carol@acme.example") {
            assert_eq!((r.callee.as_str(), r.direction.as_str()), ("+254711099999", "inbound"), "{r:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no record of the phone's call: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dialled_phone_transfers_the_caller_to_a_registered_phone_with_refer() {
    // The trunk: sipp answering the dial, then transferring (REFER) to extension 103.
    let trunk_port = common::free_port();
    let (running, _dir) = common::inproc::start_with(|c| c.voice.trunk = format!("127.0.0.1:{trunk_port}")).await;
    provision(&running, "dave", "103").await;
    let sip = running.bound.sip.expect("SIP");
    let dir = tempfile::tempdir().expect("tempdir");
    let account =
        |_| format!("<sip:dave@{DOMAIN}>;auth_pass={PASSWORD};outbound=\"sip:{sip}\";regint=60;answermode=auto");
    let phone = baresip_with(dir.path(), "dave", account, Default::default()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while registrations(&running) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "baresip did not register:\n{}", phone.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scenario = format!("{}/tests/sip/uas_answer_refer.xml", env!("CARGO_MANIFEST_DIR"));
    let transferor = tokio::process::Command::new("sipp")
        .args(["-sf", &scenario, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &trunk_port.to_string()])
        .args(["-mp", &common::free_port().to_string(), "-m", "1", "-timeout", "60s", "-nostdin"])
        .args(["-key", "target", &format!("sip:103@{DOMAIN}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt install sip-tester)");
    tokio::time::sleep(Duration::from_millis(500)).await; // sipp binds its port

    // A customer calls; the app dials the trunk's phone, which transfers the caller to dave.
    let (_client, mut notifications) = app(&running).await;
    let mut caller = Caller::call(sip, &mut notifications, "xfer1", vec![dial(&["+254700000321"], Some(60))]).await;
    // dave's tone reaches the caller once the transfer is done.
    caller.hear_tone("the caller never reached the transfer target").await;
    // The transferor got 202, both NOTIFYs and Hodi's BYE (its scenario fails otherwise).
    let out = tokio::time::timeout(WAIT, transferor.wait_with_output()).await.expect("sipp ended").expect("sipp");
    assert!(out.status.success(), "the transferring phone: {}", String::from_utf8_lossy(&out.stderr));

    caller.hang_up().await;
    // Both dialled legs have their records: the transferor's (hung up by Hodi once the target
    // answered) and the target's (the caller hung up on it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let legs = loop {
        let records = running.hodi.store.call_records(10).await.expect("records");
        let legs: Vec<(String, String, i64)> = records
            .iter()
            .filter(|r| r.direction == "outbound")
            .map(|r| (r.callee.clone(), r.ending.clone(), r.sip_status))
            .collect();
        if legs.len() >= 2 || tokio::time::Instant::now() >= deadline {
            break legs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let legs: Vec<(&str, &str, i64)> = legs.iter().map(|(c, e, s)| (c.as_str(), e.as_str(), *s)).collect();
    assert!(legs.contains(&("dave@acme.example", "we_hung_up", 200)), "the target's leg: {legs:?}");
    assert!(legs.contains(&("+254700000321", "we_hung_up", 200)), "the transferor's leg: {legs:?}");
}

#[tokio::test]
async fn a_register_flood_holds_nothing_and_the_registration_cap_refuses_new_devices() {
    let (running, _dir) = common::inproc::start_with(|c| c.voice.max_registrations = 2).await;
    provision(&running, "erin", "104").await;
    let sip = running.bound.sip.expect("SIP");

    // 3,000 unauthenticated REGISTERs from one address, as fast as it can send: each is
    // challenged statelessly (or dropped past the slots); nothing is registered or kept.
    let flooder = Peer::from("127.0.0.7", sip).await;
    let me = flooder.addr();
    for i in 0..3_000 {
        flooder
            .send(&format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKf{i}\nFrom: <sip:erin@{DOMAIN}>;tag=f{i}\n\
                 To: <sip:erin@{DOMAIN}>\nCall-ID: flood-{i}\nCSeq: 1 REGISTER\nContact: <sip:erin@{me}>\nContent-Length: 0\n\n"
            ))
            .await;
    }
    let mut buf = vec![0u8; 65536];
    let mut challenged = 0;
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(2), flooder.socket.recv_from(&mut buf)).await {
        if buf[..n].starts_with(b"SIP/2.0 401") {
            challenged += 1;
        }
    }
    // Sent faster than anyone reads: what is not answered was dropped (the sockets' buffers, or
    // past the REGISTER slots), as UDP may; what is answered is a challenge.
    assert!(challenged >= 100, "the flood was answered with challenges: {challenged}");
    assert_eq!(registrations(&running), 0);

    // The cap: two devices register, a third is refused (503), a refresh of the first passes.
    let mut peers = Vec::new();
    for ip in ["127.0.0.8", "127.0.0.9", "127.0.0.10"] {
        peers.push(Peer::from(ip, sip).await);
    }
    assert_eq!(register_with(&peers[0], "erin", PASSWORD, 1).await.0, 200);
    assert_eq!(register_with(&peers[1], "erin", PASSWORD, 1).await.0, 200);
    let (code, text) = register_with(&peers[2], "erin", PASSWORD, 1).await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("Retry-After:"), "{text}");
    assert_eq!(register_with(&peers[0], "erin", PASSWORD, 5).await.0, 200, "a refresh still passes");
    assert_eq!(registrations(&running), 2);

    // The listener lives on: an OPTIONS is answered.
    let probe = Peer::new(sip).await;
    let me = probe.addr();
    probe
        .send(&format!(
            "OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt\nFrom: <sip:p@{me}>;tag=p\nTo: <sip:x@h>\n\
             Call-ID: opt\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        ))
        .await;
    assert_eq!(probe.responses().await.last().map(|r| r.0), Some(200));
}

#[tokio::test]
async fn dial_targets_name_users_by_name_or_extension_within_the_org() {
    let (running, _dir) = common::inproc::start().await;
    let dev = running.dev.clone().expect("dev tenant");
    provision(&running, "frank", "105").await;
    let registrar = &running.sip.as_ref().expect("voice").registrar;
    let resolve = |target: &'static str| {
        let hodi = running.hodi.clone();
        let org = dev.org_id.clone();
        async move { hodi::voice::registrar::resolve(&hodi, registrar, &org, target).await.map(|(user, _)| user.username) }
    };
    // A phone's REFER or an app's dial may name the extension in a URI, as phones show it.
    for target in ["sip:frank@acme.example", "sip:105@acme.example", "frank", "105"] {
        assert_eq!(resolve(target).await.as_deref(), Some("frank"), "{target}");
    }
    for target in ["sip:106@acme.example", "sip:105@other.example", "106"] {
        assert_eq!(resolve(target).await, None, "{target}");
    }
    // Another org's users are not reachable from this one.
    assert_eq!(
        hodi::voice::registrar::resolve(&running.hodi, registrar, "org-elsewhere", "sip:105@acme.example")
            .await
            .map(|u| u.0.username),
        None
    );
}
