//! Telegram bots through the Bot API.
//!
//! Out: `POST {base_url}/bot{token}/sendMessage` with the JSON `{"chat_id", "text"}`; the customer's
//! number on Telegram is the chat id a bot writes to (updates carry it). `{"ok": true, "result":
//! {"message_id"}}` is SENT (the provider's id is `<chat_id>:<message_id>`: message ids are per
//! chat); `"ok": false` with `error_code` 400/403 (no such chat, the bot was blocked) fails it, 429
//! (with `retry_after`) slows down, anything else is tried again. Telegram sends no delivery
//! receipts.
//!
//! In: an Update (`message.chat.id`, `message.text`), posted to [`crate::webhooks`] (`updates =
//! "webhook"`) or fetched here with long-polling getUpdates (`updates = "polling"`: for a Hodi that
//! Telegram cannot reach). Polling first removes the bot's webhook (getUpdates refuses while one is
//! set), then asks `{"offset", "timeout": 25, "limit": 50, "allowed_updates": ["message"]}`; the
//! offset, which confirms the updates before it to Telegram, moves past a batch only once
//! messaging has stored it, so a crash at any point loses nothing (an update fetched twice is
//! stored once: inbound messages are idempotent per provider id).

use std::time::Duration;

use serde::Deserialize;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::events::{ChannelEvent, Received};
use super::worker::{Refusal, Transport};
use super::{body, http};
use crate::config::providers::Telegram as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::outbound_message_body::Entry;
use crate::wire::{MediaType, MessagingChannel};

/// One bot.
pub struct Telegram {
    name: String,
    settings: Settings,
    bot_token: String,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram").field("name", &self.name).field("username", &self.settings.username).finish()
    }
}

impl Telegram {
    pub fn new(name: &str, settings: &Settings) -> Result<Telegram, String> {
        if settings.username.is_empty() {
            return Err("username is required (the bot's, as provisioned)".into());
        }
        let bot_token = settings.bot_token()?;
        if bot_token.is_empty() {
            return Err("bot_token or bot_token_env is required".into());
        }
        if !matches!(settings.updates.as_str(), "webhook" | "polling") {
            return Err(format!("updates must be \"webhook\" or \"polling\", not {:?}", settings.updates));
        }
        Ok(Telegram { name: name.to_string(), settings: settings.clone(), bot_token: bot_token.expose().to_string() })
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Option<Sent>,
    #[serde(default)]
    error_code: u16,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
struct Sent {
    message_id: i64,
}

/// What sendMessage's answer means for the message to `chat_id`.
fn outcome(chat_id: &str, status: u16, body: &[u8]) -> Result<Vec<AcceptedPart>, Refusal> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| Refusal::Transient(format!("Telegram answered {status}, not the Bot API's JSON ({e})")))?;
    if answer.ok {
        let sent = answer.result.ok_or_else(|| Refusal::Transient("Telegram's answer has no result".into()))?;
        return Ok(vec![AcceptedPart {
            provider_message_id: format!("{chat_id}:{}", sent.message_id),
            part: 1,
            parts: 1,
        }]);
    }
    let why = format!("Telegram: {} ({})", answer.description, answer.error_code);
    Err(match answer.error_code {
        429 => Refusal::Throttled(why),
        400 | 403 => Refusal::Permanent(why),
        _ => Refusal::Transient(why),
    })
}

impl Transport for Telegram {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let chat_id = message.customer_number.as_str();
        let (method, body) = request(chat_id, body::outbound(message)?)?;
        let url = self.method(method);
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        // The URL holds the bot token: errors name the method only.
        let answer = http::post(&url, &[], "application/json", body.to_string().into_bytes(), timeout)
            .await
            .map_err(|_| Refusal::Transient(format!("{}: {method} got no answer", self.name)))?;
        outcome(chat_id, answer.status, &answer.body)
    }
}

/// The Bot API method and its JSON for a body: sendMessage (a text or link), sendPhoto /
/// sendAudio / sendVoice / sendVideo / sendDocument / sendSticker (media by URL), sendLocation.
fn request(chat_id: &str, entry: Entry) -> Result<(&'static str, serde_json::Value), Refusal> {
    use serde_json::json;
    Ok(match entry {
        Entry::Text(text) | Entry::Url(text) => ("sendMessage", json!({ "chat_id": chat_id, "text": text })),
        Entry::Media(media) => {
            let (method, field) = match body::media_type(media.media) {
                MediaType::Image => ("sendPhoto", "photo"),
                MediaType::Audio => ("sendAudio", "audio"),
                MediaType::Voice => ("sendVoice", "voice"),
                MediaType::Video => ("sendVideo", "video"),
                MediaType::Document => ("sendDocument", "document"),
                MediaType::Sticker => ("sendSticker", "sticker"),
                other => return Err(Refusal::Permanent(format!("Telegram cannot send {other:?} media by URL"))),
            };
            (method, json!({ "chat_id": chat_id, field: media.url }))
        }
        Entry::Location(l) => {
            ("sendLocation", json!({ "chat_id": chat_id, "latitude": l.latitude, "longitude": l.longitude }))
        }
        other => return Err(Refusal::Permanent(format!("Telegram cannot carry {}", body::kind(&other)))),
    })
}

