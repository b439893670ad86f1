//! Twilio's Programmable Messaging: SMS and WhatsApp through one account.
//!
//! Out: `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth
//! (account SID and auth token) and the form fields `To`, `From`, `StatusCallback` (Hodi's
//! webhook) and the content: `Body` (a text or a link), `MediaUrl` (media), or `ContentSid` with
//! `ContentVariables` (a template: the app's template id is the Content SID, its parameters the
//! variables); WhatsApp numbers are written `whatsapp:+…`. A 201 with the message's `sid`
//! is SENT; a 4xx with Twilio's error `code` and `message` fails it (429 slows down; 401/403 and
//! 5xx are tried again).
//!
//! In (parsed here, served by [`crate::webhooks`]): status callbacks (`MessageSid`,
//! `MessageStatus`, `ErrorCode`) and incoming messages (`MessageSid`, `From`, `To`, `Body`), each a
//! form POST signed with `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed with the auth token,
//! over the URL Twilio called followed by every parameter's name and value, sorted by name.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;

use super::events::{ChannelEvent, Received};
use super::worker::{Refusal, Transport};
use super::{body, http};
use crate::config::providers::Twilio as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::outbound_message_body::Entry;
use crate::wire::{MessageDeliveryStatus, MessagingChannel};

/// MessagingChannel::Whatsapp, the one channel written with a prefix.
const WHATSAPP: &str = "whatsapp:";

/// One Twilio account.
pub struct Twilio {
    name: String,
    settings: Settings,
    auth_token: String,
    /// The status callback URL (with the webhook token), when a public URL is set.
    status_callback: Option<String>,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio").field("name", &self.name).field("account_sid", &self.settings.account_sid).finish()
    }
}

