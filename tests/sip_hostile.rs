//! The SIP listener against peers that do not play by the rules: forged in-dialog requests,
//! Call-ID reuse, media aimed elsewhere, keep-alive CRLFs, a 200 never ACKed, TCP connections
//! that hoard descriptors or trickle bytes, and a flood of junk INVITEs. Each peer is a raw socket
//! written here.

mod common;

use std::time::Duration;

use common::sip::{answered, app, rtp, sdp, sdp_port, to_tag, Peer, WAIT};
use hodi_sdk::model::voice;
use hodi_sdk::Reply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NUMBER: &str = "+254711082000";

/// Ten seconds of tone from a WAV file in `dir`, played at once (no speech to synthesise).
fn long_tone(dir: &std::path::Path) -> Reply {
    let wav = dir.join("tone.wav");
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&wav, spec).expect("wav");
    for i in 0..80_000 {
        w.write_sample(((i as f32 * 0.785).sin() * 8000.0) as i16).expect("sample");
    }
    w.finalize().expect("finalize");
    Reply::message(hodi_sdk::model::message::voice(vec![voice::play(wav.display().to_string())]))
}

/// Calls the dev number from `caller` as `call_id`, offering media at `port`; the app plays a
/// long tone and the 200 is ACKed. Returns the 200 OK's text.
async fn answered_call(
    caller: &Peer,
    notifications: &mut hodi_sdk::Notifications,
    dir: &std::path::Path,
    call_id: &str,
    port: u16,
) -> String {
    caller.send(&caller.invite(call_id, NUMBER, &sdp(port, "0 101"))).await;
    answered(notifications).await.reply(long_tone(dir)).await.expect("answered");
    let ok = caller.responses().await.pop().expect("200");
    assert_eq!(ok.0, 200, "{}", ok.1);
    caller.send(&caller.ack(call_id, NUMBER, &to_tag(&ok.1))).await;
    ok.1
}

/// Packets arriving on `socket` within `wait`.
async fn packets(socket: &tokio::net::UdpSocket, wait: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        n += 1;
    }
    n
}

/// Waits (up to WAIT: speech is synthesised first) until audio arrives on `socket`.
async fn audio_starts(socket: &tokio::net::UdpSocket) {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.expect("audio").expect("recv");
}