#[derive(Debug, Deserialize)]
struct Update {
    #[serde(default)]
    update_id: i64,
    #[serde(default)]
    message: Option<UpdateMessage>,
}

#[derive(Debug, Deserialize)]
struct UpdateMessage {
    message_id: i64,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

/// An Update: a customer's message to the bot `username`, or `None` for updates that are not one
/// (edits, a message with no text, membership changes…).
pub fn update(provider: &str, username: &str, body: &[u8]) -> Result<Option<ChannelEvent>, String> {
    let update: Update = serde_json::from_slice(body).map_err(|e| format!("not a Telegram Update: {e}"))?;
    Ok(received(provider, username, update))
}

fn received(provider: &str, username: &str, update: Update) -> Option<ChannelEvent> {
    let message = update.message?;
    let text = message.text?;
    Some(ChannelEvent::Received(Received {
        provider: provider.to_string(),
        channel: MessagingChannel::Telegram,
        channel_number: username.to_string(),
        customer_number: message.chat.id.to_string(),
        text,
        provider_message_id: Some(format!("{}:{}", message.chat.id, message.message_id)),
        email: None,
    }))
}

/// How long one getUpdates waits for updates at Telegram (its `timeout`).
const POLL_SECS: u64 = 25;
/// Updates fetched at once (their answer stays well under the HTTP client's 256 KiB).
const POLL_LIMIT: u32 = 50;

/// getUpdates' answer: the updates (as the customers' messages among them) and the next offset.
#[derive(Debug, PartialEq, Eq)]
pub struct Polled {
    pub events: Vec<ChannelEvent>,
    /// One past the last update's id (None when there was none).
    pub next_offset: Option<i64>,
}

/// Reads getUpdates' answer.
pub fn polled(provider: &str, username: &str, status: u16, body: &[u8]) -> Result<Polled, String> {
    #[derive(Deserialize)]
    struct Updates {
        ok: bool,
        #[serde(default)]
        result: Vec<serde_json::Value>,
        #[serde(default)]
        error_code: u16,
        #[serde(default)]
        description: String,
    }
    let answer: Updates = serde_json::from_slice(body)
        .map_err(|e| format!("getUpdates answered {status}, not the Bot API's JSON ({e})"))?;
    if !answer.ok {
        let hint = if answer.error_code == 409 { " (another poller or a webhook holds the bot)" } else { "" };
        return Err(format!("getUpdates: {} ({}){hint}", answer.description, answer.error_code));
    }
    let mut events = Vec::new();
    let mut last = None;
    for value in answer.result {
        // One update Hodi cannot read must not stop the rest: it is skipped (and confirmed).
        match serde_json::from_value::<Update>(value) {
            Ok(update) => {
                last = last.max(Some(update.update_id));
                events.extend(received(provider, username, update));
            }
            Err(e) => tracing::warn!(provider, error = %e, "an update that is not one: skipped"),
        }
    }
    Ok(Polled { events, next_offset: last.map(|id| id + 1) })
}

impl Telegram {
    fn method(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.settings.base_url.trim_end_matches('/'), self.bot_token)
    }

