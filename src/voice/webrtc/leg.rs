//! A browser call's SIP leg toward the voice executor, as a user agent would place it: the INVITE
//! carrying the gateway's plain-RTP side, the ACK, and BYE or CANCEL when the page hangs up.
//!
//! Sans-IO: every method takes what arrived and returns the bytes to send; the session task
//! ([`super::session`]) moves them through the listener's in-process transport.
//!
//! Owns this leg's dialog state (tags, CSeq, where the executor's RTP is); does not own the call
//! itself, which the executor runs exactly as a SIP phone's ([`crate::voice::call`]).

use std::net::SocketAddr;

use crate::voice::sdp::{self, Codec, Media};
use crate::voice::sip::message::{self, Request, Response};

/// The telephone-event payload type on the leg (what `sdp::offer` uses too).
pub const EVENTS_PT: u8 = 101;

/// What happened on the leg.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    Nothing,
    Ringing,
    /// Answered: the executor's RTP goes to and comes from `media.remote`.
    Answered(Media),
    /// The call did not go through (a final response that is not 2xx), or it ended (BYE).
    Ended(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Inviting,
    Up,
    /// We sent BYE or CANCEL.
    Leaving,
    Ended,
}

/// One leg.
#[derive(Debug)]
pub struct Leg {
    call_id: String,
    from_tag: String,
    invite_branch: String,
    to: String,
    /// The From user: the caller ID.
    from_user: String,
    /// Our side of the leg: where the gateway's plain RTP socket is (Via, Contact, SDP).
    local: SocketAddr,
    to_tag: Option<String>,
    next_cseq: u32,
    state: State,
}

fn random() -> String {
    format!("{:x}", crate::voice::rand_id())
}

