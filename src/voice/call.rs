//! One call, from INVITE to hang-up: for inbound calls the INVITE server transaction (100, 180,
//! final response retransmitted until ACK); for both directions the dialog (BYE either way,
//! re-INVITE for hold, CANCEL) and the app's dialplan run as actions on the call's RTP stream
//! ([`talk`]; outbound calls reach it from [`super::outbound`]).
//!
//! The app is asked exactly as for a simulated call — through [`crate::messaging::inbound`] with
//! a voice part — so sessions, `voiceCall` notifications and the app's replies behave the same.
//! Owns this call's state; does not own the SIP socket or other calls (see [`super::listener`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use super::media::audio::{self, Voice};
use super::media::stream::{Played, Stream};
use super::sdp;
use super::sip::message::{self, Request, Response};
use super::sip::transport::Transport;
use crate::context::Hodi;
use crate::wire::{
    get_digits_call_action, inbound_message_body, voice_call_action, CustomerEventDirection, InboundMessageBody,
    MessagingChannel, MessagingChannelNumber, ReceiveMessageSimulatorCommand, TextToSpeechVoice, VoiceCallAction,
    VoiceCallHangupCause, VoiceCallInputMessageBody, VoiceCallStatus,
};

/// RFC 3261 timers for UDP.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// 64·T1: how long a final response is retransmitted without an ACK.
const TIMER_H: Duration = Duration::from_secs(32);

/// What the SIP listener hands a call: in-dialog requests and responses to our requests.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    Response(Response),
}

/// Everything a call needs that does not change while it runs.
pub struct Call {
    pub hodi: Arc<Hodi>,
    /// The SIP socket and the other live calls (queues, recordings, legs we place).
    pub sip: Arc<super::listener::Sip>,
    /// Where our requests and responses for this call go.
    pub transport: Transport,
    /// Inbound: the INVITE. Outbound: the dialog as the far end's request would show it (From
    /// the customer with their tag, To our number, their Contact), so both directions share the
    /// in-dialog code.
    pub invite: Request,
    pub local_tag: String,
    pub session_id: String,
    /// Our SIP address, for Contact.
    pub local: SocketAddr,
    pub started_at: i64,
    pub outcome: std::sync::Mutex<Outcome>,
    pub direction: CustomerEventDirection,
    /// The org's voice number the call is on, as its app sees it: the number dialled, except for
    /// a registered phone dialling elsewhere (then its user's number; see [`admit`]).
    pub number: String,
    /// The far end is a phone registered here, as `user@domain`: the customer its app sees, by
    /// an app-identity number rather than a cellular one.
    pub sip_user: Option<String>,
}

/// What the call record says, filled in as the call goes.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub(super) org_id: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) answered_at: Option<i64>,
    /// None until the call says how it ended: it was refused before anyone answered.
    pub(super) ending: Option<Ending>,
    pub(super) sip_status: u16,
    pub(super) stats: super::media::stream::Stats,
    /// App round trips so far (see [`MAX_ROUNDS`]).
    rounds: u32,
}

/// How a call ended, for the app and the call's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    CustomerHungUp,
    WeHungUp,
    Cancelled,
    Rejected,
    Failed,
    /// A call we placed that nobody answered (busy, refused, no answer).
    NotAnswered,
}

impl Ending {
    pub(super) fn name(self) -> &'static str {
        match self {
            Ending::CustomerHungUp => "customer_hung_up",
            Ending::WeHungUp => "we_hung_up",
            Ending::Cancelled => "cancelled",
            Ending::Rejected => "rejected",
            Ending::Failed => "failed",
            Ending::NotAnswered => "not_answered",
        }
    }

    fn cause(self) -> VoiceCallHangupCause {
        match self {
            Ending::CustomerHungUp | Ending::WeHungUp => VoiceCallHangupCause::NormalClearing,
            Ending::Cancelled => VoiceCallHangupCause::OriginatorCancel,
            Ending::Rejected => VoiceCallHangupCause::CallRejected,
            Ending::Failed => VoiceCallHangupCause::NormalTemporaryFailure,
            Ending::NotAnswered => VoiceCallHangupCause::NoAnswer,
        }
    }
}