    /// Fetches updates with long polling until shutdown, handing customers' messages to
    /// messaging and confirming them only once they are stored.
    pub async fn poll(self: std::sync::Arc<Self>, events: super::events::Sender, shutdown: CancellationToken) {
        let name = self.name.as_str();
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let mut backoff = Duration::from_secs(1);
        let mut offset: i64 = 0;
        let mut webhook_removed = false;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if !webhook_removed {
                // getUpdates refuses while a webhook is set; pending updates are kept.
                let body = br#"{"drop_pending_updates":false}"#.to_vec();
                match http::post(&self.method("deleteWebhook"), &[], "application/json", body, timeout).await {
                    Ok(a) if a.status == 200 => {
                        debug!(provider = name, "webhook removed; polling for updates");
                        webhook_removed = true;
                    }
                    Ok(a) => warn!(provider = name, status = a.status, "deleteWebhook refused"),
                    Err(_) => warn!(provider = name, "deleteWebhook got no answer"),
                }
            }
            let body = serde_json::json!({
                "offset": offset,
                "timeout": POLL_SECS,
                "limit": POLL_LIMIT,
                "allowed_updates": ["message"],
            })
            .to_string()
            .into_bytes();
            let wait = Duration::from_secs(POLL_SECS) + timeout;
            let url = self.method("getUpdates");
            let answer = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = http::post(&url, &[], "application/json", body, wait) => a,
            };
            let polled = match answer {
                // The URL holds the bot token: errors name the method only.
                Err(_) => Err("getUpdates got no answer".to_string()),
                Ok(a) => {
                    // Someone set a webhook again: it is removed before the next poll.
                    webhook_removed &= a.status != 409;
                    polled(name, &self.settings.username, a.status, &a.body)
                }
            };
            let polled = match polled {
                Ok(p) => p,
                Err(why) => {
                    warn!(provider = name, why, retry_in_ms = backoff.as_millis() as u64, "polling Telegram");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            backoff = Duration::from_secs(1);
            if !polled.events.is_empty() {
                let count = polled.events.len();
                let (ack, stored) = super::events::Ack::new();
                for event in polled.events.into_iter().chain([ChannelEvent::Flush(ack)]) {
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                if !matches!(stored.await, Ok(true)) {
                    // Not confirmed: the same updates come again, after a pause.
                    warn!(provider = name, count, "updates not stored; fetching them again");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                debug!(provider = name, count, "updates stored");
            }
            if let Some(next) = polled.next_offset {
                offset = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_answers_and_updates_mean_what_the_bot_api_documents() {
        let ok = br#"{"ok":true,"result":{"message_id":42,"chat":{"id":777,"type":"private"},"date":1,"text":"hi"}}"#;
        assert_eq!(
            outcome("777", 200, ok),
            Ok(vec![AcceptedPart { provider_message_id: "777:42".into(), part: 1, parts: 1 }])
        );
        let blocked = br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert!(matches!(outcome("777", 403, blocked), Err(Refusal::Permanent(why)) if why.contains("blocked")));
        let slow = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        assert!(matches!(outcome("777", 429, slow), Err(Refusal::Throttled(_))));
        assert!(matches!(outcome("777", 502, b"<html>Bad Gateway</html>"), Err(Refusal::Transient(_))));

        let message = br#"{"update_id":1,"message":{"message_id":5,"from":{"id":777,"is_bot":false,"first_name":"Ada"},"chat":{"id":777,"type":"private"},"date":1,"text":"Habari"}}"#;
        let Some(ChannelEvent::Received(r)) = update("tg", "hodi_bot", message).expect("parses") else {
            panic!("a message")
        };
        assert_eq!(
            (r.customer_number.as_str(), r.text.as_str(), r.channel_number.as_str()),
            ("777", "Habari", "hodi_bot")
        );
        assert_eq!(update("tg", "hodi_bot", br#"{"update_id":2,"edited_message":{}}"#), Ok(None));
        assert!(update("tg", "hodi_bot", b"{not json").is_err());
    }

    #[test]
    fn bodies_pick_the_bot_api_method() {
        use crate::wire::{LocationMessageBody, MediaMessageBody};
        let photo =
            Entry::Media(MediaMessageBody { url: "https://x.example/a.png".into(), media: MediaType::Image as i32 });
        let (method, body) = request("777", photo).expect("a photo");
        assert_eq!((method, body["photo"].as_str()), ("sendPhoto", Some("https://x.example/a.png")));
        let here = LocationMessageBody { latitude: -1.28, longitude: 36.82, ..Default::default() };
        assert_eq!(request("777", Entry::Location(here)).expect("a location").0, "sendLocation");
        assert_eq!(request("777", Entry::Url("https://x.example".into())).expect("a link").0, "sendMessage");
        assert!(request("777", Entry::Template(Default::default())).is_err());
    }

    #[test]
    fn get_updates_answers_give_messages_and_the_next_offset() {
        let two = br#"{"ok":true,"result":[{"update_id":40,"message":{"message_id":1,"chat":{"id":5},"date":1,"text":"one"}},{"update_id":41,"edited_message":{}},{"update_id":"x"}]}"#;
        let p = polled("tg", "hodi_bot", 200, two).expect("parses");
        assert_eq!((p.events.len(), p.next_offset), (1, Some(42)));
        assert_eq!(polled("tg", "hodi_bot", 200, br#"{"ok":true,"result":[]}"#).expect("parses").next_offset, None);
        let conflict = br#"{"ok":false,"error_code":409,"description":"Conflict: can't use getUpdates method while webhook is active"}"#;
        assert!(polled("tg", "hodi_bot", 409, conflict).expect_err("refused").contains("webhook"));
        assert!(polled("tg", "hodi_bot", 502, b"<html>").is_err());
    }
}
