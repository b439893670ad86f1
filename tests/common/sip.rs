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
    format!("v=0\no=p 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP {formats}\n")
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
