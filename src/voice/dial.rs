//! The dial action: calls the given numbers through the trunk (in turn, or all at once), plays
//! ringback to the caller meanwhile, bridges the caller with the first to answer (RTP relayed both
//! ways, optionally recorded), and reports how it went.
//!
//! Owns the dialled legs; the caller's leg stays with [`super::call`].

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::call::{self, Call, Ending, Incoming};
use super::media::audio;
use super::media::stream::{Played, Stream};
use super::outbound::{self, Leg, Placed};
use crate::wire::{DialCallAction, VoiceCallStatus};
use tokio::sync::mpsc;

/// How a dial went, for the app's `dialData`.
#[derive(Debug, Clone, Default)]
pub(super) struct Dialled {
    pub destination: Option<String>,
    pub started_at: Option<i64>,
    pub duration: Duration,
    /// The caller hung up (while ringing or while bridged).
    pub caller_gone: bool,
}

/// The longest a bridge may last when the action sets no maximum.
const MAX_BRIDGE: Duration = Duration::from_secs(4 * 3600);

/// Ringback for the caller while the far end rings (the North American tone: 440 + 480 Hz, 2 s on,
/// 4 s off).
fn ringback() -> Vec<i16> {
    let on = audio::RATE as usize * 2;
    let mut tone: Vec<i16> = (0..on)
        .map(|i| {
            let t = i as f32 / audio::RATE as f32;
            (((2.0 * std::f32::consts::PI * 440.0 * t).sin() + (2.0 * std::f32::consts::PI * 480.0 * t).sin()) * 3000.0)
                as i16
        })
        .collect();
    tone.resize(on * 3, 0);
    tone
}

