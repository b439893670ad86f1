//! Mailgun: email through its HTTP API.
//!
//! Out: `POST {base_url}/v3/{domain}/messages` with Basic auth (`api`, the API key) and the form
//! fields `from`, `to`, `cc`, `bcc`, `subject`, `text`, `html`; the answer's `id`
//! (`<…@domain>`) is the provider's id (kept without the angle brackets, as events carry it). A
//! 400 fails the message with Mailgun's `message`; 429 slows down; 401 and 5xx are tried again.
//!
//! In (parsed here, served by [`crate::webhooks`]): webhook events (JSON: `signature` {timestamp,
//! token, signature} and `event-data` {event, severity, message.headers.message-id}) and inbound
//! routes (a form, or multipart/form-data when the message has attachments, which are skipped:
//! `sender`, `recipient`, `subject`, `body-plain`, `body-html` — or the raw message as `body-mime`,
//! parsed with `mail-parser` — and `timestamp`, `token`, `signature`). Both are signed: hex
//! HMAC-SHA256 of timestamp followed by token, keyed with the webhook signing key.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;

use super::events::{ChannelEvent, Received, ReceivedEmail};
use super::http;
use super::worker::{Refusal, Transport};
use crate::config::providers::Mailgun as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::outbound_message_body::Entry;
use crate::wire::{MessageDeliveryStatus, MessagingChannel};

/// One Mailgun domain.
pub struct Mailgun {
    name: String,
    settings: Settings,
    api_key: String,
}

impl std::fmt::Debug for Mailgun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailgun").field("name", &self.name).field("domain", &self.settings.domain).finish()
    }
}

