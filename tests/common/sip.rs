//! A hand-driven SIP caller and the app side of a voice test, shared by the voice tests.

use std::time::Duration;

use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options};

pub const WAIT: Duration = Duration::from_secs(30);

/// A hand-driven SIP peer for the cases sipp has no scenario for: malformed messages, refusals.
pub struct Peer {
    pub socket: tokio::net::UdpSocket,
    pub server: std::net::SocketAddr,
}

impl Peer {
    pub async fn new(server: std::net::SocketAddr) -> Peer {
        Peer::from("127.0.0.1", server).await
    }

    /// A peer on another loopback address (any of 127/8), to count as another source.
    pub async fn from(ip: &str, server: std::net::SocketAddr) -> Peer {
        Peer { socket: tokio::net::UdpSocket::bind((ip, 0)).await.expect("bind"), server }
    }

    pub fn addr(&self) -> String {
        self.socket.local_addr().expect("addr").to_string()
    }

    pub async fn send(&self, text: &str) {
        self.socket.send_to(text.replace('\n', "\r\n").as_bytes(), self.server).await.expect("send");
    }

    /// Responses until a final one (or none within 10 s): (code, whole message).
    pub async fn responses(&self) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(10), self.socket.recv_from(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let code = text.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
            out.push((code, text));
            if code >= 200 {
                break;
            }
        }
        out
    }

    pub fn invite(&self, call_id: &str, number: &str, sdp: &str) -> String {
        let me = self.addr();
        format!(
            "INVITE sip:{number}@{server} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\n\
             From: <sip:+254700000888@{me}>;tag=t{call_id}\nTo: <sip:{number}@{server}>\nCall-ID: {call_id}\n\
             CSeq: 1 INVITE\nContact: <sip:peer@{me}>\nMax-Forwards: 70\nContent-Type: application/sdp\n\
             Content-Length: {}\n\n{sdp}",
            sdp.replace('\n', "\r\n").len(),
            server = self.server
        )
    }

    pub fn ack(&self, call_id: &str, number: &str, to_tag: &str) -> String {
        let me = self.addr();
        format!(
            "ACK sip:{number}@{server} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\n\
             From: <sip:+254700000888@{me}>;tag=t{call_id}\nTo: <sip:{number}@{server}>;tag={to_tag}\nCall-ID: {call_id}\n\
             CSeq: 1 ACK\nContent-Length: 0\n\n",
            server = self.server
        )
    }
}

pub fn sdp(port: u16, formats: &str) -> String {
    // Payload type 101 is dynamic: named, so the far end knows it carries key presses.
    let events = if formats.split(' ').any(|f| f == "101") { "a=rtpmap:101 telephone-event/8000\n" } else { "" };
    format!("v=0\no=p 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP {formats}\n{events}")
}

pub fn to_tag(message: &str) -> String {
    message
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The port of the audio stream in an SDP body (what the other side must send RTP to).
pub fn sdp_port(message: &str) -> u16 {
    message
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .expect("m=audio")
}

pub fn rtp(seq: u16, payload_type: u8, fill: u8) -> Vec<u8> {
    let mut p =
        vec![0x80, payload_type, (seq >> 8) as u8, seq as u8, 0, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0x12, 0x34];
    p.extend(std::iter::repeat_n(fill, 160));
    p
}

/// The next "answered" voiceCall notification; others (session started…) arrive through the
/// outbox and may come first, so they are skipped (and acknowledged).
pub async fn answered(notifications: &mut hodi_sdk::Notifications) -> hodi_sdk::Notification {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no answered call");
        let n = notifications.next_within(WAIT).await.expect("a notification");
        if let Event::ReceivedMessage(m) = &n.event {
            if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Answered as i32) {
                return n;
            }
        }
    }
}

/// An app written with hodi-sdk on the dev tenant, and its notification stream.
pub async fn app(running: &hodi::server::Running) -> (Elarian, hodi_sdk::Notifications) {
    let dev = running.dev.clone().expect("dev tenant");
    let options = Options::new(
        Endpoint::Tcp(running.bound.tcp.expect("tcp").to_string()),
        &dev.org_id,
        &dev.app_id,
        Credentials::ApiKey(dev.api_key.clone()),
    );
    let client = Elarian::connect(options);
    client.connected(WAIT).await.expect("app connected");
    let notifications = client.notifications().expect("stream");
    (client, notifications)
}