/// An in-dialog request from `from` (an address string) with the given tags.
fn in_dialog(method: &str, from: &str, from_tag: &str, to_tag: &str, call_id: &str, cseq: u32, body: &str) -> String {
    let body = body.replace('\n', "\r\n");
    let content_type = if body.is_empty() { "" } else { "Content-Type: application/sdp\n" };
    format!(
        "{method} sip:{NUMBER}@h SIP/2.0\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{method}{cseq}\n\
         From: <sip:+254700000888@{from}>;tag={from_tag}\nTo: <sip:{NUMBER}@h>;tag={to_tag}\nCall-ID: {call_id}\n\
         CSeq: {cseq} {method}\n{content_type}Content-Length: {}\n\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn only_the_dialogs_own_tags_can_hang_up_or_move_a_call() {
    let (running, dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let sip = running.bound.sip.expect("SIP");
    let caller = Peer::new(sip).await;
    let attacker = Peer::new(sip).await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let stolen = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("attacker rtp");
    let port = media.local_addr().expect("addr").port();

    let tag = to_tag(&answered_call(&caller, &mut notifications, dir.path(), "victim", port).await);
    audio_starts(&media).await;
    assert!(packets(&media, Duration::from_millis(500)).await > 5, "audio flows to the caller");

    // The attacker knows the Call-ID (and even Hodi's tag), not the caller's tag.
    let me = attacker.addr();
    attacker.send(&in_dialog("BYE", &me, "guessed", &tag, "victim", 2, "")).await;
    assert_eq!(attacker.responses().await.last().map(|r| r.0), Some(481), "forged BYE");
    attacker.send(&in_dialog("BYE", &me, "tvictim", "guessed", "victim", 2, "")).await;
    assert_eq!(attacker.responses().await.last().map(|r| r.0), Some(481), "BYE with Hodi's tag guessed wrong");
    let moved = sdp(stolen.local_addr().expect("addr").port(), "0 101");
    attacker.send(&in_dialog("INVITE", &me, "guessed", &tag, "victim", 3, &moved)).await;
    assert_eq!(attacker.responses().await.last().map(|r| r.0), Some(481), "forged re-INVITE");
    // A new INVITE reusing the live Call-ID from another dialog: 482.
    let reuse = attacker
        .invite("victim", NUMBER, &moved)
        .replace("tag=tvictim", "tag=other")
        .replace("z9hG4bKvictim", "z9hG4bKother");
    attacker.send(&reuse).await;
    assert_eq!(attacker.responses().await.last().map(|r| r.0), Some(482), "Call-ID reuse");

    assert!(packets(&media, Duration::from_millis(500)).await > 5, "the call goes on, audio where it was");
    assert_eq!(packets(&stolen, Duration::from_millis(300)).await, 0, "no audio reached the attacker");

    // The caller's own BYE still ends it.
    caller.send(&in_dialog("BYE", &caller.addr(), "tvictim", &tag, "victim", 2, "")).await;
    assert_eq!(caller.responses().await.last().map(|r| r.0), Some(200));
}

#[tokio::test]
async fn media_goes_where_the_callers_rtp_comes_from_and_never_to_a_group() {
    let (running, dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let caller = Peer::new(running.bound.sip.expect("SIP")).await;

    // Multicast or broadcast connection addresses are refused before anyone is asked.
    for (id, group) in [("m1", "224.0.0.1"), ("m2", "255.255.255.255")] {
        let offer = format!("v=0\no=p 1 1 IN IP4 {group}\ns=-\nc=IN IP4 {group}\nt=0 0\nm=audio 4000 RTP/AVP 0\n");
        caller.send(&caller.invite(id, NUMBER, &offer)).await;
        let last = caller.responses().await.pop().expect("a final response");
        assert_eq!(last.0, 488, "{}", last.1);
        assert!(last.1.contains("not a unicast address"), "{}", last.1);
        caller.send(&caller.ack(id, NUMBER, &to_tag(&last.1))).await;
    }

    // The SDP names one port; the caller's RTP comes from another (a NAT): Hodi follows the RTP.
    let announced = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let real = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let port = announced.local_addr().expect("addr").port();
    let ok = answered_call(&caller, &mut notifications, dir.path(), "nat", port).await;
    audio_starts(&announced).await;
    assert!(packets(&announced, Duration::from_millis(400)).await > 3, "before any RTP: the SDP's address");
    let hodi_rtp = ("127.0.0.1", sdp_port(&ok));
    real.send_to(&rtp(1, 0, 0xFF), hodi_rtp).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = packets(&announced, Duration::from_millis(50)).await; // in flight when it latched
    assert!(packets(&real, Duration::from_millis(500)).await > 5, "latched to where RTP comes from");
    assert_eq!(packets(&announced, Duration::from_millis(300)).await, 0, "nothing to the SDP's address now");
    // A stranger sending RTP to Hodi's port does not take the stream over.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    for seq in 0..5 {
        stranger.send_to(&rtp(seq, 0, 0xFF), hodi_rtp).await.expect("send");
    }
    assert_eq!(packets(&stranger, Duration::from_millis(400)).await, 0, "a stranger gets nothing");
    assert!(packets(&real, Duration::from_millis(300)).await > 3, "the caller keeps the audio");
}

#[tokio::test]
async fn media_to_a_far_end_that_never_sends_stops_after_the_unlatched_window() {
    let (running, dir) = common::inproc::start_with(|c| c.voice.rtp_unlatched_secs = 2).await;
    let (_client, mut notifications) = app(&running).await;
    let caller = Peer::new(running.bound.sip.expect("SIP")).await;
    // The SDP names somebody else's port (a reflection attempt); nothing ever comes from it.
    let victim = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("victim");
    answered_call(&caller, &mut notifications, dir.path(), "reflect", victim.local_addr().expect("addr").port()).await;
    audio_starts(&victim).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = packets(&victim, Duration::from_millis(50)).await;
    assert_eq!(packets(&victim, Duration::from_secs(2)).await, 0, "no more than rtp_unlatched_secs of media");
}

#[tokio::test]
async fn keep_alive_crlfs_before_a_request_do_not_hide_it() {
    let (running, _dir) = common::inproc::start().await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;
    let me = peer.addr();
    let options = |branch: &str| {
        format!(
            "OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\nFrom: <sip:a@h>;tag=1\n\
             To: <sip:b@h>\nCall-ID: ka-{branch}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        )
    };
    peer.send(&format!("\n\n{}", options("udp"))).await;
    assert_eq!(peer.responses().await.last().map(|r| r.0), Some(200), "over UDP");

    let tcp = running.sip.as_ref().expect("voice").tcp.expect("SIP over TCP");
    let mut stream = TcpStream::connect(tcp).await.expect("connect");
    let request = format!("\r\n\r\n{}", options("tcp").replace('\n', "\r\n"));
    stream.write_all(request.as_bytes()).await.expect("write");
    let reply = read_some(&mut stream, Duration::from_secs(5)).await;
    assert!(reply.starts_with("SIP/2.0 200"), "over TCP: {reply:?}");
}

/// What arrives on `stream` within `wait` (until it closes).
async fn read_some(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).to_string()
}

/// True when the server closes `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn an_unacked_200_over_tcp_is_sent_once_and_the_call_ends_with_our_bye_at_timer_h() {
    let (running, dir) = common::inproc::start().await;
    let (_client, mut notifications) = app(&running).await;
    let tcp = running.sip.as_ref().expect("voice").tcp.expect("SIP over TCP");
    let mut stream = TcpStream::connect(tcp).await.expect("connect");
    let me = stream.local_addr().expect("addr");
    let body = sdp(4000, "0").replace('\n', "\r\n");
    let head = format!(
        "INVITE sip:{NUMBER}@{tcp} SIP/2.0\nVia: SIP/2.0/TCP {me};branch=z9hG4bKnoack\n\
         From: <sip:+254700000888@{me}>;tag=tnoack\nTo: <sip:{NUMBER}@{tcp}>\nCall-ID: noack\nCSeq: 1 INVITE\n\
         Contact: <sip:peer@{me};transport=tcp>\nContent-Type: application/sdp\nContent-Length: {}\n\n",
        body.len()
    );
    let invite = head.replace('\n', "\r\n") + &body;
    stream.write_all(invite.as_bytes()).await.expect("invite");
    answered(&mut notifications).await.reply(long_tone(dir.path())).await.expect("answered");
    // Never ACKed: Timer H is 32 s.
    let heard = read_some(&mut stream, Duration::from_secs(40)).await;
    let oks = heard.matches("SIP/2.0 200 OK").count();
    assert_eq!(oks, 1, "a final response is not retransmitted over TCP: {heard}");
    assert!(heard.contains("BYE sip:peer@"), "the call ends with our BYE: {heard}");
}

#[tokio::test]
async fn sip_tcp_connections_are_capped_per_address_and_idle_or_trickling_ones_are_closed() {
    let (running, _dir) = common::inproc::start_with(|c| {
        c.voice.sip_tcp_max_per_address = 4;
        c.voice.sip_tcp_idle_secs = 2;
        c.voice.sip_tcp_message_secs = 2;
    })
    .await;
    let tcp = running.sip.as_ref().expect("voice").tcp.expect("SIP over TCP");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(tcp).await.expect("connect"));
    }
    let mut fifth = TcpStream::connect(tcp).await.expect("the kernel accepts");
    assert!(closed_within(&mut fifth, Duration::from_secs(2)).await, "a fifth from one address is closed");
    for s in &mut held {
        assert!(!closed_within(s, Duration::from_millis(100)).await, "the first four are held");
    }
    // A peer trickling a header byte every 300 ms is cut off at sip_tcp_message_secs.
    let mut trickle = held.pop().expect("one");
    let started = std::time::Instant::now();
    let mut cut = false;
    for b in b"OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt\r\n".iter().take(40) {
        if trickle.write_all(&[*b]).await.is_err() || closed_within(&mut trickle, Duration::from_millis(300)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled message is not waited for forever");
    assert!(started.elapsed() < Duration::from_secs(8), "cut at about 2 s, took {:?}", started.elapsed());
    // The silent ones are closed as idle.
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(5)).await, "idle connection closed");
    }
    // Places are given back: a new connection is served.
    let mut again = TcpStream::connect(tcp).await.expect("connect");
    let options =
        "OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKa\r\nFrom: <sip:a@h>;tag=1\r\n\
                   To: <sip:b@h>\r\nCall-ID: again\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    again.write_all(options.as_bytes()).await.expect("write");
    assert!(read_some(&mut again, Duration::from_secs(1)).await.starts_with("SIP/2.0 200"));
}

