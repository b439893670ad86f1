//! What a page and the gateway say over the signalling WebSocket, as JSON text frames.
//!
//! The page opens the socket, sends one `call` (its credentials, the number it calls, its SDP
//! offer) and then only `dtmf` or `hangup`; the gateway answers with the SDP answer and tells
//! the page how the call goes (`ringing`, `answered`, `ended`). Anything else, or a field out of
//! bounds, is an [`Invalid`] the page is told about before the socket closes.
//!
//! Owns the message shapes and their limits; does not own what a call does with them (see
//! [`super::session`]).

use serde::{Deserialize, Serialize};

/// A page's SDP offer beyond this is refused (browsers' audio-only offers are 2–6 KiB).
pub const MAX_SDP: usize = 16 * 1024;
/// A signalling frame beyond this closes the socket (the offer is the largest thing sent).
pub const MAX_FRAME: usize = MAX_SDP + 4 * 1024;
/// Digits in one `dtmf` message.
const MAX_DIGITS: usize = 32;

/// From the page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum FromPage {
    /// The call, with the credentials the app's server minted for the page (GenerateAuthToken).
    #[serde(rename_all = "camelCase")]
    Call {
        org_id: String,
        app_id: String,
        token: String,
        /// The org's voice number to call.
        to: String,
        /// Who the app sees calling (an `app` provider customer number); a fresh name if none.
        from: Option<String>,
        sdp: String,
    },
    /// Keys pressed, sent in-band by the gateway (RFC 4733) like a phone's.
    Dtmf {
        digits: String,
    },
    Hangup,
}

/// To the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToPage {
    Answer {
        sdp: String,
    },
    Ringing,
    Answered,
    /// The call is over; `reason` says why (a SIP reason or what the page did wrong).
    Ended {
        reason: String,
    },
}

/// Why a page's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl FromPage {
    /// Parses and checks one text frame.
    pub fn parse(text: &str) -> Result<FromPage, Invalid> {
        if text.len() > MAX_FRAME {
            return Err(Invalid(format!("a signalling message is limited to {MAX_FRAME} bytes")));
        }
        let message: FromPage =
            serde_json::from_str(text).map_err(|e| Invalid(format!("not a signalling message: {e}")))?;
        message.check()?;
        Ok(message)
    }

    fn check(&self) -> Result<(), Invalid> {
        match self {
            FromPage::Call { org_id, app_id, token, to, from, sdp } => {
                for (name, value) in [("orgId", org_id), ("appId", app_id), ("token", token)] {
                    if value.is_empty() || value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
                        return Err(Invalid(format!("{name} must be 1 to 128 printable characters")));
                    }
                }
                // Both go into SIP headers: nothing that could end a line or a URI.
                let dialable = |c: char| c.is_ascii_alphanumeric() || c == '+';
                if to.is_empty() || to.len() > 32 || !to.chars().all(dialable) {
                    return Err(Invalid("to must be a number: up to 32 digits, letters or +".into()));
                }
                let named = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
                if let Some(from) = from {
                    if from.is_empty() || from.len() > 64 || !from.chars().all(named) {
                        return Err(Invalid("from must be 1 to 64 letters, digits, or . _ - @ +".into()));
                    }
                }
                if sdp.len() > MAX_SDP {
                    return Err(Invalid(format!("the SDP offer is limited to {MAX_SDP} bytes")));
                }
            }
            FromPage::Dtmf { digits } => {
                let key = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
                if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.chars().all(key) {
                    return Err(Invalid(format!("dtmf digits are 1 to {MAX_DIGITS} of 0-9 * # A-D")));
                }
            }
            FromPage::Hangup => {}
        }
        Ok(())
    }
}

impl ToPage {
    pub fn text(&self) -> String {
        // Serializing these plain shapes cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"ended","reason":"internal error"}"#.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(to: &str, from: Option<&str>) -> String {
        serde_json::json!({"type": "call", "orgId": "o", "appId": "a", "token": "t", "to": to, "from": from, "sdp": "v=0"})
            .to_string()
    }

    #[test]
    fn a_call_parses_and_fields_that_could_break_sip_are_refused() {
        let ok = FromPage::parse(&call("+254711082000", Some("user-42"))).expect("valid");
        assert!(matches!(ok, FromPage::Call { ref to, .. } if to == "+254711082000"));
        assert!(FromPage::parse(&call("+254711082000", None)).is_ok());
        for to in ["", "+2547\r\nVia: x", "sip:a@b", &"1".repeat(33)] {
            assert!(FromPage::parse(&call(to, None)).is_err(), "to {to:?} accepted");
        }
        for from in ["", "a b", "a>b", "x\r\n", &"a".repeat(65)] {
            assert!(FromPage::parse(&call("+254711082000", Some(from))).is_err(), "from {from:?} accepted");
        }
    }

    #[test]
    fn other_messages_are_bounded() {
        assert_eq!(FromPage::parse(r#"{"type":"dtmf","digits":"12#"}"#), Ok(FromPage::Dtmf { digits: "12#".into() }));
        assert!(FromPage::parse(r#"{"type":"dtmf","digits":"x"}"#).is_err());
        assert!(FromPage::parse(r#"{"type":"hangup"}"#).is_ok());
        assert!(FromPage::parse(r#"{"type":"launch"}"#).is_err());
        assert!(FromPage::parse("not json").is_err());
        let big = call("+254711082000", None).replace("v=0", &"v".repeat(MAX_SDP + 1));
        assert!(FromPage::parse(&big).is_err());
        assert_eq!(ToPage::Ringing.text(), r#"{"type":"ringing"}"#);
    }
}
