//! Calls Hodi places: a voice message (SendMessage on a voice channel) becomes an INVITE to the
//! customer's number at the configured trunk; on answer the message's actions run, followed by
//! whatever the app adds when told the call was answered.
//!
//! Owns the INVITE client transaction (retransmission until a response, ACK for any final
//! response, CANCEL after the ring timeout); the answered call is [`super::call::talk`].

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::call::{self, Call, Ending, Incoming, Resend};
use super::listener::Sip;
use super::media::stream::Stream;
use super::sdp;
use super::sip::message::{self, Request, Response};
use super::sip::transport::Transport;
use crate::channel::CallRequest;
use crate::context::Hodi;
use crate::wire::{CustomerEventDirection, VoiceCallHangupCause, VoiceCallStatus};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// The voice executor as messaging sees it ([`crate::channel::PlaceCalls`]): calls placed
/// through the configured trunk from the SIP socket.
pub struct Trunk {
    /// Weak: the context holds the trunk, and a call needs the context (store, messaging).
    hodi: Weak<Hodi>,
    sip: Arc<Sip>,
}

impl Trunk {
    pub fn new(hodi: Weak<Hodi>, sip: Arc<Sip>) -> Trunk {
        Trunk { hodi, sip }
    }
}

impl crate::channel::PlaceCalls for Trunk {
    /// Places the call in the background (nothing when the server is going away).
    fn place(&self, p: CallRequest) {
        let Some(hodi) = self.hodi.upgrade() else { return };
        let span = tracing::info_span!("outbound_call", session_id = %p.session_id, customer = %p.customer);
        tokio::spawn(run(hodi, self.sip.clone(), p).instrument(span));
    }
}

/// A leg Hodi placed, up to its answer.
pub(super) struct Leg {
    pub call: Call,
    pub inbox: mpsc::Receiver<Incoming>,
    pub stream: Stream,
    /// Our SDP for re-INVITEs, and our Contact.
    pub our_sdp: String,
    pub contact: String,
    pub ack: Vec<u8>,
}

/// How placing a leg went.
pub(super) enum Placed {
    Answered(Box<Leg>),
    /// Refused or not answered: the call (for its record) and the hang-up cause.
    NotAnswered(Box<Call>, VoiceCallHangupCause),
    /// Could not even be tried.
    Failed(VoiceCallHangupCause),
}

/// A leg to place: from our `number` to `to`, offering both G.711 laws with `codec` first (μ-law
/// when None), ringing at most `ring`.
pub(super) struct LegRequest<'a> {
    pub number: &'a str,
    pub to: Destination<'a>,
    pub session_id: &'a str,
    pub codec: Option<sdp::Codec>,
    pub ring: Duration,
}

/// Where a leg goes.
#[derive(Clone, Copy)]
pub(super) enum Destination<'a> {
    /// A customer's number, through the configured trunk.
    Trunk(&'a str),
    /// A phone registered with Hodi's registrar: its Contact, reached the way it registered.
    Device { user: &'a str, domain: &'a str, contact: &'a str, transport: &'a Transport },
}