impl Mailgun {
    pub fn new(name: &str, settings: &Settings) -> Result<Mailgun, String> {
        if settings.domain.is_empty() {
            return Err("domain is required".into());
        }
        let api_key = settings.api_key()?;
        if api_key.is_empty() {
            return Err("api_key or api_key_env is required".into());
        }
        Ok(Mailgun { name: name.to_string(), settings: settings.clone(), api_key: api_key.expose().to_string() })
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

fn outcome(status: u16, body: &[u8]) -> Result<Vec<AcceptedPart>, Refusal> {
    let answer = serde_json::from_slice::<Answer>(body);
    let why = || match &answer {
        Ok(a) => format!("Mailgun answered {status}: {}", a.message),
        Err(_) => format!("Mailgun answered {status}: {}", String::from_utf8_lossy(body)),
    };
    match status {
        200 => match &answer {
            Ok(a) if !a.id.is_empty() => Ok(vec![AcceptedPart {
                provider_message_id: a.id.trim_matches(['<', '>']).to_string(),
                part: 1,
                parts: 1,
            }]),
            _ => Err(Refusal::Transient(format!("Mailgun's answer has no id: {}", String::from_utf8_lossy(body)))),
        },
        429 => Err(Refusal::Throttled(why())),
        401 | 403 => Err(Refusal::Transient(why())),
        400..=499 => Err(Refusal::Permanent(why())),
        _ => Err(Refusal::Transient(why())),
    }
}

impl Transport for Mailgun {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let entry = super::body::outbound(message)?;
        let mut fields: Vec<(&str, String)> =
            vec![("from", message.channel_number.clone()), ("to", message.customer_number.clone())];
        match entry {
            Entry::Email(email) => {
                fields.push(("subject", email.subject));
                fields.extend(email.cc_list.into_iter().map(|cc| ("cc", cc)));
                fields.extend(email.bcc_list.into_iter().map(|bcc| ("bcc", bcc)));
                if !email.body_plain.is_empty() {
                    fields.push(("text", email.body_plain));
                }
                if !email.body_html.is_empty() {
                    fields.push(("html", email.body_html));
                }
            }
            Entry::Text(text) | Entry::Url(text) => fields.push(("text", text)),
            other => {
                return Err(Refusal::Permanent(format!(
                    "email carries an email body or text, not {}",
                    super::body::kind(&other)
                )))
            }
        }
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let url = format!("{}/v3/{}/messages", self.settings.base_url.trim_end_matches('/'), self.settings.domain);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{}", self.api_key));
        let authorization = format!("Basic {basic}");
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let answer = http::post(
            &url,
            &[("Authorization", authorization.as_str())],
            "application/x-www-form-urlencoded",
            http::form(&form),
            timeout,
        )
        .await
        .map_err(|e| Refusal::Transient(e.0))?;
        outcome(answer.status, &answer.body)
    }
}

/// Whether `signature` is the hex HMAC-SHA256 of `timestamp` + `token` with `signing_key`.
pub fn signed(signing_key: &str, timestamp: &str, token: &str, signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(signing_key.as_bytes()) else { return false };
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

#[derive(Debug, Deserialize)]
struct Event {
    signature: Signature,
    #[serde(rename = "event-data")]
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

/// Why a callback was refused: a bad signature (403) or a malformed body (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Signature,
    Malformed(String),
}

/// A webhook event: a receipt, or `None` for events that are not one (accepted, temporary
/// failures Mailgun retries itself, clicks…).
pub fn event(provider: &str, signing_key: &str, body: &[u8]) -> Result<Option<ChannelEvent>, Refused> {
    let e: Event = serde_json::from_slice(body).map_err(|e| Refused::Malformed(format!("not a Mailgun event: {e}")))?;
    if !signed(signing_key, &e.signature.timestamp, &e.signature.token, &e.signature.signature) {
        return Err(Refused::Signature);
    }
    let kind = e.data["event"].as_str().ok_or_else(|| Refused::Malformed("event-data.event is required".into()))?;
    let id = e.data["message"]["headers"]["message-id"]
        .as_str()
        .ok_or_else(|| Refused::Malformed("event-data.message.headers.message-id is required".into()))?;
    let status = match (kind, e.data["severity"].as_str()) {
        ("delivered", _) => MessageDeliveryStatus::Delivered,
        ("opened", _) => MessageDeliveryStatus::Read,
        ("failed", Some("permanent")) => MessageDeliveryStatus::Failed,
        ("rejected", _) => MessageDeliveryStatus::Rejected,
        _ => return Ok(None),
    };
    let reason = e.data["delivery-status"]["message"].as_str().filter(|m| !m.is_empty()).unwrap_or(kind).to_string();
    Ok(Some(ChannelEvent::Receipt {
        provider: provider.to_string(),
        provider_message_id: id.trim_matches(['<', '>']).to_string(),
        status,
        reason,
    }))
}

/// Fields one multipart route POST may carry (Mailgun sends a few dozen headers and parts).
const MAX_FIELDS: usize = 256;

/// A route's POST as its fields: a form body, or `multipart/form-data` (what Mailgun posts for a
/// message with attachments). Files are skipped: the app's `receivedEmail` has no place for them.
pub async fn route_fields(content_type: &str, body: bytes::Bytes) -> Result<HashMap<String, String>, String> {
    if !content_type.starts_with("multipart/") {
        return Ok(http::form_fields(&body));
    }
    let boundary = multer::parse_boundary(content_type).map_err(|e| format!("multipart without a boundary: {e}"))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = HashMap::new();
    let mut seen = 0;
    while let Some(field) = parts.next_field().await.map_err(|e| format!("malformed multipart: {e}"))? {
        seen += 1;
        if seen > MAX_FIELDS {
            return Err(format!("more than {MAX_FIELDS} parts"));
        }
        let (Some(name), None) = (field.name().map(str::to_string), field.file_name()) else { continue };
        let text = field.text().await.map_err(|e| format!("malformed multipart field {name}: {e}"))?;
        fields.insert(name, text);
    }
    Ok(fields)
}

/// An email a route forwarded, from its fields ([`route_fields`]). A route that forwards to a URL
/// ending in `mime` sends the raw message as `body-mime` instead of parsed parts: it is parsed
/// here (`mail-parser`).
pub fn inbound(provider: &str, signing_key: &str, f: &HashMap<String, String>) -> Result<ChannelEvent, Refused> {
    let get = |name: &str| f.get(name).map(String::as_str).unwrap_or_default();
    if !signed(signing_key, get("timestamp"), get("token"), get("signature")) {
        return Err(Refused::Signature);
    }
    let required = |name: &str| http::required(f, name).map(str::to_string).map_err(Refused::Malformed);
    let (subject, plain, html) = match f.get("body-mime") {
        Some(mime) => {
            let parsed = mail_parser::MessageParser::default()
                .parse(mime.as_bytes())
                .ok_or_else(|| Refused::Malformed("body-mime is not a MIME message".into()))?;
            (
                parsed.subject().unwrap_or_default().to_string(),
                parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                parsed.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            )
        }
        None => (get("subject").to_string(), get("body-plain").to_string(), get("body-html").to_string()),
    };
    let id = f.get("Message-Id").or_else(|| f.get("message-id"));
    Ok(ChannelEvent::Received(Received {
        provider: provider.to_string(),
        channel: MessagingChannel::Email,
        channel_number: required("recipient")?,
        customer_number: required("sender")?,
        text: plain,
        provider_message_id: id.map(|id| id.trim_matches(['<', '>']).to_string()),
        email: Some(ReceivedEmail { subject, body_html: html }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &str, timestamp: &str, token: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
        mac.update(format!("{timestamp}{token}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn events_are_signed_and_mean_what_mailgun_documents() {
        let sig = sign("key-1", "1529006854", "a8ce0edb2d");
        let body = |event: &str, severity: &str, sig: &str| {
            format!(
                r#"{{"signature":{{"timestamp":"1529006854","token":"a8ce0edb2d","signature":"{sig}"}},
                "event-data":{{"event":"{event}","severity":"{severity}","recipient":"jane@example.com",
                "message":{{"headers":{{"message-id":"20130503182626.18666.16540@mg.example.com"}}}}}}}}"#
            )
        };
        let delivered = event("mg", "key-1", body("delivered", "", &sig).as_bytes()).expect("signed").expect("receipt");
        assert!(
            matches!(delivered, ChannelEvent::Receipt { ref provider_message_id, status: MessageDeliveryStatus::Delivered, .. }
            if provider_message_id == "20130503182626.18666.16540@mg.example.com")
        );
        assert_eq!(event("mg", "key-1", body("failed", "temporary", &sig).as_bytes()), Ok(None));
        assert!(matches!(
            event("mg", "key-1", body("failed", "permanent", &sig).as_bytes()),
            Ok(Some(ChannelEvent::Receipt { status: MessageDeliveryStatus::Failed, .. }))
        ));
        assert_eq!(event("mg", "other-key", body("delivered", "", &sig).as_bytes()), Err(Refused::Signature));
        assert!(matches!(event("mg", "key-1", b"{}"), Err(Refused::Malformed(_))));
        let form = format!(
            "recipient=news%40mg.example.com&sender=ada%40example.com&subject=Hi&body-plain=Hello&body-html=%3Cp%3EHello%3C%2Fp%3E&timestamp=1&token=t&signature={}",
            sign("key-1", "1", "t")
        );
        let fields = http::form_fields(form.as_bytes());
        let ChannelEvent::Received(r) = inbound("mg", "key-1", &fields).expect("signed") else { panic!("an email") };
        assert_eq!((r.customer_number.as_str(), r.text.as_str()), ("ada@example.com", "Hello"));
        assert_eq!(r.email.map(|e| e.subject), Some("Hi".to_string()));
        assert_eq!(inbound("mg", "key-2", &fields), Err(Refused::Signature));
    }

    #[tokio::test]
    async fn multipart_routes_and_raw_mime_are_read_and_files_skipped() {
        let sig = sign("key-1", "1", "t");
        let mime = "From: Ada <ada@example.com>\r\nTo: news@mg.example.com\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n\
            --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain caf\u{e9}\r\n\
            --b1\r\nContent-Type: text/html\r\n\r\n<p>Rich</p>\r\n--b1--\r\n";
        let field = |name: &str, value: &str| {
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let body = [
            field("recipient", "news@mg.example.com"),
            field("sender", "ada@example.com"),
            field("timestamp", "1"),
            field("token", "t"),
            field("signature", &sig),
            field("body-mime", mime),
            "--XyZ\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"a.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.4 binary\r\n--XyZ--\r\n"
                .to_string(),
        ]
        .concat();
        let fields = route_fields("multipart/form-data; boundary=XyZ", body.into()).await.expect("parses");
        assert!(!fields.contains_key("attachment-1"), "files are skipped");
        let ChannelEvent::Received(r) = inbound("mg", "key-1", &fields).expect("signed") else { panic!("an email") };
        assert_eq!(r.text.trim_end(), "Plain caf\u{e9}");
        let email = r.email.expect("email parts");
        assert_eq!((email.subject.as_str(), email.body_html.trim_end()), ("Caf\u{e9}", "<p>Rich</p>"));
        assert!(route_fields("multipart/form-data", bytes::Bytes::from_static(b"x")).await.is_err(), "no boundary");
        let broken =
            route_fields("multipart/form-data; boundary=XyZ", bytes::Bytes::from_static(b"--XyZ\r\nnope")).await;
        assert!(broken.is_err(), "a truncated part");
    }

    #[test]
    fn send_answers_decide_how_to_go_on() {
        let ok = br#"{"id":"<20111114174239.25659.5817@mg.example.com>","message":"Queued. Thank you."}"#;
        assert_eq!(
            outcome(200, ok).map(|p| p[0].provider_message_id.clone()),
            Ok("20111114174239.25659.5817@mg.example.com".into())
        );
        assert!(
            matches!(outcome(400, br#"{"message":"to parameter is not a valid address"}"#), Err(Refusal::Permanent(why)) if why.contains("not a valid"))
        );
        assert!(matches!(outcome(401, b"Forbidden"), Err(Refusal::Transient(_))));
        assert!(matches!(outcome(429, b"{}"), Err(Refusal::Throttled(_))));
    }
}