pub(super) async fn dial(call: &Call, org_id: &str, app_id: &str, a: &mut Stream, d: &DialCallAction) -> Dialled {
    let mut result = Dialled::default();
    let numbers: Vec<&str> = d.customer_numbers.iter().map(|n| n.number.as_str()).filter(|n| !n.is_empty()).collect();
    // A conference is dialled alone: the call joins the room until it leaves.
    if let [number] = numbers[..] {
        if let Some(room) = super::conference::room_name(number) {
            if d.record {
                a.start_session_recording(MAX_BRIDGE);
            }
            let max = max_duration(d).map(Duration::from_secs);
            // Joining is told to the app at once (BRIDGED, dialData naming the room and when),
            // on a task of its own: the call is in the room, keeping its 20 ms pace, so the
            // answer is not waited for and its actions are not run. Leaving is the dial's
            // DIAL_COMPLETED below.
            let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
            let tell = async {
                let Ok(joined_at) = joined_rx.await else { return };
                let mut notice = super::call::part(call.direction, VoiceCallStatus::Bridged, None, None);
                notice.dial_data = Some(crate::wire::VoiceCallDialInput {
                    destination_number: format!("conference:{room}"),
                    started_at: Some(crate::convert::timestamp(joined_at)),
                    duration: None,
                });
                call.tell(org_id, app_id, notice);
            };
            let sitting = super::conference::stay(&call.sip.conferences, org_id, room, a, max, joined_tx);
            let (stay, ()) = tokio::join!(sitting, tell);
            result.destination = stay.joined_at.map(|_| format!("conference:{room}"));
            result.started_at = stay.joined_at;
            result.duration = stay.duration;
            result.caller_gone = stay.caller_gone;
            return result;
        }
    }
    let targets = targets(call, org_id, &numbers).await;
    if targets.is_empty() {
        return result;
    }
    let from = d.caller_id.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| call.invite.user.clone());
    let ring = Duration::from_secs(call.hodi.config.voice.ring_timeout_secs.clamp(1, 600));
    let codec = Some(a.codec());
    let cancel = CancellationToken::new();
    let tone = ringback();
    let leg = |t: usize| outbound::LegRequest {
        number: &from,
        to: targets[t].destination(),
        session_id: &call.session_id,
        codec,
        ring,
    };

    // Place the legs: one at a time, or all at once; the first answer wins.
    let placing = async {
        let mut answered: Option<Box<Leg>> = None;
        if d.sequential {
            for (i, target) in targets.iter().enumerate() {
                if cancel.is_cancelled() {
                    break;
                }
                match outbound::place_leg(&call.hodi, &call.sip, leg(i), &cancel).await {
                    Placed::Answered(leg) => {
                        answered = Some(leg);
                        break;
                    }
                    Placed::NotAnswered(leg, cause) => {
                        info!(number = %target.label(), ?cause, "dialled number did not answer");
                        finish_leg(call, &leg, None, org_id, app_id).await;
                    }
                    // A trunk that cannot be reached stops the dial; one phone that cannot, not.
                    Placed::Failed(_) if matches!(target, Target::Trunk(_)) => break,
                    Placed::Failed(_) => {}
                }
            }
        } else {
            let mut legs: FuturesUnordered<_> =
                (0..targets.len()).map(|t| outbound::place_leg(&call.hodi, &call.sip, leg(t), &cancel)).collect();
            while let Some(placed) = legs.next().await {
                match placed {
                    Placed::Answered(leg) if answered.is_none() => {
                        answered = Some(leg);
                        cancel.cancel(); // the others stop ringing
                    }
                    Placed::Answered(mut late) => {
                        // Answered as the winner was chosen: hang it up at once.
                        late.call.outcome().ending = Some(Ending::WeHungUp);
                        finish_leg(call, &late.call, Some(&mut late.inbox), org_id, app_id).await;
                    }
                    Placed::NotAnswered(leg, _) => finish_leg(call, &leg, None, org_id, app_id).await,
                    Placed::Failed(_) => {}
                }
            }
        }
        answered
    };
    tokio::pin!(placing);
    let answered = loop {
        tokio::select! {
            leg = &mut placing => break leg,
            played = a.play(&tone, false) => if played == Played::Stopped {
                // The caller gave up: stop the ringing legs and wait for them to settle (without
                // playing again: a stopped stream returns at once).
                cancel.cancel();
                result.caller_gone = true;
                break (&mut placing).await;
            },
        }
    };
    let Some(leg) = answered else { return result };
    let Leg { call: mut b_call, mut inbox, stream: mut b, .. } = *leg;
    if result.caller_gone {
        b_call.outcome().ending = Some(Ending::WeHungUp);
        finish_leg(call, &b_call, Some(&mut inbox), org_id, app_id).await;
        return result;
    }

    let destination = b_call.caller();
    info!(%destination, "bridging");
    result.destination = Some(destination);
    result.started_at = Some(crate::store::now_ms());
    let started = tokio::time::Instant::now();
    if d.record {
        a.start_session_recording(MAX_BRIDGE);
    }
    Stream::bridge(a, &b, d.record);
    let limit = max_duration(d).map_or(MAX_BRIDGE, |s| Duration::from_secs(s.min(MAX_BRIDGE.as_secs())));
    let deadline = started + limit;
    // Until one side hangs up or the maximum duration: the caller's hang-up is the caller's
    // dialog's business (it stops `a`); the dialled side's BYE arrives in this leg's inbox.
    let b_hung_up = loop {
        tokio::select! {
            _ = a.wait_stopped() => break false,
            _ = tokio::time::sleep_until(deadline) => break false,
            m = inbox.recv() => match m {
                Some(Incoming::Request(r)) if r.method == "BYE" => {
                    b_call.send(r.response(200, "OK", None, &[], None)).await;
                    break true;
                }
                Some(Incoming::Request(r)) if r.method == "ACK" => {}
                // The dialled phone transfers the caller elsewhere (blind, RFC 3515 / 5589).
                Some(Incoming::Request(r)) if r.method == "REFER" => {
                    if let Some(c) = transfer(call, org_id, app_id, a, (&b_call, &mut inbox), &r, &from).await {
                        let Leg { call: c_call, inbox: c_inbox, stream: c, .. } = *c;
                        result.destination = Some(c_call.caller());
                        Stream::unbridge(a, &b);
                        b.close();
                        {
                            let mut o = b_call.outcome();
                            o.stats = b.stats();
                            o.ending = Some(Ending::WeHungUp);
                        }
                        finish_leg(call, &b_call, Some(&mut inbox), org_id, app_id).await;
                        (b_call, inbox, b) = (c_call, c_inbox, c);
                        Stream::bridge(a, &b, d.record);
                    }
                }
                Some(Incoming::Request(r)) => b_call.send(r.response(200, "OK", None, &[], None)).await,
                Some(Incoming::Response(_)) => {}
                None => break true,
            },
        }
    };
    Stream::unbridge(a, &b);
    result.duration = started.elapsed();
    result.caller_gone = a.stopped();
    b.close();
    {
        let mut o = b_call.outcome();
        o.stats = b.stats();
        o.ending = Some(if b_hung_up { Ending::CustomerHungUp } else { Ending::WeHungUp });
    }
    let hang_up = (!b_hung_up).then_some(&mut inbox);
    finish_leg(call, &b_call, hang_up, org_id, app_id).await;
    result
}

