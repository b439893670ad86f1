//! Which call a message with a known Call-ID really belongs to (RFC 3261 §12.2, §8.2.2.2).
//!
//! A Call-ID alone is no secret: it travels in clear and is guessable from logs and traces. A
//! request reaches a call only when its tags name the call's dialog (From tag = the far end's,
//! To tag = ours), or, before the far end has our tag, when it is the INVITE transaction itself
//! (same From tag and branch: a retransmission or its CANCEL). Everything else is refused.
//!
//! Owns the matching rule only; the table of calls is [`crate::voice::listener`]'s.

use std::sync::OnceLock;

use super::message::{tag, Request, Response};

/// What identifies one call's dialog besides its Call-ID.
#[derive(Debug)]
pub struct Dialog {
    /// Our tag: To of requests from the far end, From of responses to our requests.
    pub local_tag: String,
    /// The far end's tag (From of its requests): known from the INVITE for inbound calls, from
    /// the answer for calls we place (unset until then, so nothing in-dialog matches). `None`
    /// inside is a far end that sent no tag (RFC 2543 peers).
    pub remote_tag: OnceLock<Option<String>>,
    /// The INVITE's branch, for its retransmissions and CANCEL (inbound calls).
    pub invite_branch: Option<String>,
}

/// Where a request with this dialog's Call-ID goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the call.
    Call,
    /// Answered here with this status, the call untouched.
    Refuse(u16, &'static str),
    /// Dropped without an answer (an ACK never gets one).
    Drop,
}

impl Dialog {
    pub fn inbound(local_tag: String, invite: &Request) -> Dialog {
        let remote = OnceLock::new();
        let _ = remote.set(tag(&invite.from).map(str::to_string));
        Dialog { local_tag, remote_tag: remote, invite_branch: invite.branch().map(str::to_string) }
    }

    pub fn outbound(local_tag: String) -> Dialog {
        Dialog { local_tag, remote_tag: OnceLock::new(), invite_branch: None }
    }

    fn remote_is(&self, from: &str) -> bool {
        self.remote_tag.get().is_some_and(|t| t.as_deref() == tag(from))
    }

    pub fn route(&self, req: &Request) -> Route {
        let refuse = |code, reason| if req.method == "ACK" { Route::Drop } else { Route::Refuse(code, reason) };
        match tag(&req.to) {
            Some(to) if to == self.local_tag && self.remote_is(&req.from) => Route::Call,
            Some(_) => refuse(481, "Call/Transaction Does Not Exist"),
            // No To tag: only the INVITE transaction itself (retransmitted, or cancelled).
            None if self.remote_is(&req.from)
                && self.invite_branch.is_some()
                && req.branch() == self.invite_branch.as_deref()
                && matches!(req.method.as_str(), "INVITE" | "CANCEL") =>
            {
                Route::Call
            }
            // Another INVITE reusing a live Call-ID: a loop or a forgery (§8.2.2.2).
            None if req.method == "INVITE" => Route::Refuse(482, "Loop Detected"),
            None => refuse(481, "Call/Transaction Does Not Exist"),
        }
    }

    /// A response to one of our requests carries our tag in From.
    pub fn owns_response(&self, resp: &Response) -> bool {
        tag(&resp.from) == Some(self.local_tag.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, from_tag: Option<&str>, to_tag: Option<&str>, branch: &str) -> Request {
        let with = |uri: &str, t: Option<&str>| t.map_or(uri.to_string(), |t| format!("{uri};tag={t}"));
        Request {
            method: method.into(),
            user: "+1".into(),
            vias: vec![format!("SIP/2.0/UDP 127.0.0.1:5061;branch={branch}")],
            from: with("<sip:a@h>", from_tag),
            to: with("<sip:b@h>", to_tag),
            call_id: "c".into(),
            cseq: format!("1 {method}"),
            contact: None,
            record_routes: Vec::new(),
            content_type: None,
            body: Vec::new(),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_dialogs_own_tags_reach_the_call() {
        let d = Dialog::inbound("ours".into(), &request("INVITE", Some("theirs"), None, "z9hG4bK1"));
        assert_eq!(d.route(&request("BYE", Some("theirs"), Some("ours"), "z9hG4bK2")), Route::Call);
        assert_eq!(d.route(&request("ACK", Some("theirs"), Some("ours"), "z9hG4bK1")), Route::Call);
        assert_eq!(d.route(&request("INVITE", Some("theirs"), None, "z9hG4bK1")), Route::Call, "retransmission");
        assert_eq!(d.route(&request("CANCEL", Some("theirs"), None, "z9hG4bK1")), Route::Call);
        assert_eq!(
            d.route(&request("BYE", Some("evil"), Some("ours"), "z9hG4bK3")).clone(),
            Route::Refuse(481, "Call/Transaction Does Not Exist")
        );
        assert_eq!(
            d.route(&request("BYE", Some("theirs"), Some("guess"), "z9hG4bK3")),
            Route::Refuse(481, "Call/Transaction Does Not Exist")
        );
        assert_eq!(
            d.route(&request("INVITE", Some("evil"), Some("ours"), "z9hG4bK3")),
            Route::Refuse(481, "Call/Transaction Does Not Exist")
        );
        assert_eq!(d.route(&request("ACK", Some("evil"), Some("ours"), "z9hG4bK3")), Route::Drop);
        assert_eq!(d.route(&request("INVITE", Some("other"), None, "z9hG4bK9")), Route::Refuse(482, "Loop Detected"));
        assert_eq!(d.route(&request("INVITE", Some("theirs"), None, "z9hG4bK9")), Route::Refuse(482, "Loop Detected"));
        assert_eq!(
            d.route(&request("CANCEL", Some("theirs"), None, "z9hG4bK9")),
            Route::Refuse(481, "Call/Transaction Does Not Exist")
        );
    }

    #[test]
    fn a_call_we_place_matches_nothing_in_dialog_until_answered() {
        let d = Dialog::outbound("ours".into());
        assert_eq!(
            d.route(&request("BYE", Some("theirs"), Some("ours"), "z9hG4bK2")),
            Route::Refuse(481, "Call/Transaction Does Not Exist")
        );
        d.remote_tag.set(Some("theirs".into())).expect("first answer");
        assert_eq!(d.route(&request("BYE", Some("theirs"), Some("ours"), "z9hG4bK2")), Route::Call);
        assert_eq!(d.route(&request("INVITE", Some("theirs"), None, "z9hG4bK2")), Route::Refuse(482, "Loop Detected"));
    }
}
