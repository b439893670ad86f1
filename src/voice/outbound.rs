//! Calls Hodi places: a voice message (SendMessage on a voice channel) becomes an INVITE to the
//! customer's number at the configured trunk; on answer the message's actions run, followed by
//! whatever the app adds when told the call was answered.
//!
//! Owns the INVITE client transaction (retransmission until a response, ACK for any final
//! response, CANCEL after the ring timeout); the answered call is [`super::call::talk`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use super::call::{self, Call, Ending, Incoming, Resend};
use super::media::stream::Stream;
use super::sdp;
use super::sip::message::{self, Request, Response};
use crate::server::Hodi;
use crate::wire::{CustomerEventDirection, VoiceCallAction, VoiceCallHangupCause, VoiceCallStatus};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// A call to place.
#[derive(Debug, Clone)]
pub struct Placement {
    pub org_id: String,
    pub app_id: String,
    /// The customer's number (the Request-URI user at the trunk).
    pub customer: String,
    /// Our voice channel number (the caller id).
    pub number: String,
    pub session_id: String,
    pub actions: Vec<VoiceCallAction>,
}

/// True when voice messages become SIP calls: the executor listens and a trunk is configured.
pub fn available(hodi: &Hodi) -> bool {
    hodi.voice.get().is_some() && !hodi.config.voice.trunk.trim().is_empty()
}

/// Places the call in the background.
pub fn place(hodi: Arc<Hodi>, p: Placement) {
    let span = tracing::info_span!("outbound_call", session_id = %p.session_id, customer = %p.customer);
    tokio::spawn(run(hodi, p).instrument(span));
}

async fn run(hodi: Arc<Hodi>, p: Placement) {
    let Some(sip) = hodi.voice.get().cloned() else { return };
    let trunk = match tokio::net::lookup_host(hodi.config.voice.trunk.trim()).await.ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            warn!(trunk = %hodi.config.voice.trunk, "the voice trunk address does not resolve");
            return fail(&hodi, &p, VoiceCallHangupCause::ServiceUnavailable).await;
        }
    };
    let call_id = format!("{:x}@hodi", call::rand_id());
    let Some(inbox) = sip.register(&call_id, hodi.config.voice.max_calls) else {
        warn!("call limit reached; not placing the call");
        return fail(&hodi, &p, VoiceCallHangupCause::NormalTemporaryFailure).await;
    };
    // Nothing is sent until the far end says where: the stream starts "on hold".
    let placeholder = sdp::Media {
        remote: SocketAddr::from(([0, 0, 0, 0], 9)),
        codec: sdp::Codec::Pcmu,
        events: Some(101),
        on_hold: true,
    };
    let stream = match Stream::open(hodi.config.voice.rtp_ip, placeholder).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "opening RTP");
            sip.unregister(&call_id);
            return fail(&hodi, &p, VoiceCallHangupCause::NormalTemporaryFailure).await;
        }
    };
    let local_media = match stream.local() {
        Ok(a) => a,
        Err(_) => return sip.unregister(&call_id),
    };
    let local_tag = format!("{:x}", call::rand_id());
    let ours = format!("<sip:{}@{}>", p.number, sip.local);
    let theirs = format!("<sip:{}@{}>", p.customer, trunk);
    let mut call = Call {
        hodi: hodi.clone(),
        sip: sip.socket.clone(),
        peer: trunk,
        // Filled in with the far end's tag and Contact once it answers (see the field's doc).
        invite: Request {
            method: "INVITE".into(),
            user: p.number.clone(),
            vias: Vec::new(),
            from: theirs.clone(),
            to: ours.clone(),
            call_id: call_id.clone(),
            cseq: "1 INVITE".into(),
            contact: None,
            record_routes: Vec::new(),
            content_type: None,
            body: Vec::new(),
        },
        local_tag: local_tag.clone(),
        session_id: p.session_id.clone(),
        local: sip.local,
        started_at: crate::store::now_ms(),
        outcome: Default::default(),
        direction: CustomerEventDirection::Outbound,
    };
    {
        let mut o = call.outcome();
        o.org_id = Some(p.org_id.clone());
        o.app_id = Some(p.app_id.clone());
    }
    let branch = format!("z9hG4bK{:x}", call::rand_id());
    let body = sdp::offer(local_media, call::rand_id());
    let invite = format!(
        "INVITE sip:{}@{trunk} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch}\r\nMax-Forwards: 70\r\n\
         From: {ours};tag={local_tag}\r\nTo: {theirs}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: {ours}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        p.customer,
        sip.local,
        body.len()
    );
    let mut inbox = inbox;
    let ring = Duration::from_secs(hodi.config.voice.ring_timeout_secs.clamp(1, 600));
    let answered = ringing(&call, &mut inbox, invite.as_bytes(), ring).await;
    let (resp, ack) = match answered {
        Ringing::Answered(resp) => {
            let target = resp.contact.as_deref().map(message::uri).unwrap_or_default().to_string();
            let target = if target.is_empty() { format!("sip:{}@{trunk}", p.customer) } else { target };
            let ack = format!(
                "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{:x}\r\nMax-Forwards: 70\r\n\
                 From: {ours};tag={local_tag}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                sip.local,
                call::rand_id(),
                resp.to
            )
            .into_bytes();
            call.send(ack.clone()).await;
            (resp, ack)
        }
        Ringing::Refused(code, to) => {
            // A final non-2xx response is ACKed in the INVITE's transaction (same branch).
            let ack = format!(
                "ACK sip:{}@{trunk} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch}\r\nMax-Forwards: 70\r\n\
                 From: {ours};tag={local_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                p.customer, sip.local
            );
            call.send(ack.into_bytes()).await;
            call.outcome().sip_status = code;
            info!(code, "the call was not answered");
            not_answered(&call, &p, cause_of(code)).await;
            return finish(&call, &sip, &call_id).await;
        }
        Ringing::NoAnswer => {
            let cancel = format!(
                "CANCEL sip:{}@{trunk} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch}\r\nMax-Forwards: 70\r\n\
                 From: {ours};tag={local_tag}\r\nTo: {theirs}\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
                p.customer, sip.local
            );
            call.send(cancel.into_bytes()).await;
            call.outcome().sip_status = 408;
            not_answered(&call, &p, VoiceCallHangupCause::NoAnswer).await;
            return finish(&call, &sip, &call_id).await;
        }
    };
    let media = match std::str::from_utf8(&resp.body).map_err(|_| "SDP is not text".to_string()).and_then(sdp::parse) {
        Ok(m) => m,
        Err(why) => {
            warn!(%why, "the answer's SDP is unusable; hanging up");
            call.invite.from = resp.to.clone();
            call.invite.contact = resp.contact.clone();
            let mut scratch = inbox;
            call::talk(
                &call,
                &mut scratch,
                &p.org_id,
                &p.app_id,
                stream,
                vec![],
                Resend::AckOn200(ack),
                "",
                [("Contact", ours)],
            )
            .await;
            return finish(&call, &sip, &call_id).await;
        }
    };
    stream.control().update(media.clone());
    call.invite.from = resp.to.clone();
    call.invite.contact = resp.contact.clone();
    info!(codec = ?media.codec, "call answered");
    // The message's actions, then what the app adds on hearing of the answer.
    let mut actions = p.actions.clone();
    match call.ask(&p.org_id, &p.app_id, call::part(call.direction, VoiceCallStatus::Answered, None, None)).await {
        Ok(more) => actions.extend(more.unwrap_or_default()),
        Err(e) => info!(error = %e, "the app was not told of the answer; running the message's actions"),
    }
    let our_sdp = sdp::describe(local_media, media.codec, media.events, 1, 2);
    call::talk(
        &call,
        &mut inbox,
        &p.org_id,
        &p.app_id,
        stream,
        actions,
        Resend::AckOn200(ack),
        &our_sdp,
        [("Contact", ours)],
    )
    .await;
    finish(&call, &sip, &call_id).await;
}

