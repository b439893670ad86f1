//! Meta's Graph API: WhatsApp (Cloud API) and Facebook Messenger.
//!
//! Out, with `Authorization: Bearer <access token>`:
//! - WhatsApp: `POST {base_url}/{version}/{phone_number_id}/messages` with `{"messaging_product":
//!   "whatsapp", "recipient_type": "individual", "to": <digits>, "type": …}`: `text` (`{"body"}`,
//!   with `preview_url` for a link), `image` / `audio` / `video` / `document` / `sticker`
//!   (`{"link"}`), `location` (`{"latitude", "longitude", "name", "address"}`) or `template`
//!   (`{"name", "language": {"code"}, "components": [{"type": "body", "parameters"}]}`: the app's
//!   template id is `name` or `name/language`; numbered parameters go in number order, named ones
//!   with their `parameter_name`); the answer's `messages[0].id` (`wamid.…`) is the provider's id.
//! - Messenger: `POST {base_url}/{version}/me/messages` with `{"recipient": {"id": <PSID>},
//!   "messaging_type": "RESPONSE", "message": {"text"} or {"attachment": {"type", "payload":
//!   {"url"}}}}`; the answer's `message_id`.
//!
//! Errors come as `{"error": {"message", "code", …}}`: rate limits (4, 80007, 130429, 131048,
//! 131056) slow down, an expired or bad token (190) and 5xx are tried again, the rest fail.
//!
//! In (parsed here, served by [`crate::webhooks`]): one signed POST (`X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256 of the body with the app secret>`) can carry many events: WhatsApp
//! `messages` and `statuses` (sent, delivered, read, failed), Messenger `message` and `delivery`.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{json, Value};

use super::events::{ChannelEvent, Received};
use super::worker::{Refusal, Transport};
use super::{body, http};
use crate::config::providers::Meta as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::outbound_message_body::Entry;
use crate::wire::{MediaType, MessageDeliveryStatus, MessagingChannel};

/// Graph API error codes that mean "slow down".
const RATE_LIMITS: &[u64] = &[4, 17, 32, 613, 80007, 130429, 131048, 131056];
/// An access token that expired or was revoked: fixable by the operator, so tried again.
const BAD_TOKEN: u64 = 190;

/// One Meta app (a WhatsApp number and/or a Messenger page).
pub struct Meta {
    name: String,
    settings: Settings,
    access_token: String,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Meta {
    pub fn new(name: &str, settings: &Settings) -> Result<Meta, String> {
        let token = settings.access_token()?;
        if token.is_empty() {
            return Err("access_token or access_token_env is required".into());
        }
        if settings.app_secret()?.is_empty() {
            return Err("app_secret or app_secret_env is required (webhooks are signed with it)".into());
        }
        if settings.whatsapp_number.is_empty() && settings.messenger_page.is_empty() {
            return Err("whatsapp_number (with whatsapp_phone_number_id) or messenger_page is required".into());
        }
        if !settings.whatsapp_number.is_empty() && settings.whatsapp_phone_number_id.is_empty() {
            return Err("whatsapp_phone_number_id is required with whatsapp_number".into());
        }
        Ok(Meta { name: name.to_string(), settings: settings.clone(), access_token: token.expose().to_string() })
    }
}

#[derive(Debug, Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Debug, Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: u64,
}

/// What the Graph API's answer means; `id` finds the message id in a success.
fn outcome(
    status: u16,
    body: &[u8],
    id: impl Fn(&serde_json::Value) -> Option<String>,
) -> Result<Vec<AcceptedPart>, Refusal> {
    if (200..300).contains(&status) {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Refusal::Transient(format!("the Graph API's answer does not parse ({e})")))?;
        let id = id(&value).ok_or_else(|| Refusal::Transient("the Graph API's answer has no message id".into()))?;
        return Ok(vec![AcceptedPart { provider_message_id: id, part: 1, parts: 1 }]);
    }
    let Ok(GraphError { error }) = serde_json::from_slice::<GraphError>(body) else {
        return Err(Refusal::Transient(format!("the Graph API answered {status}")));
    };
    let why = format!("Meta: {} (code {})", error.message, error.code);
    Err(if RATE_LIMITS.contains(&error.code) || status == 429 {
        Refusal::Throttled(why)
    } else if error.code == BAD_TOKEN || status >= 500 {
        Refusal::Transient(why)
    } else {
        Refusal::Permanent(why)
    })
}