/// baresip as the dialled phone: answers on its own (answermode=auto), sends a 600 Hz tone, and
/// records what it hears (its sndfile module) — the far end's own recording.
pub struct Baresip {
    _child: tokio::process::Child,
    pub recordings: std::path::PathBuf,
    pub addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

pub async fn baresip(dir: &std::path::Path, user: &str) -> Baresip {
    baresip_with(dir, user, |addr| format!("<sip:{user}@{addr}>;regint=0;answermode=auto"), PhoneOptions::default())
        .await
}

/// What else a baresip phone does: the tone it sends (Hz), and a number it dials once started.
pub struct PhoneOptions {
    pub tone_hz: f32,
    pub dial: Option<String>,
}

impl Default for PhoneOptions {
    fn default() -> Self {
        PhoneOptions { tone_hz: 600.0, dial: None }
    }
}

/// baresip with the account line `account` makes from its own SIP address (to register with
/// Hodi, say); `user` is the user part it answers OPTIONS for.
pub async fn baresip_with(
    dir: &std::path::Path,
    user: &str,
    account: impl FnOnce(std::net::SocketAddr) -> String,
    options: PhoneOptions,
) -> Baresip {
    let conf = dir.join("baresip");
    let recordings = conf.join("rec");
    std::fs::create_dir_all(&recordings).expect("dirs");
    let tone = conf.join("tone.wav");
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&tone, spec).expect("wav");
    // 30 s: baresip hangs up when its audio source file ends.
    for i in 0..8000 * 30 {
        let x = i as f32 * 2.0 * std::f32::consts::PI * options.tone_hz / 8000.0;
        w.write_sample((x.sin() * 10_000.0) as i16).expect("s");
    }
    w.finalize().expect("finalize");
    let port = super::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = format!(
        "sip_listen {addr}\nnet_interface 127.0.0.1\naudio_player aufile,{played}\naudio_source aufile,{tone}\n\
         audio_alert aufile,{tone}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
         module sndfile.so\nmodule_app account.so\nmodule_app menu.so\nsnd_path {rec}\n",
        played = conf.join("played.wav").display(),
        tone = tone.display(),
        rec = recordings.display()
    );
    std::fs::write(conf.join("config"), config).expect("config");
    std::fs::write(conf.join("accounts"), format!("{}\n", account(addr))).expect("accounts");
    let mut command = tokio::process::Command::new("baresip");
    command.arg("-f").arg(&conf).arg("-s");
    if let Some(target) = &options.dial {
        command.arg("-e").arg(format!("/dial {target}"));
    }
    let child = command
        .stdin(std::process::Stdio::null())
        // What it printed (SIP trace included), for a failing test's message: `Baresip::log`.
        .stdout(std::fs::File::create(conf.join("baresip.log")).expect("log file"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip (apt install baresip-core)");
    // Ready once it answers OPTIONS.
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("probe");
    let me = probe.local_addr().expect("addr");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        assert!(tokio::time::Instant::now() < deadline, "baresip did not start");
        let options = format!(
            "OPTIONS sip:{user}@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\nFrom: <sip:t@{me}>;tag=p\r\n\
             To: <sip:{user}@{addr}>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = probe.send_to(options.as_bytes(), addr).await;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), probe.recv_from(&mut buf)).await {
            break;
        }
    }
    Baresip { _child: child, recordings, addr, log: conf.join("baresip.log") }
}

impl Baresip {
    /// What baresip heard on its call (its sndfile module's `-dec.wav`) once the file holds more
    /// than `samples` (8 kHz); panics after WAIT with baresip's log.
    pub async fn heard(&self, samples: usize) -> Vec<i16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let dec = std::fs::read_dir(&self.recordings)
                .expect("recordings")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.to_string_lossy().ends_with("-dec.wav"));
            let heard: Vec<i16> = dec
                .and_then(|p| hound::WavReader::open(p).ok())
                .map(|r| r.into_samples::<i16>().filter_map(Result::ok).collect())
                .unwrap_or_default();
            if heard.len() > samples {
                return heard;
            }
            assert!(tokio::time::Instant::now() < deadline, "baresip wrote no recording of the call:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The end of what baresip printed.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text[text.len().saturating_sub(6000)..].to_string()
    }
}