impl Leg {
    /// A leg calling `to`, with media at `local` in `codec`; the INVITE to send.
    pub fn invite(to: &str, from_user: &str, local: SocketAddr, codec: Codec) -> (Leg, Vec<u8>) {
        let leg = Leg {
            call_id: format!("{}@webrtc.hodi", random()),
            from_tag: random(),
            invite_branch: format!("z9hG4bK{}", random()),
            to: to.to_string(),
            from_user: from_user.to_string(),
            local,
            to_tag: None,
            next_cseq: 2,
            state: State::Inviting,
        };
        let body = sdp::describe(local, codec, Some(EVENTS_PT), crate::voice::rand_id(), 1);
        let bytes = leg.request("INVITE", 1, &leg.invite_branch, None, Some(&body));
        (leg, bytes)
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Who the caller is comes with the transport ([`crate::voice::sip::transport::Vouched`]);
    /// From carries a cellular caller's number as caller ID.
    fn request(&self, method: &str, cseq: u32, branch: &str, to_tag: Option<&str>, body: Option<&str>) -> Vec<u8> {
        let Leg { call_id, from_tag, to, from_user, local, .. } = self;
        let to_header = match to_tag {
            Some(tag) => format!("<sip:{to}@hodi>;tag={tag}"),
            None => format!("<sip:{to}@hodi>"),
        };
        let mut out = format!(
            "{method} sip:{to}@hodi SIP/2.0\r\nVia: SIP/2.0/WS {local};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{from_user}@webrtc.hodi>;tag={from_tag}\r\nTo: {to_header}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:browser@{local}>\r\n"
        );
        match body {
            Some(b) => {
                out.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}", b.len()))
            }
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out.into_bytes()
    }

    /// A response from the executor; what it means, and an ACK to send for a final response to
    /// the INVITE.
    pub fn on_response(&mut self, r: &Response) -> (LegEvent, Option<Vec<u8>>) {
        let method = r.cseq.split_whitespace().nth(1).unwrap_or_default();
        if method != "INVITE" {
            // The 200 to our BYE (or CANCEL): the leg is over.
            if self.state == State::Leaving && r.code >= 200 && method == "BYE" {
                self.state = State::Ended;
            }
            return (LegEvent::Nothing, None);
        }
        match r.code {
            100 => (LegEvent::Nothing, None),
            101..=199 => (if self.state == State::Inviting { LegEvent::Ringing } else { LegEvent::Nothing }, None),
            200..=299 => {
                let tag = message::tag(&r.to).map(str::to_string);
                let ack = self.request("ACK", 1, &format!("z9hG4bK{}", random()), tag.as_deref(), None);
                if self.state != State::Inviting {
                    // A retransmitted 200, or one crossing our CANCEL: acknowledged all the same.
                    return (LegEvent::Nothing, Some(ack));
                }
                self.to_tag = tag;
                match sdp::read(&r.body, self.local.ip()) {
                    Ok(media) => {
                        self.state = State::Up;
                        (LegEvent::Answered(media), Some(ack))
                    }
                    Err(why) => {
                        // Cannot happen with our own executor; end rather than stream nowhere.
                        self.state = State::Up;
                        let bye = self.hang_up();
                        (LegEvent::Ended(format!("unusable answer: {why}")), bye.or(Some(ack)))
                    }
                }
            }
            code => {
                let ack = self.request("ACK", 1, &self.invite_branch.clone(), message::tag(&r.to), None);
                self.state = State::Ended;
                (LegEvent::Ended(format!("{code}")), Some(ack))
            }
        }
    }

    /// A request from the executor: a BYE ends the leg; the response to send.
    pub fn on_request(&mut self, r: &Request) -> (LegEvent, Vec<u8>) {
        match r.method.as_str() {
            "BYE" => {
                self.state = State::Ended;
                (LegEvent::Ended("hung up".into()), r.response(200, "OK", None, &[], None))
            }
            // Nothing else is expected on a browser's leg (no hold, no transfer).
            _ => (LegEvent::Nothing, r.response(501, "Not Implemented", None, &[], None)),
        }
    }

    /// The page hung up: CANCEL while the call is being set up, BYE once it is up; None when
    /// the leg is already ending.
    pub fn hang_up(&mut self) -> Option<Vec<u8>> {
        match self.state {
            State::Inviting => {
                self.state = State::Leaving;
                // CANCEL carries the INVITE's branch and CSeq number (RFC 3261 §9.1).
                Some(self.request("CANCEL", 1, &self.invite_branch.clone(), None, None))
            }
            State::Up => {
                self.state = State::Leaving;
                let cseq = self.next_cseq;
                self.next_cseq += 1;
                let tag = self.to_tag.clone();
                Some(self.request("BYE", cseq, &format!("z9hG4bK{}", random()), tag.as_deref(), None))
            }
            State::Leaving | State::Ended => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::sip::message::{parse, Message};

    fn request(bytes: &[u8]) -> Request {
        match parse(bytes).expect("parses") {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a response"),
        }
    }

    fn response(bytes: &[u8]) -> Response {
        match parse(bytes).expect("parses") {
            Message::Response(r) => r,
            Message::Request(_) => panic!("a request"),
        }
    }

    const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

    #[test]
    fn an_answered_leg_acks_and_a_hang_up_sends_bye_in_the_dialog() {
        let (mut leg, invite) = Leg::invite("+254711082000", "browser", SocketAddr::from(LOCAL), Codec::Pcmu);
        let invite = request(&invite);
        assert_eq!(invite.user, "+254711082000");
        let offer = sdp::read(&invite.body, SocketAddr::from(LOCAL).ip()).expect("our SDP");
        assert_eq!((offer.codec, offer.events, offer.remote), (Codec::Pcmu, Some(EVENTS_PT), SocketAddr::from(LOCAL)));

        let ringing = response(&invite.response(180, "Ringing", Some("exec"), &[], None));
        assert_eq!(leg.on_response(&ringing), (LegEvent::Ringing, None));
        let answer = sdp::describe(SocketAddr::from(([127, 0, 0, 1], 30000)), Codec::Pcmu, Some(101), 1, 1);
        let ok = response(&invite.response(200, "OK", Some("exec"), &[], Some(("application/sdp", &answer))));
        let (event, ack) = leg.on_response(&ok);
        assert!(matches!(event, LegEvent::Answered(m) if m.remote.port() == 30000));
        let ack = request(&ack.expect("ACK"));
        assert_eq!((ack.method.as_str(), message::tag(&ack.to)), ("ACK", Some("exec")));

        let bye = request(&leg.hang_up().expect("BYE"));
        assert_eq!((bye.method.as_str(), bye.cseq.as_str(), message::tag(&bye.to)), ("BYE", "2 BYE", Some("exec")));
        assert_eq!(leg.hang_up(), None, "one BYE");
        assert!(!leg.ended());
        let bye_ok = response(&bye.response(200, "OK", None, &[], None));
        leg.on_response(&bye_ok);
        assert!(leg.ended());
    }

    #[test]
    fn a_refused_leg_ends_and_a_leg_still_ringing_is_cancelled() {
        let (mut leg, invite) = Leg::invite("+254711082000", "browser", SocketAddr::from(LOCAL), Codec::Pcma);
        let invite = request(&invite);
        let cancel = request(&leg.hang_up().expect("CANCEL"));
        assert_eq!((cancel.method.as_str(), cancel.cseq.as_str()), ("CANCEL", "1 CANCEL"));
        assert_eq!(cancel.branch(), invite.branch(), "the INVITE's branch");
        let terminated = response(&invite.response(487, "Request Terminated", Some("exec"), &[], None));
        let (event, ack) = leg.on_response(&terminated);
        assert_eq!(event, LegEvent::Ended("487".into()));
        let ack = request(&ack.expect("ACK"));
        assert_eq!((ack.method.as_str(), ack.branch()), ("ACK", invite.branch()));
        assert!(leg.ended());

        let (mut leg, invite) = Leg::invite("+254711082000", "browser", SocketAddr::from(LOCAL), Codec::Pcmu);
        let invite = request(&invite);
        let (event, _) = leg.on_response(&response(&invite.response(404, "Not Found", Some("x"), &[], None)));
        assert_eq!(event, LegEvent::Ended("404".into()));
    }

    #[test]
    fn the_executor_hanging_up_ends_the_leg() {
        let (mut leg, invite) = Leg::invite("+254711082000", "browser", SocketAddr::from(LOCAL), Codec::Pcmu);
        let invite = request(&invite);
        let answer = sdp::describe(SocketAddr::from(([127, 0, 0, 1], 30000)), Codec::Pcmu, None, 1, 1);
        leg.on_response(&response(&invite.response(200, "OK", Some("e"), &[], Some(("application/sdp", &answer)))));
        let bye = format!(
            "BYE sip:browser@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bKx\r\n\
             From: <sip:+254711082000@hodi>;tag=e\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 10 BYE\r\nContent-Length: 0\r\n\r\n",
            invite.from,
            leg.call_id()
        );
        let (event, reply) = leg.on_request(&request(bye.as_bytes()));
        assert_eq!(event, LegEvent::Ended("hung up".into()));
        assert_eq!(response(&reply).code, 200);
        assert!(leg.ended() && leg.hang_up().is_none());
    }
}