enum Ringing {
    Answered(Response),
    Refused(u16, String),
    NoAnswer,
}

/// The INVITE client transaction: retransmitted until any response (Timer A), then waiting for
/// the final one until the ring timeout.
async fn ringing(call: &Call, inbox: &mut mpsc::Receiver<Incoming>, invite: &[u8], ring: Duration) -> Ringing {
    let deadline = tokio::time::Instant::now() + ring;
    let mut wait = T1;
    let mut heard = false;
    call.send(invite.to_vec()).await;
    let mut next = tokio::time::Instant::now() + wait;
    loop {
        let until = if heard { deadline } else { next.min(deadline) };
        match tokio::time::timeout_at(until, inbox.recv()).await {
            Ok(Some(Incoming::Response(r))) if r.cseq.ends_with("INVITE") => match r.code {
                100..=199 => heard = true,
                200..=299 => return Ringing::Answered(r),
                code => return Ringing::Refused(code, r.to),
            },
            Ok(Some(_)) => {}
            Ok(None) => return Ringing::NoAnswer,
            Err(_) if tokio::time::Instant::now() >= deadline => return Ringing::NoAnswer,
            Err(_) => {
                call.send(invite.to_vec()).await;
                wait = (wait * 2).min(T2);
                next = tokio::time::Instant::now() + wait;
            }
        }
    }
}

fn cause_of(code: u16) -> VoiceCallHangupCause {
    match code {
        404 | 484 => VoiceCallHangupCause::UnallocatedNumber,
        486 | 600 => VoiceCallHangupCause::UserBusy,
        408 | 480 => VoiceCallHangupCause::NoAnswer,
        603 => VoiceCallHangupCause::CallRejected,
        503 => VoiceCallHangupCause::ServiceUnavailable,
        _ => VoiceCallHangupCause::NormalTemporaryFailure,
    }
}

async fn not_answered(call: &Call, p: &Placement, cause: VoiceCallHangupCause) {
    call.outcome().ending = Ending::NotAnswered.name();
    let part = call::part(call.direction, VoiceCallStatus::NotAnswered, None, Some(cause));
    if let Err(e) = call.ask(&p.org_id, &p.app_id, part).await {
        warn!(error = %e, "telling the app the call was not answered");
    }
}

/// A call that could not even be tried: the app hears it failed (no record: nothing was sent).
async fn fail(hodi: &Arc<Hodi>, p: &Placement, cause: VoiceCallHangupCause) {
    let cmd = crate::wire::ReceiveMessageSimulatorCommand {
        customer_number: p.customer.clone(),
        channel_number: Some(crate::wire::MessagingChannelNumber {
            channel: crate::wire::MessagingChannel::Voice as i32,
            number: p.number.clone(),
        }),
        parts: vec![crate::wire::InboundMessageBody {
            entry: Some(crate::wire::inbound_message_body::Entry::Voice(call::part(
                CustomerEventDirection::Outbound,
                VoiceCallStatus::NotAnswered,
                None,
                Some(cause),
            ))),
        }],
        session_id: Some(p.session_id.clone()),
        cost: None,
        duration: None,
    };
    if let Err(e) = crate::messaging::inbound::receive(hodi, &p.org_id, &p.app_id, cmd).await {
        warn!(error = %e, "telling the app the call failed");
    }
}

async fn finish(call: &Call, sip: &super::server::Sip, call_id: &str) {
    sip.unregister(call_id);
    call::store_record(call).await;
}