impl Call {
    pub(super) fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) async fn send(&self, bytes: Vec<u8>) {
        self.transport.send(bytes).await;
    }

    async fn respond(&self, req: &Request, code: u16, reason: &str) {
        self.send(req.response(code, reason, Some(&self.local_tag), &[], None)).await;
    }

    fn channel(&self) -> MessagingChannelNumber {
        MessagingChannelNumber { channel: MessagingChannel::Voice as i32, number: self.number.clone() }
    }

    pub(super) fn caller(&self) -> String {
        match &self.sip_user {
            Some(user) => user.clone(),
            None => message::user(&self.invite.from).unwrap_or("anonymous").to_string(),
        }
    }

    /// Tells the app where the call is; returns its next actions.
    /// The voice part as a customer's message on this call's session.
    fn voice_input(&self, part: VoiceCallInputMessageBody) -> ReceiveMessageSimulatorCommand {
        ReceiveMessageSimulatorCommand {
            customer_number: self.caller(),
            channel_number: Some(self.channel()),
            parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Voice(part)) }],
            session_id: Some(self.session_id.clone()),
            cost: None,
            duration: None,
        }
    }

    /// Tells the app something about the call on a task of its own, without waiting for (or
    /// running) its answer: a call whose task keeps media time must not carry the round trip.
    pub(super) fn tell(&self, org_id: &str, app_id: &str, part: VoiceCallInputMessageBody) {
        let (hodi, org_id, app_id) = (self.hodi.clone(), org_id.to_string(), app_id.to_string());
        let cmd = self.voice_input(part);
        let as_app = self.sip_user.is_some();
        tokio::spawn(
            async move {
                let told = match as_app {
                    true => {
                        let app = crate::wire::CustomerNumberProvider::App;
                        crate::messaging::inbound::receive_as(&hodi, &org_id, &app_id, cmd, app).await
                    }
                    false => crate::messaging::inbound::receive(&hodi, &org_id, &app_id, cmd).await,
                };
                if let Err(e) = told {
                    debug!(error = %e, "telling the app about a call");
                }
            }
            .in_current_span(),
        );
    }

    pub(super) async fn ask(
        &self,
        org_id: &str,
        app_id: &str,
        part: VoiceCallInputMessageBody,
    ) -> anyhow::Result<Option<Vec<VoiceCallAction>>> {
        let cmd = self.voice_input(part);
        let reply = match self.sip_user {
            Some(_) => {
                let app = crate::wire::CustomerNumberProvider::App;
                crate::messaging::inbound::receive_as(&self.hodi, org_id, app_id, cmd, app).await?
            }
            None => crate::messaging::inbound::receive(&self.hodi, org_id, app_id, cmd).await?,
        };
        if !reply.status {
            anyhow::bail!("{}", reply.description);
        }
        Ok(reply.message.and_then(|m| m.body).and_then(|b| match b.entry {
            Some(crate::wire::outbound_message_body::Entry::Voice(plan)) => Some(plan.actions),
            _ => None,
        }))
    }
}

pub(super) fn part(
    direction: CustomerEventDirection,
    status: VoiceCallStatus,
    digits: Option<String>,
    cause: Option<VoiceCallHangupCause>,
) -> VoiceCallInputMessageBody {
    VoiceCallInputMessageBody {
        direction: direction as i32,
        status: status as i32,
        dtmf_digits: digits,
        hangup_cause: cause.map_or(0, |c| c as i32),
        started_at: Some(crate::convert::timestamp(crate::store::now_ms())),
        ..Default::default()
    }
}

/// Runs an inbound call to its end, then stores its record (or, refused before any org owned
/// it, counts it: see [`super::listener::Refusals`]).
pub async fn inbound(call: Call, inbox: mpsc::Receiver<Incoming>, admitted: Admitted) {
    let _active = crate::metrics::call_started("inbound");
    serve(&call, inbox, admitted).await;
    store_record(&call).await;
}

/// A new INVITE that an org owns and whose offer we can answer: what [`admit`] found.
pub struct Admitted {
    pub offer: sdp::Media,
    pub org_id: String,
    pub app_id: String,
    /// The voice number whose app takes the call.
    pub number: String,
}