impl Transport for Meta {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let entry = body::outbound(message)?;
        let base = format!("{}/{}", self.settings.base_url.trim_end_matches('/'), self.settings.api_version);
        let whatsapp = message.channel == MessagingChannel::Whatsapp as i32;
        let (url, body) = if whatsapp {
            let to: String = message.customer_number.chars().filter(char::is_ascii_digit).collect();
            let mut body = whatsapp_message(entry, &self.settings.template_language)?;
            body["messaging_product"] = json!("whatsapp");
            body["recipient_type"] = json!("individual");
            body["to"] = json!(to);
            (format!("{base}/{}/messages", self.settings.whatsapp_phone_number_id), body)
        } else {
            (
                format!("{base}/me/messages"),
                json!({ "recipient": { "id": message.customer_number }, "messaging_type": "RESPONSE",
                        "message": messenger_message(entry)? }),
            )
        };
        let authorization = format!("Bearer {}", self.access_token);
        let headers = [("Authorization", authorization.as_str())];
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let answer = http::post(&url, &headers, "application/json", body.to_string().into_bytes(), timeout)
            .await
            .map_err(|e| Refusal::Transient(e.0))?;
        if whatsapp {
            outcome(answer.status, &answer.body, |v| v["messages"][0]["id"].as_str().map(str::to_string))
        } else {
            outcome(answer.status, &answer.body, |v| v["message_id"].as_str().map(str::to_string))
        }
    }
}

