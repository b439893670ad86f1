//! One browser call: the page's signalling socket, its WebRTC peer connection (ICE-lite, DTLS,
//! SRTP — `str0m`, sans-IO, driven here), and the plain SIP+RTP leg the voice executor answers
//! like any phone's.
//!
//! Media crosses in both directions packet by packet, G.711 as it came (browsers offer PCMU and
//! PCMA, so nothing is transcoded): what the executor plays goes to the page, what the page's
//! microphone says goes to the executor, and the page's keys (RFC 4733 from `RTCDTMFSender`, or
//! `dtmf` signalling messages) reach the executor as telephone events, so `getDigits` reads them.
//!
//! Owns this call's sockets, its `Rtc`, and its leg; does not own admission (see [`super`]) or the
//! call's dialplan ([`crate::voice::call`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::change::SdpOffer;
use str0m::format::{Codec as WebCodec, CodecExtra, FormatParams};
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn, Instrument};

use super::leg::{Leg, LegEvent, EVENTS_PT};
use super::signal::{FromPage, ToPage};
use super::Gateway;
use crate::voice::listener::Sip;
use crate::voice::media::rtp::{Packet, TelephoneEvent};
use crate::voice::sdp::Codec;
use crate::voice::sip::message::{self, Message as SipMessage};
use crate::voice::sip::transport::{Transport, Vouched};

/// The page must send its call within this after the socket opens.
const FIRST_MESSAGE: Duration = Duration::from_secs(10);
/// ICE and DTLS must complete within this after the answer, or the call ends.
const CONNECT: Duration = Duration::from_secs(20);
/// After our BYE or CANCEL, how long the executor has to confirm.
const LEAVING: Duration = Duration::from_secs(2);
/// SIP messages from the executor waiting for this task.
const SIP_QUEUE: usize = 32;
/// A page must take a signalling message within this: one that stops reading does not hold the
/// call's task (and its media) up.
const SEND: Duration = Duration::from_secs(5);

/// Sends one message to the page; false when it did not go (closed, or not read in time).
async fn tell(ws: &mut Socket, message: ToPage) -> bool {
    matches!(tokio::time::timeout(SEND, ws.send(Message::text(message.text()))).await, Ok(Ok(())))
}

/// The leg's way into the executor: its SIP messages go through the listener's injection
/// channel on the leg's in-process transport.
struct Link {
    sip: Arc<Sip>,
    transport: Transport,
}

impl Link {
    async fn send(&self, bytes: Vec<u8>) {
        let message = (bytes, self.transport.clone());
        if self.sip.inject.send_timeout(message, Duration::from_secs(1)).await.is_err() {
            debug!("the SIP listener did not take a browser leg's message");
        }
    }

    /// Ends the leg from our side (CANCEL or BYE); false when it was already ending.
    async fn leave(&self, leg: &mut Leg) -> bool {
        let Some(bytes) = leg.hang_up() else { return false };
        self.send(bytes).await;
        true
    }
}

type Socket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Runs one page's call to its end; `peer` is the page's address.
pub async fn run(gateway: Arc<Gateway>, mut ws: Socket, peer: SocketAddr) {
    let span = tracing::info_span!("webrtc", %peer, call_id = tracing::field::Empty, customer = tracing::field::Empty);
    let reason = match serve(&gateway, &mut ws, peer).instrument(span).await {
        Ok(reason) => reason,
        Err(reason) => {
            debug!(%peer, %reason, "browser call refused");
            reason
        }
    };
    tell(&mut ws, ToPage::Ended { reason }).await;
    let _ = tokio::time::timeout(SEND, ws.close(None)).await;
}