/// Looks at a new INVITE before any call state exists: its SDP must be answerable and its number
/// an org's. A refusal here is answered statelessly (RFC 3261 §8.2.7; the caller's retransmitted
/// INVITE is refused again), so a flood of junk INVITEs holds no call slot and writes nothing.
/// A phone registered here (`phone`) calling a number that is not one of its org's goes to the
/// app of its user's own number.
pub async fn admit(
    hodi: &Hodi,
    invite: &Request,
    phone: Option<&crate::store::sip_users::SipUser>,
) -> Result<Admitted, (u16, &'static str, Vec<(&'static str, String)>)> {
    let offer = sdp::read(&invite.body, hodi.config.voice.rtp_ip).map_err(|why| {
        debug!(%why, "refusing an INVITE whose SDP we cannot answer");
        (488, "Not Acceptable Here", vec![("Warning", format!("399 hodi \"{why}\""))])
    })?;
    let mut number = invite.user.clone();
    let mut owner = hodi.store.voice_number_owner(&number).await;
    if let Some(phone) = phone {
        let dialled_ours = matches!(&owner, Ok(Some((org, _))) if *org == phone.org_id);
        if !dialled_ours {
            let Some(own) = phone.number.clone() else {
                debug!(user = %phone.username, "a registered phone with no --number dialled outside its org's numbers");
                return Err((404, "Not Found", Vec::new()));
            };
            owner = hodi.store.voice_number_owner(&own).await;
            number = own;
        }
    }
    match owner {
        Ok(Some((org_id, app_id))) => Ok(Admitted { offer, org_id, app_id, number }),
        Ok(None) => {
            debug!(number = %invite.user, "INVITE to a number no org has provisioned for voice");
            Err((404, "Not Found", Vec::new()))
        }
        Err(e) => {
            warn!(error = %e, "looking up a voice number");
            Err((500, "Server Internal Error", Vec::new()))
        }
    }
}

/// The call detail record, once the call is over.
pub(super) async fn store_record(call: &Call) {
    let o = call.outcome().clone();
    let ended_at = crate::store::now_ms();
    let (direction, caller, callee) = match call.direction {
        CustomerEventDirection::Outbound => ("outbound", call.invite.user.clone(), call.caller()),
        _ => ("inbound", call.caller(), call.invite.user.clone()),
    };
    let record = crate::store::calls::CallRecord {
        id: crate::store::new_id("cdr_"),
        session_id: call.session_id.clone(),
        org_id: o.org_id,
        app_id: o.app_id,
        sip_call_id: call.invite.call_id.clone(),
        direction: direction.into(),
        caller,
        callee,
        started_at: call.started_at,
        answered_at: o.answered_at,
        ended_at,
        duration_ms: o.answered_at.map_or(0, |a| ended_at - a),
        ending: o.ending.map_or("refused", Ending::name).into(),
        sip_status: i64::from(o.sip_status),
        packets_sent: o.stats.sent as i64,
        packets_received: o.stats.received as i64,
        packets_lost: o.stats.lost as i64,
        jitter_ms: o.stats.jitter_ms,
        rtt_ms: o.stats.rtt_ms,
        mos: o.stats.has_audio().then(|| crate::voice::media::quality::mos(o.stats.conditions())),
    };
    if let Err(e) = call.hodi.store.insert_call_record(&record).await {
        warn!(error = %e, ?record, "storing the call record");
    }
}