/// A WhatsApp Cloud API message (without its addressing) for a body.
fn whatsapp_message(entry: Entry, default_language: &str) -> Result<Value, Refusal> {
    Ok(match entry {
        Entry::Text(text) => json!({ "type": "text", "text": { "body": text } }),
        Entry::Url(url) => json!({ "type": "text", "text": { "body": url, "preview_url": true } }),
        Entry::Media(media) => {
            let kind = match body::media_type(media.media) {
                MediaType::Image => "image",
                MediaType::Audio | MediaType::Voice => "audio",
                MediaType::Video => "video",
                MediaType::Document => "document",
                MediaType::Sticker => "sticker",
                other => {
                    return Err(Refusal::Permanent(format!("WhatsApp cannot send {other:?} media by link")));
                }
            };
            json!({ "type": kind, kind: { "link": media.url } })
        }
        Entry::Location(l) => json!({ "type": "location", "location": {
            "latitude": l.latitude, "longitude": l.longitude,
            "name": l.label.unwrap_or_default(), "address": l.address.unwrap_or_default() } }),
        Entry::Template(t) => {
            let (name, language) = match t.id.split_once('/') {
                Some((name, language)) => (name.to_string(), language.to_string()),
                None => (t.id.clone(), default_language.to_string()),
            };
            let params = body::template_params(&t.params);
            let positional = body::positional(&params);
            let parameters: Vec<Value> = params
                .into_iter()
                .map(|(k, v)| {
                    if positional {
                        json!({ "type": "text", "text": v })
                    } else {
                        json!({ "type": "text", "parameter_name": k, "text": v })
                    }
                })
                .collect();
            let mut template = json!({ "name": name, "language": { "code": language } });
            if !parameters.is_empty() {
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            json!({ "type": "template", "template": template })
        }
        other => return Err(Refusal::Permanent(format!("WhatsApp cannot carry {}", body::kind(&other)))),
    })
}

/// A Messenger `message` for a body.
fn messenger_message(entry: Entry) -> Result<Value, Refusal> {
    Ok(match entry {
        Entry::Text(text) | Entry::Url(text) => json!({ "text": text }),
        Entry::Media(media) => {
            let kind = match body::media_type(media.media) {
                MediaType::Image | MediaType::Sticker => "image",
                MediaType::Audio | MediaType::Voice => "audio",
                MediaType::Video => "video",
                MediaType::Document => "file",
                other => return Err(Refusal::Permanent(format!("Messenger cannot send {other:?} media by link"))),
            };
            json!({ "attachment": { "type": kind, "payload": { "url": media.url, "is_reusable": true } } })
        }
        other => return Err(Refusal::Permanent(format!("Messenger cannot carry {}", body::kind(&other)))),
    })
}

/// Whether `header` (`X-Hub-Signature-256`) signs `body` with `app_secret`, in constant time.
pub fn signed(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(Ok(expected)) = header.strip_prefix("sha256=").map(hex::decode) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `+` and digits, as numbers are provisioned, from the digits WhatsApp writes.
fn plus(digits: &str) -> String {
    if digits.starts_with('+') {
        digits.to_string()
    } else {
        format!("+{digits}")
    }
}

/// Every event in a webhook POST: customers' messages and receipts, for our WhatsApp number and
/// Messenger page. Events of other kinds (reactions, postbacks, read watermarks) are skipped.
pub fn events(provider: &str, settings: &Settings, body: &[u8]) -> Result<Vec<ChannelEvent>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = value["object"].as_str().ok_or("no object")?;
    let entries = value["entry"].as_array().ok_or("no entry")?;
    let mut out = Vec::new();
    let receipt = |id: &str, status, reason: String| ChannelEvent::Receipt {
        provider: provider.to_string(),
        provider_message_id: id.to_string(),
        status,
        reason,
    };
    match object {
        "whatsapp_business_account" => {
            for change in entries.iter().flat_map(|e| e["changes"].as_array().into_iter().flatten()) {
                let v = &change["value"];
                for m in v["messages"].as_array().into_iter().flatten() {
                    let (Some(from), Some(id)) = (m["from"].as_str(), m["id"].as_str()) else {
                        return Err("a message without from or id".into());
                    };
                    let Some(text) = m["text"]["body"].as_str() else { continue };
                    out.push(ChannelEvent::Received(Received {
                        provider: provider.to_string(),
                        channel: MessagingChannel::Whatsapp,
                        channel_number: settings.whatsapp_number.clone(),
                        customer_number: plus(from),
                        text: text.to_string(),
                        provider_message_id: Some(id.to_string()),
                        email: None,
                    }));
                }
                for s in v["statuses"].as_array().into_iter().flatten() {
                    let (Some(id), Some(state)) = (s["id"].as_str(), s["status"].as_str()) else {
                        return Err("a status without id or status".into());
                    };
                    let status = match state {
                        "delivered" => MessageDeliveryStatus::Delivered,
                        "read" => MessageDeliveryStatus::Read,
                        "failed" => MessageDeliveryStatus::Failed,
                        _ => continue,
                    };
                    let why =
                        s["errors"][0]["title"].as_str().map(|t| format!("{state}: {t}")).unwrap_or(state.to_string());
                    out.push(receipt(id, status, why));
                }
            }
        }
        "page" => {
            for m in entries.iter().flat_map(|e| e["messaging"].as_array().into_iter().flatten()) {
                if let (Some(sender), Some(text)) = (m["sender"]["id"].as_str(), m["message"]["text"].as_str()) {
                    out.push(ChannelEvent::Received(Received {
                        provider: provider.to_string(),
                        channel: MessagingChannel::FbMessenger,
                        channel_number: settings.messenger_page.clone(),
                        customer_number: sender.to_string(),
                        text: text.to_string(),
                        provider_message_id: m["message"]["mid"].as_str().map(str::to_string),
                        email: None,
                    }));
                }
                for mid in m["delivery"]["mids"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                    out.push(receipt(mid, MessageDeliveryStatus::Delivered, "delivered".into()));
                }
            }
        }
        other => return Err(format!("unknown object {other:?}")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_the_documented_whatsapp_and_messenger_messages() {
        use crate::wire::{LocationMessageBody, MediaMessageBody, TemplateMessageBody};
        let image =
            || Entry::Media(MediaMessageBody { url: "https://x.example/a.png".into(), media: MediaType::Image as i32 });
        assert_eq!(
            whatsapp_message(image(), "en_US").expect("image"),
            json!({ "type": "image", "image": { "link": "https://x.example/a.png" } })
        );
        assert_eq!(messenger_message(image()).expect("image")["attachment"]["type"], json!("image"));
        let params = [("2", "KES 5"), ("1", "Ada")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let positional =
            whatsapp_message(Entry::Template(TemplateMessageBody { id: "balance".into(), params }), "en_US")
                .expect("template");
        assert_eq!(positional["template"]["language"]["code"], "en_US");
        assert_eq!(positional["template"]["components"][0]["parameters"][0]["text"], "Ada");
        assert_eq!(positional["template"]["components"][0]["parameters"][1]["text"], "KES 5");
        let named = [("name", "Ada")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let named =
            whatsapp_message(Entry::Template(TemplateMessageBody { id: "hello/sw".into(), params: named }), "en_US")
                .expect("template");
        assert_eq!(
            (named["template"]["name"].as_str(), named["template"]["language"]["code"].as_str()),
            (Some("hello"), Some("sw"))
        );
        assert_eq!(named["template"]["components"][0]["parameters"][0]["parameter_name"], "name");
        let here =
            LocationMessageBody { latitude: -1.28, longitude: 36.82, label: Some("Office".into()), address: None };
        assert_eq!(whatsapp_message(Entry::Location(here), "en_US").expect("location")["location"]["name"], "Office");
        assert!(matches!(
            messenger_message(Entry::Template(TemplateMessageBody::default())),
            Err(Refusal::Permanent(_))
        ));
        let contact = Entry::Media(MediaMessageBody { url: "x".into(), media: MediaType::Contact as i32 });
        assert!(matches!(whatsapp_message(contact, "en_US"), Err(Refusal::Permanent(_))));
    }

    fn settings() -> Settings {
        Settings { whatsapp_number: "+254711082001".into(), messenger_page: "hodi_page".into(), ..Settings::default() }
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body_with_the_app_secret() {
        let body = br#"{"object":"page","entry":[]}"#;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"app-secret").expect("key");
        mac.update(body);
        let header = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signed("app-secret", body, &header));
        assert!(!signed("other", body, &header));
        assert!(!signed("app-secret", b"{}", &header));
        assert!(!signed("app-secret", body, header.trim_start_matches("sha256=")), "the prefix is required");
        assert!(!signed("app-secret", body, "sha256=zz"));
    }

    #[test]
    fn webhooks_carry_messages_and_receipts_for_both_channels() {
        let wa = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"254711082001","phone_number_id":"123"},
            "messages":[{"from":"254700000009","id":"wamid.IN","timestamp":"1","type":"text","text":{"body":"Habari"}}],
            "statuses":[{"id":"wamid.OUT","status":"delivered","timestamp":"1","recipient_id":"254700000001"},
                        {"id":"wamid.OUT2","status":"sent","timestamp":"1","recipient_id":"254700000001"}]}}]}]}"#;
        let got = events("meta", &settings(), wa).expect("parses");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            matches!(&got[0], ChannelEvent::Received(r) if r.customer_number == "+254700000009" && r.text == "Habari")
        );
        assert!(
            matches!(&got[1], ChannelEvent::Receipt { provider_message_id, status: MessageDeliveryStatus::Delivered, .. } if provider_message_id == "wamid.OUT")
        );
        let page = br#"{"object":"page","entry":[{"id":"9","time":1,"messaging":[
            {"sender":{"id":"PSID1"},"recipient":{"id":"9"},"timestamp":1,"message":{"mid":"m_1","text":"Hi page"}},
            {"sender":{"id":"PSID1"},"recipient":{"id":"9"},"delivery":{"mids":["m_out"],"watermark":1}}]}]}"#;
        let got = events("meta", &settings(), page).expect("parses");
        assert!(
            matches!(&got[0], ChannelEvent::Received(r) if r.channel == MessagingChannel::FbMessenger && r.channel_number == "hodi_page")
        );
        assert!(matches!(&got[1], ChannelEvent::Receipt { provider_message_id, .. } if provider_message_id == "m_out"));
        assert!(events("meta", &settings(), b"[]").is_err());
        assert!(events("meta", &settings(), br#"{"object":"instagram","entry":[]}"#).is_err());
    }

    #[test]
    fn graph_errors_decide_how_to_go_on() {
        let wamid = |v: &serde_json::Value| v["messages"][0]["id"].as_str().map(str::to_string);
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"254700000001","wa_id":"254700000001"}],"messages":[{"id":"wamid.X"}]}"#;
        assert_eq!(outcome(200, ok, wamid).map(|p| p[0].provider_message_id.clone()), Ok("wamid.X".into()));
        let window =
            br#"{"error":{"message":"Re-engagement message","type":"OAuthException","code":131047,"fbtrace_id":"A"}}"#;
        assert!(matches!(outcome(400, window, wamid), Err(Refusal::Permanent(_))));
        let slow = br#"{"error":{"message":"Rate limit hit","code":130429}}"#;
        assert!(matches!(outcome(400, slow, wamid), Err(Refusal::Throttled(_))));
        let token = br#"{"error":{"message":"Error validating access token","code":190}}"#;
        assert!(matches!(outcome(401, token, wamid), Err(Refusal::Transient(_))));
    }
}