impl Twilio {
    pub fn new(name: &str, settings: &Settings, webhook_token: Option<&str>) -> Result<Twilio, String> {
        if !settings.account_sid.starts_with("AC") {
            return Err("account_sid is required (AC…)".into());
        }
        let auth_token = settings.auth_token()?;
        if auth_token.is_empty() {
            return Err("auth_token or auth_token_env is required".into());
        }
        let status_callback = match (settings.public_url.trim_end_matches('/'), webhook_token) {
            ("", _) | (_, None) => None,
            (base, Some(token)) => Some(format!("{base}/hooks/{name}/{token}/status")),
        };
        Ok(Twilio {
            name: name.to_string(),
            settings: settings.clone(),
            auth_token: auth_token.expose().to_string(),
            status_callback,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
}

#[derive(Debug, Deserialize)]
struct Failure {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

/// What the Messages API's answer means for the message.
fn outcome(status: u16, body: &[u8]) -> Result<Vec<AcceptedPart>, Refusal> {
    let why = || match serde_json::from_slice::<Failure>(body) {
        Ok(f) => format!("Twilio answered {status}: {} (error {})", f.message, f.code),
        Err(_) => format!("Twilio answered {status}: {}", String::from_utf8_lossy(body)),
    };
    match status {
        200 | 201 => {
            let created: Created = serde_json::from_slice(body)
                .map_err(|e| Refusal::Transient(format!("Twilio's answer does not parse ({e})")))?;
            Ok(vec![AcceptedPart { provider_message_id: created.sid, part: 1, parts: 1 }])
        }
        429 => Err(Refusal::Throttled(why())),
        401 | 403 => Err(Refusal::Transient(why())),
        400..=499 => Err(Refusal::Permanent(why())),
        _ => Err(Refusal::Transient(why())),
    }
}

/// How Twilio writes a number on `channel`.
fn address(channel: i32, number: &str) -> String {
    if channel == MessagingChannel::Whatsapp as i32 && !number.starts_with(WHATSAPP) {
        format!("{WHATSAPP}{number}")
    } else {
        number.to_string()
    }
}

impl Transport for Twilio {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let content = content(body::outbound(message)?)?;
        let sid = &self.settings.account_sid;
        let url = format!("{}/2010-04-01/Accounts/{sid}/Messages.json", self.settings.base_url.trim_end_matches('/'));
        let to = address(message.channel, &message.customer_number);
        let from = address(message.channel, &message.channel_number);
        let mut fields = vec![("To", to.as_str()), ("From", from.as_str())];
        fields.extend(content.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(callback) = &self.status_callback {
            fields.push(("StatusCallback", callback));
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{}", self.auth_token));
        let authorization = format!("Basic {basic}");
        let headers = [("Authorization", authorization.as_str()), ("Accept", "application/json")];
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let answer = http::post(&url, &headers, "application/x-www-form-urlencoded", http::form(&fields), timeout)
            .await
            .map_err(|e| Refusal::Transient(e.0))?;
        outcome(answer.status, &answer.body)
    }
}

/// The content fields of a message for a body.
fn content(entry: Entry) -> Result<Vec<(&'static str, String)>, Refusal> {
    Ok(match entry {
        Entry::Text(text) | Entry::Url(text) => vec![("Body", text)],
        Entry::Media(media) => vec![("MediaUrl", media.url)],
        Entry::Template(t) => {
            let variables: serde_json::Map<String, serde_json::Value> =
                body::template_params(&t.params).into_iter().map(|(k, v)| (k, v.into())).collect();
            vec![("ContentSid", t.id), ("ContentVariables", serde_json::Value::Object(variables).to_string())]
        }
        other => return Err(Refusal::Permanent(format!("Twilio cannot carry {}", body::kind(&other)))),
    })
}

/// Whether `signature` (the `X-Twilio-Signature` header) signs a form POST of `body` to `url`
/// with `auth_token`. Compared in constant time.
pub fn signed(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    params.sort();
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()) else { return false };
    mac.update(url.as_bytes());
    for (k, v) in &params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.verify_slice(&expected).is_ok()
}

/// A status callback: a receipt, or `None` for a state on the way (queued, sending, sent …).
pub fn status_callback(provider: &str, body: &[u8]) -> Result<Option<ChannelEvent>, String> {
    let f = http::form_fields(body);
    let sid = http::required(&f, "MessageSid")?;
    let state = http::required(&f, "MessageStatus")?;
    let status = match state {
        "delivered" => MessageDeliveryStatus::Delivered,
        "read" => MessageDeliveryStatus::Read,
        "undelivered" | "failed" => MessageDeliveryStatus::Failed,
        "accepted" | "scheduled" | "queued" | "sending" | "sent" | "receiving" | "received" => return Ok(None),
        other => return Err(format!("unknown MessageStatus {other:?}")),
    };
    let reason = match f.get("ErrorCode").filter(|c| !c.is_empty()) {
        Some(code) => format!("{state} (error {code})"),
        None => state.to_string(),
    };
    Ok(Some(ChannelEvent::Receipt {
        provider: provider.to_string(),
        provider_message_id: sid.to_string(),
        status,
        reason,
    }))
}

/// An incoming SMS or WhatsApp message (WhatsApp's numbers come as `whatsapp:+…`).
pub fn incoming_message(provider: &str, body: &[u8]) -> Result<ChannelEvent, String> {
    let f = http::form_fields(body);
    let from = http::required(&f, "From")?;
    let to = http::required(&f, "To")?;
    let (channel, from, to) = match (from.strip_prefix(WHATSAPP), to.strip_prefix(WHATSAPP)) {
        (Some(from), Some(to)) => (MessagingChannel::Whatsapp, from, to),
        (None, None) => (MessagingChannel::Sms, from, to),
        _ => return Err("From and To are on different channels".into()),
    };
    Ok(ChannelEvent::Received(Received {
        provider: provider.to_string(),
        channel,
        channel_number: to.to_string(),
        customer_number: from.to_string(),
        text: f.get("Body").cloned().unwrap_or_default(),
        provider_message_id: Some(http::required(&f, "MessageSid")?.to_string()),
        email: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_body_media_or_content_fields() {
        use crate::wire::{MediaMessageBody, TemplateMessageBody};
        assert_eq!(
            content(Entry::Url("https://x.example".into())),
            Ok(vec![("Body", "https://x.example".to_string())])
        );
        let media = Entry::Media(MediaMessageBody { url: "https://x.example/a.jpg".into(), media: 1 });
        assert_eq!(content(media), Ok(vec![("MediaUrl", "https://x.example/a.jpg".to_string())]));
        let params = [("1", "Ada"), ("2", "KES 5")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let template = content(Entry::Template(TemplateMessageBody { id: "HX123".into(), params })).expect("fields");
        assert_eq!(template[0], ("ContentSid", "HX123".to_string()));
        assert_eq!(template[1], ("ContentVariables", r#"{"1":"Ada","2":"KES 5"}"#.to_string()));
        assert!(matches!(content(Entry::Location(Default::default())), Err(Refusal::Permanent(_))));
    }

    /// The example in Twilio's security documentation: this URL, these parameters, this token.
    #[test]
    fn signatures_match_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        let token = "12345";
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("key");
        mac.update(b"https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212");
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(signature, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "the documented signature");
        assert!(signed(token, url, body, &signature));
        assert!(!signed("54321", url, body, &signature), "another token");
        assert!(!signed(token, "https://mycompany.com/other.php", body, &signature), "another URL");
        assert!(!signed(token, url, b"CallSid=CA1234567890ABCDE&Digits=9999", &signature), "other parameters");
        assert!(!signed(token, url, body, "not base64!"));
    }

    #[test]
    fn answers_and_callbacks_mean_what_twilio_documents() {
        let created = br#"{"sid":"SM123","status":"queued","to":"+254700000001"}"#;
        assert_eq!(
            outcome(201, created),
            Ok(vec![AcceptedPart { provider_message_id: "SM123".into(), part: 1, parts: 1 }])
        );
        let invalid = br#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#;
        assert!(matches!(outcome(400, invalid), Err(Refusal::Permanent(why)) if why.contains("21211")));
        assert!(matches!(outcome(429, b"{}"), Err(Refusal::Throttled(_))));
        assert!(matches!(outcome(503, b""), Err(Refusal::Transient(_))));
        let receipt = status_callback("tw", b"MessageSid=SM123&MessageStatus=undelivered&ErrorCode=30003")
            .expect("parses")
            .expect("a receipt");
        assert!(
            matches!(receipt, ChannelEvent::Receipt { status: MessageDeliveryStatus::Failed, ref reason, .. } if reason.contains("30003"))
        );
        assert_eq!(status_callback("tw", b"MessageSid=SM123&MessageStatus=sent"), Ok(None));
        let ChannelEvent::Received(r) = incoming_message(
            "tw",
            b"MessageSid=SM9&From=whatsapp%3A%2B254700000009&To=whatsapp%3A%2B14155238886&Body=Hi",
        )
        .expect("parses") else {
            panic!("a message")
        };
        assert_eq!(
            (r.channel, r.customer_number.as_str(), r.channel_number.as_str()),
            (MessagingChannel::Whatsapp, "+254700000009", "+14155238886")
        );
        assert!(incoming_message("tw", b"MessageSid=SM9&From=whatsapp%3A%2B1&To=%2B2&Body=x").is_err());
        assert_eq!(address(MessagingChannel::Whatsapp as i32, "+1"), "whatsapp:+1");
        assert_eq!(address(MessagingChannel::Sms as i32, "+1"), "+1");
    }
}