async fn serve(call: &Call, mut inbox: mpsc::Receiver<Incoming>, admitted: Admitted) {
    let invite = &call.invite;
    call.respond(invite, 100, "Trying").await;
    let Admitted { offer, org_id, app_id, .. } = admitted;
    let (org_id, app_id) = (org_id.as_str(), app_id.as_str());
    {
        let mut o = call.outcome();
        o.org_id = Some(org_id.to_string());
        o.app_id = Some(app_id.to_string());
    }
    call.respond(invite, 180, "Ringing").await;

    // Ask the app while the phone rings; the caller may give up meanwhile.
    let first = {
        let asking = call.ask(org_id, app_id, part(call.direction, VoiceCallStatus::Answered, None, None));
        tokio::pin!(asking);
        loop {
            tokio::select! {
                r = &mut asking => break r,
                m = inbox.recv() => match m {
                    Some(Incoming::Request(r)) if r.method == "CANCEL" => {
                        call.send(r.response(200, "OK", None, &[], None)).await;
                        refuse(call, &mut inbox, 487, "Request Terminated", &[]).await;
                        return hang_up_notice(call, org_id, app_id, Ending::Cancelled, None).await;
                    }
                    Some(Incoming::Request(r)) if r.method == "INVITE" => call.respond(&r, 180, "Ringing").await,
                    Some(_) => {}
                    None => return,
                },
            }
        }
    };
    let actions = match first {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => {
            info!(error = %e, "no app took the call");
            refuse(call, &mut inbox, 480, "Temporarily Unavailable", &[]).await;
            return;
        }
    };
    if matches!(actions.first().and_then(|a| a.entry.as_ref()), Some(voice_call_action::Entry::Reject(_))) {
        refuse(call, &mut inbox, 603, "Decline", &[]).await;
        return hang_up_notice(call, org_id, app_id, Ending::Rejected, None).await;
    }

    let opened = match Stream::open(&(&call.hodi.config.voice).into(), offer).await {
        Ok(s) => s.local().map(|local| (s, local)),
        Err(e) => Err(e),
    };
    let (stream, local_media) = match opened {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "opening RTP");
            return refuse(call, &mut inbox, 503, "Service Unavailable", &[]).await;
        }
    };
    // One SDP session for the call: version 1 in the 200, version 2 in answers to re-INVITEs.
    let sdp_session = rand_id();
    let answer = sdp::describe(local_media, offer.codec, offer.events, sdp_session, 1);
    let contact = [("Contact", format!("<sip:{}@{}>", invite.user, call.local))];
    let ok = invite.response(200, "OK", Some(&call.local_tag), &contact, Some(("application/sdp", &answer)));
    info!(caller = %call.caller(), number = %invite.user, codec = ?offer.codec, "call answered");
    let ours = sdp::describe(local_media, offer.codec, offer.events, sdp_session, 2);
    talk(call, &mut inbox, org_id, app_id, stream, actions, Resend::OkUntilAck(ok), &ours, contact).await;
}

/// What an answered call sends again when the far end repeats itself.
pub(super) enum Resend {
    /// Inbound: our 200 OK, retransmitted until the ACK and for a retransmitted INVITE.
    OkUntilAck(Vec<u8>),
    /// Outbound: our ACK, for a retransmitted 200 OK.
    AckOn200(Vec<u8>),
}