/// Every parseable junk INVITE once wrote a call record, and each refused INVITE a scanner never
/// ACKs held a call slot for Timer H (32 s), so a flood kept real calls out with 503. Refusals
/// before any org owns the call are now stateless: counted, not stored, no slot held.
#[tokio::test]
async fn a_flood_of_junk_invites_is_counted_not_stored_and_holds_no_call_slot() {
    let (running, _dir) = common::inproc::start_with(|c| c.voice.max_calls = 10).await;
    let peer = Peer::new(running.bound.sip.expect("SIP")).await;
    const FLOOD: usize = 100;
    for i in 0..FLOOD {
        let call = format!("junk{i}");
        // Alternately a number nobody owns and an SDP nobody can answer; never ACKed.
        let invite = if i % 2 == 0 {
            peer.invite(&call, "+19999999", &sdp(4000, "0"))
        } else {
            peer.invite(&call, NUMBER, "v=0\nm=video 1 RTP/AVP 96\n")
        };
        peer.send(&invite).await;
    }
    let mut refused = 0;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + WAIT;
    while refused < FLOOD && tokio::time::Instant::now() < deadline {
        let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, peer.socket.recv_from(&mut buf)).await else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 404") || text.starts_with("SIP/2.0 488") {
            refused += 1;
        }
    }
    assert!(refused >= FLOOD, "every junk INVITE refused ({refused})");
    let voice = running.sip.as_ref().expect("voice");
    assert_eq!(voice.refusals.total(), FLOOD as u64);
    assert_eq!(voice.live(), 0, "refused INVITEs hold call slots");
    assert!(running.hodi.store.call_records(1000).await.expect("records").is_empty(), "no row per junk INVITE");
    // A real call still gets in (no app is connected, so it is refused for that: 480, not 503).
    peer.send(&peer.invite("real", NUMBER, &sdp(4000, "0"))).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut finals = Vec::new();
    while finals.is_empty() && tokio::time::Instant::now() < deadline {
        let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, peer.socket.recv_from(&mut buf)).await else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains("Call-ID: real") && !text.starts_with("SIP/2.0 1") {
            finals.push(text.lines().next().unwrap_or_default().to_string());
        }
    }
    assert_eq!(finals, ["SIP/2.0 480 Temporarily Unavailable"], "the real call after the flood");
}