/// Places a leg through the trunk or to a registered phone; `cancel` stops it ringing.
pub(super) async fn place_leg(
    hodi: &Arc<Hodi>,
    sip: &Arc<Sip>,
    leg: LegRequest<'_>,
    cancel: &CancellationToken,
) -> Placed {
    let LegRequest { number, to, session_id, codec, ring } = leg;
    // The Request-URI, the way there, and the far end as To names it.
    let (target, transport, theirs) = match to {
        Destination::Trunk(customer) => {
            let Some((trunk, transport)) = super::trunk::reach(hodi, sip).await else {
                return Placed::Failed(VoiceCallHangupCause::ServiceUnavailable);
            };
            let uri = format!("sip:{customer}@{trunk}");
            (uri.clone(), transport, format!("<{uri}>"))
        }
        Destination::Device { user, domain, contact, transport } => {
            (contact.to_string(), transport.clone(), format!("<sip:{user}@{domain}>"))
        }
    };
    // Our address on the transport the leg uses, for Via and Contact.
    let local = match &transport {
        Transport::Tcp(..) => sip.tcp.unwrap_or(sip.local),
        Transport::Udp(..) | Transport::Web(..) => sip.local,
    };
    let via = format!("SIP/2.0/{} {local}", transport.name());
    let call_id = format!("{:x}@hodi", call::rand_id());
    let local_tag = format!("{:x}", call::rand_id());
    let dialog = super::sip::dialog::Dialog::outbound(local_tag.clone());
    let Some((mut inbox, dialog)) = sip.register(&call_id, dialog, None, &hodi.config.voice) else {
        warn!("call limit reached; not placing the call");
        return Placed::Failed(VoiceCallHangupCause::NormalTemporaryFailure);
    };
    // Nothing is sent until the far end says where: the stream starts "on hold".
    let placeholder = sdp::Media {
        remote: SocketAddr::from(([0, 0, 0, 0], 9)),
        codec: codec.unwrap_or(sdp::Codec::Pcmu),
        events: Some(101),
        on_hold: true,
    };
    let stream = match Stream::open(&(&hodi.config.voice).into(), placeholder).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "opening RTP");
            sip.unregister(&call_id);
            return Placed::Failed(VoiceCallHangupCause::NormalTemporaryFailure);
        }
    };
    let Ok(local_media) = stream.local() else {
        sip.unregister(&call_id);
        return Placed::Failed(VoiceCallHangupCause::NormalTemporaryFailure);
    };
    let ours = format!("<sip:{number}@{local}>");
    let mut call = Call {
        hodi: hodi.clone(),
        sip: sip.clone(),
        transport,
        // Filled in with the far end's tag and Contact once it answers (see the field's doc).
        invite: Request {
            method: "INVITE".into(),
            user: number.to_string(),
            vias: Vec::new(),
            from: theirs.clone(),
            to: ours.clone(),
            call_id: call_id.clone(),
            cseq: "1 INVITE".into(),
            contact: None,
            record_routes: Vec::new(),
            content_type: None,
            body: Vec::new(),
            ..Default::default()
        },
        local_tag: local_tag.clone(),
        session_id: session_id.to_string(),
        local,
        started_at: crate::store::now_ms(),
        outcome: Default::default(),
        direction: CustomerEventDirection::Outbound,
        number: number.to_string(),
        sip_user: match to {
            Destination::Device { user, domain, .. } => Some(format!("{user}@{domain}")),
            Destination::Trunk(_) => None,
        },
    };
    let mut branch = format!("z9hG4bK{:x}", call::rand_id());
    let mut cseq = 1u32;
    // One SDP session for the leg: version 1 in our offer, 2 in answers to re-INVITEs.
    let sdp_session = call::rand_id();
    // Both laws, the caller's first: a far end that takes the other is bridged through
    // transcoding (see media::stream) rather than refused.
    let body = sdp::offer(local_media, sdp_session, codec.unwrap_or(sdp::Codec::Pcmu));
    let invite = |branch: &str, cseq: u32, auth: &str| {
        format!(
            "INVITE {target} SIP/2.0\r\nVia: {via};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: {ours};tag={local_tag}\r\nTo: {theirs}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n{auth}\
             Contact: {ours}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    // A non-2xx final response is ACKed in the INVITE's transaction (same branch and URI); a 2xx
    // in a transaction of its own, to the far end's Contact.
    let ack = |r: &Response, branch: &str, cseq: u32| -> Vec<u8> {
        let contact = r.contact.as_deref().map(message::uri).filter(|u| !u.is_empty());
        let (uri, via_branch) = match contact {
            Some(c) if r.code < 300 => (c.to_string(), format!("z9hG4bK{:x}", call::rand_id())),
            _ if r.code < 300 => (target.clone(), format!("z9hG4bK{:x}", call::rand_id())),
            _ => (target.clone(), branch.to_string()),
        };
        format!(
            "ACK {uri} SIP/2.0\r\nVia: {via};branch={via_branch}\r\nMax-Forwards: 70\r\n\
             From: {ours};tag={local_tag}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            r.to
        )
        .into_bytes()
    };
    let mut rang = ringing(&call, &mut inbox, &invite(&branch, cseq, ""), ring, cancel).await;
    // A trunk that wants credentials gets them once, in a new INVITE transaction (RFC 3261 §22.2).
    if let (Ringing::Refused(challenge), Destination::Trunk(_)) = (&rang, to) {
        if let Some((header, value)) = matches!(challenge.code, 401 | 407)
            .then(|| super::trunk::answer(hodi, challenge, "INVITE", &target))
            .flatten()
        {
            call.send(ack(challenge, &branch, cseq)).await;
            branch = format!("z9hG4bK{:x}", call::rand_id());
            cseq = 2;
            let auth = format!("{header}: {value}\r\n");
            rang = ringing(&call, &mut inbox, &invite(&branch, cseq, &auth), ring, cancel).await;
        }
    }
    let resp = match rang {
        Ringing::Answered(resp) => resp,
        Ringing::Refused(refusal) => {
            let code = refusal.code;
            call.send(ack(&refusal, &branch, cseq)).await;
            {
                let mut o = call.outcome();
                o.sip_status = code;
                o.ending = Some(Ending::NotAnswered);
            }
            info!(code, "the call was not answered");
            sip.unregister(&call_id);
            return Placed::NotAnswered(Box::new(call), cause_of(code));
        }
        Ringing::NoAnswer => {
            let request = format!(
                "CANCEL {target} SIP/2.0\r\nVia: {via};branch={branch}\r\nMax-Forwards: 70\r\n\
                 From: {ours};tag={local_tag}\r\nTo: {theirs}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n"
            );
            call.send(request.into_bytes()).await;
            // The INVITE then ends with 487, which is ACKed; should the far end answer just as we
            // gave up, its 200 is ACKed and the call hung up at once.
            let settle = tokio::time::Instant::now() + Duration::from_secs(4);
            while let Ok(Some(m)) = tokio::time::timeout_at(settle, inbox.recv()).await {
                let Incoming::Response(r) = m else { continue };
                if !r.cseq.ends_with("INVITE") || r.code < 200 {
                    continue;
                }
                call.send(ack(&r, &branch, cseq)).await;
                if r.code < 300 {
                    let _ = dialog.remote_tag.set(message::tag(&r.to).map(str::to_string));
                    call.invite.from = r.to.clone();
                    call.invite.contact = r.contact.clone();
                    call::bye(&call, &mut inbox).await;
                }
                break;
            }
            {
                // Given up on by us (another leg won, the caller left) or unanswered in time.
                let mut o = call.outcome();
                o.sip_status = 487;
                o.ending = Some(if cancel.is_cancelled() { Ending::Cancelled } else { Ending::NotAnswered });
            }
            sip.unregister(&call_id);
            return Placed::NotAnswered(Box::new(call), VoiceCallHangupCause::NoAnswer);
        }
    };
    let ack = ack(&resp, &branch, cseq);
    call.send(ack.clone()).await;
    {
        let mut o = call.outcome();
        o.answered_at = Some(crate::store::now_ms());
        o.sip_status = 200;
    }
    // From now on the far end's requests must carry its tag (see the dialog module).
    let _ = dialog.remote_tag.set(message::tag(&resp.to).map(str::to_string));
    call.invite.from = resp.to.clone();
    call.invite.contact = resp.contact.clone();
    let media = sdp::read(&resp.body, hodi.config.voice.rtp_ip);
    let our_sdp = match &media {
        Ok(m) => {
            stream.end().update(*m);
            info!(codec = ?m.codec, "call answered");
            sdp::describe(local_media, m.codec, m.events, sdp_session, 2)
        }
        // Answered with nothing usable: it is answered (and ACKed), but there is nothing to send.
        Err(why) => {
            warn!(%why, "the answer's SDP is unusable; the call has no audio");
            String::new()
        }
    };
    Placed::Answered(Box::new(Leg { call, inbox, stream, our_sdp, contact: ours, ack }))
}

async fn run(hodi: Arc<Hodi>, sip: Arc<Sip>, p: CallRequest) {
    let _active = crate::metrics::call_started("outbound");
    let ring = Duration::from_secs(hodi.config.voice.ring_timeout_secs.clamp(1, 600));
    let owned = |call: &Call| {
        let mut o = call.outcome();
        o.org_id = Some(p.org_id.clone());
        o.app_id = Some(p.app_id.clone());
    };
    let leg = match place_leg(
        &hodi,
        &sip,
        LegRequest {
            number: &p.number,
            to: Destination::Trunk(&p.customer),
            session_id: &p.session_id,
            codec: None,
            ring,
        },
        &CancellationToken::new(),
    )
    .await
    {
        Placed::Answered(leg) => leg,
        Placed::NotAnswered(call, cause) => {
            owned(&call);
            not_answered(&call, &p, cause).await;
            return call::store_record(&call).await;
        }
        Placed::Failed(cause) => return fail(&hodi, &p, cause).await,
    };
    let Leg { call, mut inbox, stream, our_sdp, contact, ack } = *leg;
    owned(&call);
    // The message's actions, then what the app adds on hearing of the answer.
    let mut actions = if our_sdp.is_empty() { Vec::new() } else { p.actions.clone() };
    if !our_sdp.is_empty() {
        match call.ask(&p.org_id, &p.app_id, call::part(call.direction, VoiceCallStatus::Answered, None, None)).await {
            Ok(more) => actions.extend(more.unwrap_or_default()),
            Err(e) => info!(error = %e, "the app was not told of the answer; running the message's actions"),
        }
    }
    call::talk(
        &call,
        &mut inbox,
        &p.org_id,
        &p.app_id,
        stream,
        actions,
        Resend::AckOn200(ack),
        &our_sdp,
        [("Contact", contact)],
    )
    .await;
    sip.unregister(&call.invite.call_id);
    call::store_record(&call).await;
}

enum Ringing {
    Answered(Response),
    Refused(Response),
    NoAnswer,
}

/// The INVITE client transaction: retransmitted until any response (Timer A), then waiting for
/// the final one until the ring timeout.
async fn ringing(
    call: &Call,
    inbox: &mut mpsc::Receiver<Incoming>,
    invite: &[u8],
    ring: Duration,
    cancel: &CancellationToken,
) -> Ringing {
    let deadline = tokio::time::Instant::now() + ring;
    let mut wait = T1;
    let mut heard = false;
    call.send(invite.to_vec()).await;
    let mut next = tokio::time::Instant::now() + wait;
    loop {
        let until = if heard { deadline } else { next.min(deadline) };
        let received = tokio::select! {
            r = tokio::time::timeout_at(until, inbox.recv()) => r,
            // Given up on (another leg answered, the caller left): CANCEL like a ring timeout.
            _ = cancel.cancelled() => return Ringing::NoAnswer,
        };
        match received {
            Ok(Some(Incoming::Response(r))) if r.cseq.ends_with("INVITE") => match r.code {
                100..=199 => heard = true,
                200..=299 => return Ringing::Answered(r),
                _ => return Ringing::Refused(r),
            },
            Ok(Some(_)) => {}
            Ok(None) => return Ringing::NoAnswer,
            Err(_) if tokio::time::Instant::now() >= deadline => return Ringing::NoAnswer,
            // Over TCP the transport delivers or fails: nothing is sent again (Timer A is UDP's).
            Err(_) if call.transport.reliable() => next = deadline,
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

async fn not_answered(call: &Call, p: &CallRequest, cause: VoiceCallHangupCause) {
    call.outcome().ending = Some(Ending::NotAnswered);
    let part = call::part(call.direction, VoiceCallStatus::NotAnswered, None, Some(cause));
    if let Err(e) = call.ask(&p.org_id, &p.app_id, part).await {
        warn!(error = %e, "telling the app the call was not answered");
    }
}

/// A call that could not even be tried: the app hears it failed (no record: nothing was sent).
async fn fail(hodi: &Arc<Hodi>, p: &CallRequest, cause: VoiceCallHangupCause) {
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