/// An answered call: the actions run on the media while in-dialog requests are answered, until
/// either side hangs up; then the record's numbers and the app's hang-up notification.
#[allow(clippy::too_many_arguments)]
pub(super) async fn talk(
    call: &Call,
    inbox: &mut mpsc::Receiver<Incoming>,
    org_id: &str,
    app_id: &str,
    mut stream: Stream,
    actions: Vec<VoiceCallAction>,
    resend: Resend,
    our_sdp: &str,
    contact: [(&str, String); 1],
) {
    let started = tokio::time::Instant::now();
    {
        let mut o = call.outcome();
        o.answered_at = Some(crate::store::now_ms());
        o.sip_status = 200;
    }
    let control = stream.end();
    let mut unacked = false;
    let ending = {
        let run = run_actions(call, org_id, app_id, &mut stream, actions);
        tokio::pin!(run);
        let mut acked = matches!(resend, Resend::AckOn200(_));
        // The 200 goes out before any action runs: an app that answers with no actions still gets
        // a properly answered call (200, the caller's ACK, then our BYE), never a BYE in its place.
        if let Resend::OkUntilAck(ok) = &resend {
            call.send(ok.clone()).await;
        }
        let mut wait = T1;
        let mut next_resend = next_retransmission(call, started, &mut wait);
        let mut remote_bye = None;
        // The actions ended (we hang up) before the caller ACKed our 200: the BYE waits for the ACK.
        let mut finished = None;
        loop {
            tokio::select! {
                ending = &mut run, if finished.is_none() => finished = Some(ending),
                _ = tokio::time::sleep_until(next_resend), if !acked => {
                    if started.elapsed() >= TIMER_H {
                        // RFC 3261 §13.3.1.4: the dialog is confirmed and then ended with a BYE.
                        warn!("no ACK for our 200 OK within Timer H; hanging up");
                        control.stop();
                        if finished.is_none() {
                            let _ = (&mut run).await;
                        }
                        unacked = true;
                        break Ending::Failed;
                    }
                    if let Resend::OkUntilAck(ok) = &resend {
                        call.send(ok.clone()).await;
                    }
                    next_resend = next_retransmission(call, started, &mut wait);
                }
                m = inbox.recv() => match m {
                    Some(Incoming::Request(r)) => match r.method.as_str() {
                        "ACK" => acked = true,
                        "BYE" => {
                            call.respond(&r, 200, "OK").await;
                            remote_bye = Some(Ending::CustomerHungUp);
                            control.stop();
                        }
                        "INVITE" if message::tag(&r.to).is_none() => {
                            if let Resend::OkUntilAck(ok) = &resend {
                                call.send(ok.clone()).await; // a retransmitted INVITE
                            }
                        }
                        "INVITE" => {
                            // re-INVITE: hold/resume or a new media address; our side stays as it is.
                            match sdp::read(&r.body, call.hodi.config.voice.rtp_ip) {
                                Ok(media) => {
                                    info!(on_hold = media.on_hold, "re-INVITE");
                                    control.update(media);
                                    call.send(r.response(200, "OK", None, &contact, Some(("application/sdp", our_sdp)))).await;
                                }
                                Err(why) => {
                                    let warning = [("Warning", format!("399 hodi \"{why}\""))];
                                    call.send(r.response(488, "Not Acceptable Here", None, &warning, None)).await
                                }
                            }
                        }
                        "OPTIONS" => call.respond(&r, 200, "OK").await,
                        "CANCEL" => call.respond(&r, 200, "OK").await, // too late: answered
                        _ => call.respond(&r, 405, "Method Not Allowed").await,
                    },
                    Some(Incoming::Response(r)) => {
                        if let (Resend::AckOn200(ack), true) = (&resend, r.cseq.ends_with("INVITE") && r.code == 200) {
                            call.send(ack.clone()).await;
                        }
                    }
                    None => break Ending::Failed,
                },
            }
            if let Some(e) = remote_bye {
                // Let the action runner see the stop, then end.
                if finished.is_none() {
                    let _ = (&mut run).await;
                }
                break e;
            }
            if let (Some(e), true) = (finished, acked) {
                break e;
            }
        }
    };
    if ending == Ending::WeHungUp || unacked {
        bye(call, inbox).await;
    }
    stream.close();
    let stats = stream.stats();
    call.outcome().stats = stats;
    let recording = match stream.take_session_recording() {
        Some(samples) => match call.sip.recordings.save(&call.session_id, samples).await {
            Ok(url) => Some(url),
            Err(e) => {
                warn!(error = %e, "saving the call's recording");
                None
            }
        },
        _ => None,
    };
    info!(
        ?ending,
        seconds = started.elapsed().as_secs_f64(),
        packets_sent = stats.sent,
        packets_received = stats.received,
        lost = stats.lost,
        jitter_ms = stats.jitter_ms,
        "call ended"
    );
    hang_up_notice(call, org_id, app_id, ending, recording).await;
}