/// One source could take every call slot with INVITEs to a real number (each rings the app until
/// it answers). Inbound calls are capped per source address too.
#[tokio::test]
async fn one_source_cannot_take_every_call_slot() {
    let (running, _dir) = common::inproc::start_with(|c| c.voice.max_calls_per_address = 2).await;
    // The app takes the notifications and never answers them: the calls ring meanwhile.
    let (_client, _notifications) = app(&running).await;
    let sip = running.bound.sip.expect("SIP");
    let flooder = Peer::new(sip).await;
    for call in ["ring1", "ring2"] {
        flooder.send(&flooder.invite(call, NUMBER, &sdp(4000, "0"))).await;
    }
    flooder.send(&flooder.invite("ring3", NUMBER, &sdp(4000, "0"))).await;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut third = None;
    while third.is_none() && tokio::time::Instant::now() < deadline {
        let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, flooder.socket.recv_from(&mut buf)).await else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains("Call-ID: ring3") && !text.starts_with("SIP/2.0 1") {
            third = text.lines().next().map(str::to_string);
        }
        assert!(
            !(text.contains("Call-ID: ring1") || text.contains("Call-ID: ring2")) || text.starts_with("SIP/2.0 1"),
            "{text}"
        );
    }
    assert_eq!(third.as_deref(), Some("SIP/2.0 503 Service Unavailable"), "the third call from one address");
    // Another address still gets a ringing call.
    let other = Peer::from("127.0.0.2", sip).await;
    other.send(&other.invite("other1", NUMBER, &sdp(4002, "0"))).await;
    let mut ringing = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ringing && tokio::time::Instant::now() < deadline {
        let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, other.socket.recv_from(&mut buf)).await else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(!text.starts_with("SIP/2.0 503"), "another address was refused: {text}");
        ringing = text.starts_with("SIP/2.0 180");
    }
    assert!(ringing, "the other address's call rings");
}