/// A `dial` action to `numbers`, in turn, not recorded, with `max_duration` (seconds).
pub fn dial(numbers: &[&str], max_duration: Option<i32>) -> hodi_sdk::wire::VoiceCallAction {
    hodi_sdk::wire::VoiceCallAction {
        entry: Some(hodi_sdk::wire::voice_call_action::Entry::Dial(hodi_sdk::wire::DialCallAction {
            customer_numbers: numbers.iter().map(|n| hodi_sdk::model::cellular(*n)).collect(),
            record: false,
            sequential: true,
            ringback_tone: None,
            caller_id: None,
            max_duration,
        })),
    }
}

/// A hand-driven caller on the dev voice number whose call the app answered and Hodi picked up:
/// its SIP peer, its RTP socket, Hodi's To tag and Hodi's RTP port for the call.
pub struct Caller {
    pub peer: Peer,
    pub rtp: tokio::net::UdpSocket,
    pub call_id: String,
    pub tag: String,
    pub hodi_rtp: u16,
    seq: u16,
}

impl Caller {
    /// Calls `sip` as `call_id`; the app answers the call with `actions`; waits for the 200 and ACKs.
    pub async fn call(
        sip: std::net::SocketAddr,
        notifications: &mut hodi_sdk::Notifications,
        call_id: &str,
        actions: Vec<hodi_sdk::wire::VoiceCallAction>,
    ) -> Caller {
        let peer = Peer::new(sip).await;
        let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
        peer.send(&peer.invite(call_id, "+254711082000", &sdp(rtp.local_addr().expect("a").port(), "0 101"))).await;
        let n = answered(notifications).await;
        n.reply(hodi_sdk::Reply::message(hodi_sdk::model::message::voice(actions))).await.expect("answered");
        let ok = peer.responses().await.pop().expect("200");
        assert_eq!(ok.0, 200, "{}", ok.1);
        let tag = to_tag(&ok.1);
        peer.send(&peer.ack(call_id, "+254711082000", &tag)).await;
        Caller { hodi_rtp: sdp_port(&ok.1), peer, rtp, call_id: call_id.to_string(), tag, seq: 0 }
    }

    /// Sends 20 ms of the caller's voice (a loud constant level, μ-law 0x11).
    pub async fn talk(&mut self) {
        self.rtp.send_to(&rtp(self.seq, 0, 0x11), ("127.0.0.1", self.hodi_rtp)).await.expect("a → hodi");
        self.seq = self.seq.wrapping_add(1);
    }

    /// Talks until 25 packets of a loud tone (peaks above 8,000: baresip's tone, not ringback,
    /// which peaks near 6,000) came back within WAIT; panics with `what` otherwise.
    pub async fn hear_tone(&mut self, what: &str) {
        let mut buf = [0u8; 2048];
        let mut tone_packets = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while tone_packets < 25 {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            self.talk().await;
            if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(20), self.rtp.recv_from(&mut buf)).await
            {
                let peak = buf[12..n].iter().map(|b| hodi::voice::media::g711::ulaw_decode(*b).unsigned_abs()).max();
                if peak.unwrap_or(0) > 8_000 {
                    tone_packets += 1;
                }
            }
        }
    }

    /// Hangs up (BYE) and waits for Hodi's 200.
    pub async fn hang_up(&self) {
        let me = self.peer.addr();
        let (id, tag) = (&self.call_id, &self.tag);
        self.peer
            .send(&format!(
                "BYE sip:x@h SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{id}bye\nFrom: <sip:+254700000888@{me}>;tag=t{id}\n\
                 To: <sip:+254711082000@h>;tag={tag}\nCall-ID: {id}\nCSeq: 2 BYE\nContent-Length: 0\n\n"
            ))
            .await;
        assert_eq!(self.peer.responses().await.last().map(|r| r.0), Some(200));
    }
}