/// The app's actions, in order, until they run out (we hang up) or the caller hangs up.
async fn run_actions(
    call: &Call,
    org_id: &str,
    app_id: &str,
    stream: &mut Stream,
    first: Vec<VoiceCallAction>,
) -> Ending {
    let mut actions: std::collections::VecDeque<VoiceCallAction> = first.into();
    while let Some(action) = actions.pop_front() {
        let Some(entry) = action.entry else { continue };
        match entry {
            voice_call_action::Entry::Say(say) => {
                if say_prompt(stream, &say, false).await == Played::Stopped {
                    return Ending::CustomerHungUp;
                }
            }
            voice_call_action::Entry::Play(play) => {
                if play_url(stream, &play.url, false).await == Played::Stopped {
                    return Ending::CustomerHungUp;
                }
            }
            voice_call_action::Entry::GetDigits(g) => {
                let prompt = match &g.prompt {
                    Some(get_digits_call_action::Prompt::Say(s)) => say_prompt(stream, s, true).await,
                    Some(get_digits_call_action::Prompt::Play(p)) => play_url(stream, &p.url, true).await,
                    None => Played::Completed,
                };
                if prompt == Played::Stopped {
                    return Ending::CustomerHungUp;
                }
                let timeout = seconds(g.timeout.as_ref(), 5, 60);
                let limit = g.num_digits.map_or(32, |n| usize::try_from(n).unwrap_or(32).clamp(1, 32));
                let finish = g.finish_on_key.as_deref().and_then(|k| k.chars().next());
                let mut digits = String::new();
                while digits.len() < limit {
                    match stream.next_digit(timeout).await {
                        Some(k) if Some(k) == finish => break,
                        Some(k) => digits.push(k),
                        None => break,
                    }
                }
                let next = part(call.direction, VoiceCallStatus::Active, Some(digits), None);
                if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::Replace).await {
                    return e;
                }
            }
            voice_call_action::Entry::Redirect(_) => {
                let next = part(call.direction, VoiceCallStatus::Active, None, None);
                if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::Replace).await {
                    return e;
                }
            }
            voice_call_action::Entry::GetRecording(g) => {
                let url = match record_message(call, stream, &g).await {
                    Some(url) => url,
                    None if stream.stopped() => return Ending::CustomerHungUp,
                    None => String::new(),
                };
                let mut next = part(call.direction, VoiceCallStatus::Active, None, None);
                next.recording_url = (!url.is_empty()).then_some(url);
                if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::Replace).await {
                    return e;
                }
            }
            voice_call_action::Entry::RecordSession(_) => stream.start_session_recording(SESSION_RECORDING_MAX),
            voice_call_action::Entry::Enqueue(e) => {
                let Some(input) = super::queue::enqueue(call, org_id, stream, &e).await else {
                    return Ending::CustomerHungUp;
                };
                let mut next = part(call.direction, VoiceCallStatus::Dequeued, None, None);
                next.queue_data = Some(input);
                if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::ReplaceIfAny).await {
                    return e;
                }
            }
            voice_call_action::Entry::Dequeue(d) => {
                // Nobody waiting: the next action runs at once.
                if let Some(input) = super::queue::dequeue(call, org_id, stream, &d).await {
                    if stream.stopped() {
                        return Ending::CustomerHungUp;
                    }
                    let mut next = part(call.direction, VoiceCallStatus::Bridged, None, None);
                    next.queue_data = Some(input);
                    if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::ReplaceIfAny).await {
                        return e;
                    }
                }
            }
            voice_call_action::Entry::Dial(d) => {
                let dialled = super::dial::dial(call, org_id, app_id, stream, &d).await;
                if dialled.caller_gone {
                    return Ending::CustomerHungUp;
                }
                let mut next = part(call.direction, VoiceCallStatus::DialCompleted, None, None);
                next.dial_data = Some(crate::wire::VoiceCallDialInput {
                    destination_number: dialled.destination.unwrap_or_default(),
                    started_at: dialled.started_at.map(crate::convert::timestamp),
                    duration: Some(prost_types::Duration {
                        seconds: dialled.duration.as_secs() as i64,
                        nanos: dialled.duration.subsec_nanos() as i32,
                    }),
                });
                if let Err(e) = follow(call, org_id, app_id, next, &mut actions, Then::ReplaceIfAny).await {
                    return e;
                }
            }
            voice_call_action::Entry::Reject(_) => return Ending::WeHungUp,
        }
    }
    Ending::WeHungUp
}

/// What the app's answer does to the actions that were left.
#[derive(Clone, Copy)]
enum Then {
    /// Input gathered for the app (digits, a recording, a redirect): its answer is what comes next.
    Replace,
    /// An outcome reported (a dial, a queue): an answer with actions replaces the rest, none keeps it.
    ReplaceIfAny,
}

/// App round trips one call may make: an app that answers every round with more actions (a
/// redirect loop) must not keep a call busy forever.
const MAX_ROUNDS: u32 = 1000;

/// Tells the app, and applies its answer to the actions left; a failed ask ends the call, and so
/// does the [`MAX_ROUNDS`]th.
async fn follow(
    call: &Call,
    org_id: &str,
    app_id: &str,
    next: VoiceCallInputMessageBody,
    actions: &mut std::collections::VecDeque<VoiceCallAction>,
    then: Then,
) -> Result<(), Ending> {
    let rounds = {
        let mut o = call.outcome();
        o.rounds += 1;
        o.rounds
    };
    if rounds > MAX_ROUNDS {
        warn!("the app kept the call going for {MAX_ROUNDS} rounds; hanging up");
        return Err(Ending::WeHungUp);
    }
    match call.ask(org_id, app_id, next).await {
        Ok(more) => {
            let more = more.unwrap_or_default();
            if matches!(then, Then::Replace) || !more.is_empty() {
                *actions = more.into();
            }
            Ok(())
        }
        Err(e) => {
            warn!(error = %e, "the app did not answer; ending the call");
            Err(Ending::Failed)
        }
    }
}