/// The dialled phone's REFER: accepted (202), its target called for the caller while the caller
/// and the phone stay bridged, and the phone told how it went (NOTIFY with a sipfrag, RFC 3515).
/// The answered leg, when the target answered; the bridge then moves to it and the phone is hung
/// up. A REFER without a usable Refer-To gets 400; a target that does not answer leaves the
/// bridge as it was.
async fn transfer(
    call: &Call,
    org_id: &str,
    app_id: &str,
    a: &Stream,
    (b_call, inbox): (&Call, &mut mpsc::Receiver<Incoming>),
    refer: &crate::voice::sip::message::Request,
    from: &str,
) -> Option<Box<Leg>> {
    use crate::voice::sip::message;
    let ring = Duration::from_secs(call.hodi.config.voice.ring_timeout_secs.clamp(1, 600));
    let uri = refer.refer_to.as_deref().map(message::uri).unwrap_or_default().to_string();
    let Some(user) = message::user(&format!("<{uri}>")).map(str::to_string) else {
        b_call.send(refer.response(400, "Bad Refer-To", None, &[], None)).await;
        return None;
    };
    b_call.send(refer.response(202, "Accepted", None, &[], None)).await;
    notify(b_call, inbox, 3, "SIP/2.0 100 Trying", false).await;
    // A `sip:` URI in one of the org's SIP domains names a registered user; anything else is a
    // number for the trunk.
    let name = if crate::voice::registrar::resolve(&call.hodi, &call.sip.registrar, org_id, &uri).await.is_some() {
        uri.clone()
    } else {
        user.clone()
    };
    info!(target = %name, "transfer requested by the dialled phone");
    let targets = targets(call, org_id, &[name.as_str()]).await;
    let cancel = CancellationToken::new();
    let mut answered = None;
    let mut last_code = 404;
    for t in &targets {
        let leg = outbound::LegRequest {
            number: from,
            to: t.destination(),
            session_id: &call.session_id,
            codec: Some(a.codec()),
            ring,
        };
        let placing = outbound::place_leg(&call.hodi, &call.sip, leg, &cancel);
        tokio::pin!(placing);
        let placed = tokio::select! {
            placed = &mut placing => placed,
            _ = a.wait_stopped() => {
                cancel.cancel();
                (&mut placing).await
            }
        };
        match placed {
            Placed::Answered(leg) => {
                answered = Some(leg);
                break;
            }
            Placed::NotAnswered(leg, _) => {
                last_code = leg.outcome().sip_status;
                finish_leg(call, &leg, None, org_id, app_id).await;
            }
            Placed::Failed(_) => last_code = 503,
        }
        if a.stopped() {
            break;
        }
    }
    match answered {
        Some(mut leg) if a.stopped() => {
            leg.call.outcome().ending = Some(Ending::WeHungUp);
            notify(b_call, inbox, 4, "SIP/2.0 487 Request Terminated", true).await;
            finish_leg(call, &leg.call, Some(&mut leg.inbox), org_id, app_id).await;
            None
        }
        Some(leg) => {
            notify(b_call, inbox, 4, "SIP/2.0 200 OK", true).await;
            Some(leg)
        }
        None => {
            let code = if last_code == 0 { 480 } else { last_code };
            notify(b_call, inbox, 4, &format!("SIP/2.0 {code} Transfer Failed"), true).await;
            None
        }
    }
}