/// The first message, checked: who calls what with which offer.
async fn first_call(
    gateway: &Gateway,
    ws: &mut Socket,
    peer: SocketAddr,
) -> Result<(Arc<Vouched>, String, String), String> {
    let text = match tokio::time::timeout(FIRST_MESSAGE, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) => return Err("the first message must be a call (JSON text)".into()),
        Ok(Some(Err(e))) => return Err(format!("signalling: {e}")),
        Ok(None) => return Err("the page went away".into()),
        Err(_) => return Err(format!("no call within {} s", FIRST_MESSAGE.as_secs())),
    };
    let FromPage::Call { org_id, app_id, token, to, from, sdp } = FromPage::parse(&text).map_err(|e| e.0)? else {
        return Err("the first message must be a call".into());
    };
    match gateway.hodi.store.check_auth_token(&org_id, &app_id, &token).await {
        Ok(crate::store::auth::TokenCheck::Valid { .. }) => gateway.failures.forgive(peer.ip()),
        Ok(crate::store::auth::TokenCheck::Expired(_)) => {
            gateway.failures.failed(peer.ip());
            return Err("the token has expired".into());
        }
        Ok(_) => {
            gateway.failures.failed(peer.ip());
            return Err("unknown token for this org and app".into());
        }
        Err(e) => {
            warn!(error = %e, "checking a browser call's token");
            return Err("the token could not be checked".into());
        }
    }
    let customer = from.unwrap_or_else(|| format!("browser-{:x}", crate::voice::rand_id() & 0xffff_ffff));
    let cellular =
        crate::convert::number::check(crate::wire::CustomerNumberProvider::Cellular as i32, &customer).is_ok();
    Ok((Arc::new(Vouched { org_id, customer, cellular }), to, sdp))
}

/// The peer connection for `offer`: G.711 and telephone events only, ICE-lite on one host
/// candidate.
fn peer_connection(offer: &str, candidate: SocketAddr) -> Result<(Rtc, String), String> {
    let mut config =
        RtcConfig::new().set_ice_lite(true).clear_codecs().enable_pcmu(true, false).enable_pcma(true, false);
    config.codec_config().add_config(
        Pt::from(126),
        None,
        WebCodec::Tele,
        Frequency::EIGHT_KHZ,
        None,
        FormatParams::default(),
    );
    let mut rtc = config.build(Instant::now());
    let candidate = Candidate::host(candidate, "udp").map_err(|e| format!("host candidate: {e}"))?;
    rtc.add_local_candidate(candidate);
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("the SDP offer: {e}"))?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| format!("the SDP offer: {e}"))?;
    Ok((rtc, answer.to_sdp_string()))
}

/// The first audio m-line's mid in an offer (a browser's offer names every m-line's).
fn audio_mid(offer: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in offer.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_audio) {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// The audio m-line and the G.711 law both sides have, PCMU first.
fn audio(rtc: &mut Rtc, mid: Mid) -> Option<(Pt, Codec)> {
    let writer = rtc.writer(mid)?;
    let params: Vec<_> = writer.payload_params().map(|p| (p.pt(), p.spec().codec)).collect();
    for (want, ours) in [(WebCodec::PCMU, Codec::Pcmu), (WebCodec::PCMA, Codec::Pcma)] {
        if let Some((pt, _)) = params.iter().find(|(_, c)| *c == want) {
            return Some((*pt, ours));
        }
    }
    None
}

/// RFC 4733 event code for a key.
fn event_code(key: char) -> Option<u8> {
    Some(match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => 12 + (key as u8 - b'A'),
        _ => return None,
    })
}

/// The leg's plain RTP toward the executor: what the page says, and its keys.
struct Toward {
    socket: UdpSocket,
    /// The executor's RTP address, once it answered.
    remote: Option<SocketAddr>,
    ssrc: u32,
    sequence: u16,
    /// Scratch for the packet being sent.
    packet: Vec<u8>,
    /// The last audio timestamp, for synthesised key presses.
    last_timestamp: u32,
}

impl Toward {
    async fn send(&mut self, payload_type: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        let Some(remote) = self.remote else { return };
        self.packet.clear();
        Packet { marker, payload_type, sequence: self.sequence, timestamp, ssrc: self.ssrc, payload }
            .write(&mut self.packet);
        self.sequence = self.sequence.wrapping_add(1);
        let _ = self.socket.send_to(&self.packet, remote).await;
    }

    /// A key from a `dtmf` message: one event, 100 ms long, its end sent three times (RFC 4733
    /// §2.5.1.4), as a phone's would arrive.
    async fn key(&mut self, key: char) {
        let Some(event) = event_code(key) else { return };
        let timestamp = self.last_timestamp.wrapping_add(160);
        self.last_timestamp = timestamp.wrapping_add(800);
        for (i, (end, duration)) in
            [(false, 160u16), (false, 480), (true, 800), (true, 800), (true, 800)].iter().enumerate()
        {
            let report = TelephoneEvent { event, end: *end, volume: 10, duration: *duration };
            self.send(EVENTS_PT, i == 0, timestamp, &report.bytes()).await;
        }
    }
}