/// The longest whole-call recording kept.
const SESSION_RECORDING_MAX: Duration = Duration::from_secs(4 * 3600);

fn seconds(d: Option<&prost_types::Duration>, default: u64, max: u64) -> Duration {
    Duration::from_secs(d.map_or(default, |d| u64::try_from(d.seconds).unwrap_or(default)).clamp(1, max))
}

/// getRecording: the prompt, a beep, then the customer's audio until the finish key, the maximum
/// length, or `timeout` of silence; saved as a WAV. Its URL, or None when the customer hung up.
async fn record_message(call: &Call, stream: &mut Stream, g: &crate::wire::GetRecordingCallAction) -> Option<String> {
    use crate::wire::get_recording_call_action::Prompt;
    let played = match &g.prompt {
        Some(Prompt::Say(s)) => say_prompt(stream, s, false).await,
        Some(Prompt::Play(p)) => play_url(stream, &p.url, false).await,
        None => Played::Completed,
    };
    if played == Played::Stopped || (g.play_beep && stream.play(&audio::beep(300), false).await == Played::Stopped) {
        return None;
    }
    let max = seconds(g.max_length.as_ref(), 60, 3600);
    let silence = seconds(g.timeout.as_ref(), 5, 60);
    let finish = g.finish_on_key.as_deref().and_then(|k| k.chars().next());
    stream.start_recording(max);
    // Bounded by `max`: the loop ends at the latest when the recording is full.
    loop {
        match stream.next_digit(Duration::from_millis(100)).await {
            Some(k) if Some(k) == finish => break,
            _ if stream.stopped() => break,
            _ => {}
        }
        let length = stream.recording_length();
        if length >= max || (length >= silence && stream.recording_silence() >= silence) {
            break;
        }
    }
    let mut samples = stream.take_recording();
    if g.trim_silence {
        trim_silence(&mut samples);
    }
    match call.sip.recordings.save(&call.session_id, samples).await {
        Ok(url) => Some(url),
        Err(e) => {
            warn!(error = %e, "saving a recording");
            Some(String::new())
        }
    }
}

/// Drops leading and trailing 20 ms frames quieter than speech.
fn trim_silence(samples: &mut Vec<i16>) {
    let frames: Vec<bool> = samples.chunks(audio::FRAME).map(audio::is_speech).collect();
    let first = frames.iter().position(|&l| l).unwrap_or(frames.len());
    let last = frames.iter().rposition(|&l| l).map_or(first, |i| i + 1);
    let end = (last * audio::FRAME).min(samples.len());
    samples.truncate(end);
    samples.drain(..(first * audio::FRAME).min(samples.len()));
}

async fn say_prompt(stream: &mut Stream, say: &crate::wire::SayCallAction, barge_in: bool) -> Played {
    let voice = if say.voice == TextToSpeechVoice::Male as i32 { Voice::Male } else { Voice::Female };
    let mut samples = if say.play_beep { audio::beep(200) } else { Vec::new() };
    match audio::speak(&say.text, voice).await {
        Ok(s) => samples.extend(s),
        Err(e) => warn!(error = %e, "text to speech failed; the prompt is silence"),
    }
    stream.play(&samples, barge_in).await
}

/// Plays a WAV from an http(s) URL, a `file://` URL or a path.
async fn play_url(stream: &mut Stream, url: &str, barge_in: bool) -> Played {
    match super::media::prompts::load(url).await {
        Ok(samples) => stream.play(&samples, barge_in).await,
        Err(e) => {
            warn!(%url, error = %e, "cannot play");
            Played::Completed
        }
    }
}