/// A NOTIFY for the REFER's implicit subscription, retransmitted until answered.
async fn notify(leg: &Call, inbox: &mut mpsc::Receiver<Incoming>, cseq: u32, sipfrag: &str, done: bool) {
    let invite = &leg.invite;
    let target = invite.contact.as_deref().map(crate::voice::sip::message::uri).unwrap_or("sip:anonymous@invalid");
    let state = if done { "terminated;reason=noresource" } else { "active;expires=60" };
    let body = format!("{sipfrag}\r\n");
    let request = format!(
        "NOTIFY {target} SIP/2.0\r\nVia: SIP/2.0/{} {};branch=z9hG4bK{:x}\r\nMax-Forwards: 70\r\n\
         From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\nEvent: refer\r\n\
         Subscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\nContent-Length: {}\r\n\r\n{body}",
        leg.transport.name(),
        leg.local,
        call::rand_id(),
        invite.to,
        leg.local_tag,
        invite.from,
        invite.call_id,
        body.len()
    )
    .into_bytes();
    call::retransmit(leg, inbox, request, |m| match m {
        Incoming::Response(r) if r.cseq.ends_with("NOTIFY") && r.code >= 200 => call::Heard::Done,
        _ => call::Heard::Ignore,
    })
    .await;
}

/// The dial's `maxDuration` in seconds, when it sets one. The Elarian JS SDK always sends the
/// field, 0 when the app left it out: 0 (or less) means no maximum, not "hang up at once".
fn max_duration(d: &DialCallAction) -> Option<u64> {
    d.max_duration.and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0)
}

/// What one dialled number stands for: a customer through the trunk, or one device of a SIP user
/// registered here (a user with several rings each).
enum Target {
    Trunk(String),
    Device { user: String, domain: String, binding: crate::voice::registrar::bindings::Binding },
}

impl Target {
    fn destination(&self) -> outbound::Destination<'_> {
        match self {
            Target::Trunk(number) => outbound::Destination::Trunk(number),
            Target::Device { user, domain, binding } => {
                outbound::Destination::Device { user, domain, contact: &binding.contact, transport: &binding.transport }
            }
        }
    }

    fn label(&self) -> &str {
        match self {
            Target::Trunk(n) => n,
            Target::Device { user, .. } => user,
        }
    }
}

/// The numbers of a dial as legs to place: the org's SIP users (by `sip:` URI, name or extension)
/// become their registered devices, anything else goes to the trunk when there is one.
async fn targets(call: &Call, org_id: &str, numbers: &[&str]) -> Vec<Target> {
    let mut out = Vec::new();
    let trunk = !call.hodi.config.voice.trunk.trim().is_empty();
    for number in numbers {
        match crate::voice::registrar::resolve(&call.hodi, &call.sip.registrar, org_id, number).await {
            Some((user, devices)) => {
                if devices.is_empty() {
                    info!(%number, "the SIP user has no device registered; not dialled");
                }
                out.extend(devices.into_iter().map(|binding| Target::Device {
                    user: user.username.clone(),
                    domain: user.domain.clone(),
                    binding,
                }));
            }
            None if trunk && !number.starts_with("sip") => out.push(Target::Trunk(number.to_string())),
            None => {
                warn!(%number, "dial: not a registered SIP user of the org and no voice.trunk to reach it; not dialled")
            }
        }
    }
    out
}

/// A dialled leg is over: hung up by us (when `inbox` is given), released, and recorded under
/// the caller's org and app.
async fn finish_leg(call: &Call, leg: &Call, inbox: Option<&mut mpsc::Receiver<Incoming>>, org_id: &str, app_id: &str) {
    {
        let mut o = leg.outcome();
        o.org_id = Some(org_id.to_string());
        o.app_id = Some(app_id.to_string());
    }
    if let Some(inbox) = inbox {
        call::bye(leg, inbox).await;
    }
    call.sip.unregister(&leg.invite.call_id);
    call::store_record(leg).await;
}