async fn serve(gateway: &Gateway, ws: &mut Socket, peer: SocketAddr) -> Result<String, String> {
    let (vouched, to, offer) = first_call(gateway, ws, peer).await?;
    let browser =
        UdpSocket::bind(SocketAddr::new(gateway.media_ip, 0)).await.map_err(|e| format!("media socket: {e}"))?;
    let browser_addr = browser.local_addr().map_err(|e| e.to_string())?;
    let (mut rtc, answer) = peer_connection(&offer, browser_addr)?;
    let mid = audio_mid(&offer).ok_or("the offer has no audio")?;
    let (web_pt, codec) = audio(&mut rtc, mid).ok_or("the offer has neither PCMU nor PCMA")?;

    let leg_socket =
        UdpSocket::bind(SocketAddr::new(gateway.leg_ip, 0)).await.map_err(|e| format!("leg socket: {e}"))?;
    let leg_addr = leg_socket.local_addr().map_err(|e| e.to_string())?;
    // A cellular customer is named in From, as a phone's caller ID; an app identity is not (it
    // may hold characters a SIP URI's user part cannot), the transport carries it.
    let from_user = if vouched.cellular { vouched.customer.as_str() } else { "browser" };
    let (mut leg, invite) = Leg::invite(&to, from_user, leg_addr, codec);
    let (sip_tx, mut sip_rx) = mpsc::channel::<Vec<u8>>(SIP_QUEUE);
    let link = Link { sip: gateway.sip.clone(), transport: Transport::Web(sip_tx, peer, vouched.clone()) };
    link.send(invite).await;
    if !tell(ws, ToPage::Answer { sdp: answer }).await {
        link.leave(&mut leg).await;
        return Err("the page did not take the answer".into());
    }
    // The executor answers (or refuses) once the app has: as long as a phone may ring.
    let answer_by =
        tokio::time::Instant::now() + Duration::from_secs(gateway.hodi.config.voice.ring_timeout_secs.clamp(1, 600));
    let span = tracing::Span::current();
    span.record("call_id", leg.call_id());
    span.record("customer", vouched.customer.as_str());
    info!(%to, codec = ?codec, "browser call");

    let mut toward = Toward {
        socket: leg_socket,
        remote: None,
        ssrc: crate::voice::rand_id() as u32,
        sequence: crate::voice::rand_id() as u16,
        packet: Vec::with_capacity(256),
        last_timestamp: 0,
    };
    let connect_by = tokio::time::Instant::now() + CONNECT;
    let mut connected = false;
    let mut answered = false;
    let mut leaving_since: Option<tokio::time::Instant> = None;
    let mut ending = String::from("hung up");
    let mut from_browser = vec![0u8; 2048];
    let mut from_leg = vec![0u8; 2048];
    loop {
        // Everything str0m has to say, then wait for the next input or its next deadline.
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = browser.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        connected = true;
                        debug!("browser media connected");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        ending = "the page's media went away".into();
                        link.leave(&mut leg).await;
                        leaving_since.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Event::MediaData(data) => {
                        let timestamp = data.time.numer() as u32;
                        match data.codec_extra {
                            CodecExtra::Tele(e) => {
                                let duration = (e.duration.as_millis() * 8).min(u128::from(u16::MAX)) as u16;
                                let report = TelephoneEvent { event: e.event, end: e.end, volume: e.volume, duration };
                                toward
                                    .send(EVENTS_PT, data.audio_start_of_talk_spurt, timestamp, &report.bytes())
                                    .await;
                            }
                            _ => {
                                toward.last_timestamp = timestamp;
                                toward.send(codec.payload_type(), false, timestamp, &data.data).await;
                            }
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    warn!(error = %e, "browser peer connection");
                    ending = "media error".into();
                    link.leave(&mut leg).await;
                    return Ok(ending);
                }
            }
        };
        if leg.ended() {
            return Ok(ending);
        }
        if let Some(since) = leaving_since {
            if since.elapsed() > LEAVING {
                return Ok(ending);
            }
        }
        if !answered && leaving_since.is_none() && tokio::time::Instant::now() > answer_by {
            ending = "the call was not answered".into();
            link.leave(&mut leg).await;
            leaving_since.get_or_insert_with(tokio::time::Instant::now);
        }
        if !connected && tokio::time::Instant::now() > connect_by {
            ending = "the page's media never connected".into();
            link.leave(&mut leg).await;
            return Ok(ending);
        }
        let wake =
            tokio::time::Instant::from_std(deadline).min(tokio::time::Instant::now() + Duration::from_millis(500));
        tokio::select! {
            r = browser.recv_from(&mut from_browser) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = from_browser[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: browser_addr, contents });
                if rtc.accepts(&input) {
                    let _ = rtc.handle_input(input);
                }
            }
            r = toward.socket.recv_from(&mut from_leg) => {
                let Ok((n, source)) = r else { continue };
                // Only the executor's stream; and only audio in the agreed law goes on.
                if Some(source) != toward.remote || !connected {
                    continue;
                }
                let Some(packet) = Packet::parse(&from_leg[..n]) else { continue };
                if packet.payload_type != codec.payload_type() {
                    continue;
                }
                let time = MediaTime::new(u64::from(packet.timestamp), Frequency::EIGHT_KHZ);
                if let Some(writer) = rtc.writer(mid) {
                    if let Err(e) = writer.write(web_pt, Instant::now(), time, packet.payload.to_vec()) {
                        debug!(error = %e, "writing audio to the page");
                    }
                }
            }
            m = sip_rx.recv() => {
                let Some(bytes) = m else { return Ok(ending) };
                match message::parse(&bytes) {
                    Ok(SipMessage::Response(r)) => {
                        let (event, ack) = leg.on_response(&r);
                        if let Some(ack) = ack {
                            link.send(ack).await;
                        }
                        match event {
                            LegEvent::Ringing => {
                                if !tell(ws, ToPage::Ringing).await {
                                    ending = "the page stopped reading".into();
                                    link.leave(&mut leg).await;
                                    return Ok(ending);
                                }
                            }
                            LegEvent::Answered(media) => {
                                toward.remote = Some(media.remote);
                                answered = true;
                                if !tell(ws, ToPage::Answered).await {
                                    ending = "the page stopped reading".into();
                                    link.leave(&mut leg).await;
                                    return Ok(ending);
                                }
                            }
                            LegEvent::Ended(why) => return Ok(why),
                            LegEvent::Nothing => {}
                        }
                    }
                    Ok(SipMessage::Request(r)) => {
                        let (event, reply) = leg.on_request(&r);
                        link.send(reply).await;
                        if let LegEvent::Ended(why) = event {
                            return Ok(why);
                        }
                    }
                    Err(e) => debug!(error = %e, "unreadable SIP from the executor"),
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(text))) => match FromPage::parse(&text) {
                    Ok(FromPage::Dtmf { digits }) => {
                        for key in digits.chars() {
                            toward.key(key).await;
                        }
                    }
                    Ok(FromPage::Hangup) => {
                        ending = "the page hung up".into();
                        if !link.leave(&mut leg).await {
                            return Ok(ending);
                        }
                        leaving_since.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Ok(FromPage::Call { .. }) => return Err("one call per socket".into()),
                    Err(e) => {
                        link.leave(&mut leg).await;
                        return Err(e.0);
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) => {
                    link.leave(&mut leg).await;
                    return Err("signalling messages are JSON text".into());
                }
                Some(Err(_)) | None => {
                    ending = "the page went away".into();
                    link.leave(&mut leg).await;
                    // Wait briefly for the executor's 200, then stop.
                    leaving_since.get_or_insert_with(tokio::time::Instant::now);
                    let until = tokio::time::Instant::now() + LEAVING;
                    while let Ok(Some(bytes)) = tokio::time::timeout_at(until, sip_rx.recv()).await {
                        if let Ok(SipMessage::Response(r)) = message::parse(&bytes) {
                            let _ = leg.on_response(&r);
                        }
                        if leg.ended() {
                            break;
                        }
                    }
                    return Ok(ending);
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}