/// Refuses the INVITE with a final non-2xx response (recorded as the call's SIP status),
/// retransmitted until the ACK.
async fn refuse(call: &Call, inbox: &mut mpsc::Receiver<Incoming>, code: u16, reason: &str, extra: &[(&str, String)]) {
    call.outcome().sip_status = code;
    let response = call.invite.response(code, reason, Some(&call.local_tag), extra, None);
    retransmit(call, inbox, response, |m| match m {
        Incoming::Request(r) if r.method == "ACK" => Heard::Done,
        Incoming::Request(r) if r.method == "INVITE" => Heard::ResendNow, // a retransmitted INVITE
        _ => Heard::Ignore,
    })
    .await;
}

/// What a retransmitting sender makes of a message that arrives while it waits.
pub(super) enum Heard {
    Done,
    /// Done, after answering this request.
    Answer(Vec<u8>),
    ResendNow,
    Ignore,
}

/// When our unacknowledged 200 OK next goes again: T1, 2·T1 … T2 over UDP; over TCP only the
/// Timer H deadline, since a stream transport is not retransmitted on.
fn next_retransmission(call: &Call, started: tokio::time::Instant, wait: &mut Duration) -> tokio::time::Instant {
    let at = if call.transport.reliable() { started + TIMER_H } else { tokio::time::Instant::now() + *wait };
    *wait = (*wait * 2).min(T2);
    at.min(started + TIMER_H)
}

/// Sends `bytes` and again at T1, 2·T1 … T2 until `judge` says done, up to 64·T1 (RFC 3261's
/// timers G/H for final responses and E/F for our requests over UDP); over TCP once, waiting as
/// long.
pub(super) async fn retransmit(
    call: &Call,
    inbox: &mut mpsc::Receiver<Incoming>,
    bytes: Vec<u8>,
    judge: impl Fn(&Incoming) -> Heard,
) {
    let deadline = tokio::time::Instant::now() + TIMER_H;
    let mut wait = T1;
    while tokio::time::Instant::now() < deadline {
        call.send(bytes.clone()).await;
        let until =
            if call.transport.reliable() { deadline } else { (tokio::time::Instant::now() + wait).min(deadline) };
        loop {
            let Ok(m) = tokio::time::timeout_at(until, inbox.recv()).await else { break };
            let Some(m) = m else { return };
            match judge(&m) {
                Heard::Done => return,
                Heard::Answer(reply) => return call.send(reply).await,
                Heard::ResendNow => break,
                Heard::Ignore => {}
            }
        }
        wait = (wait * 2).min(T2);
    }
}

/// Ends the dialog from our side: BYE, retransmitted until answered (Timer F).
pub(super) async fn bye(call: &Call, inbox: &mut mpsc::Receiver<Incoming>) {
    let invite = &call.invite;
    let target = invite.contact.as_deref().map(message::uri).unwrap_or("sip:anonymous@invalid").to_string();
    let branch = format!("z9hG4bK{}", rand_id());
    // Above any request of ours before it in the dialog: the INVITE (1, or 2 after a trunk's
    // challenge) and a transfer's NOTIFYs (3 and 4, see dial::transfer).
    let cseq = 10;
    let request = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch}\r\nMax-Forwards: 70\r\n\
         From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
        call.transport.name(),
        call.local,
        invite.to,
        call.local_tag,
        invite.from,
        invite.call_id
    )
    .into_bytes();
    retransmit(call, inbox, request, |m| match m {
        Incoming::Response(r) if r.cseq.ends_with("BYE") && r.code >= 200 => Heard::Done,
        // Both sides hung up at once.
        Incoming::Request(r) if r.method == "BYE" => {
            Heard::Answer(r.response(200, "OK", Some(&call.local_tag), &[], None))
        }
        _ => Heard::Ignore,
    })
    .await;
}

/// The call is over: the app hears of it (and the session ends) like any hang-up.
pub(super) async fn hang_up_notice(call: &Call, org_id: &str, app_id: &str, ending: Ending, recording: Option<String>) {
    call.outcome().ending = Some(ending);
    let status = match ending {
        Ending::Cancelled | Ending::Rejected | Ending::NotAnswered => VoiceCallStatus::NotAnswered,
        _ => VoiceCallStatus::Completed,
    };
    let mut notice = part(call.direction, status, None, Some(ending.cause()));
    notice.recording_url = recording;
    if let Err(e) = call.ask(org_id, app_id, notice).await {
        warn!(error = %e, "recording the hang-up");
    }
}

pub use super::rand_id;
