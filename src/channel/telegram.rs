//! Telegram bots through the Bot API.
//!
//! Out: `POST {base_url}/bot{token}/sendMessage` with the JSON `{"chat_id", "text"}`; the customer's
//! number on Telegram is the chat id a bot writes to (updates carry it). `{"ok": true, "result":
//! {"message_id"}}` is SENT (the provider's id is `<chat_id>:<message_id>`: message ids are per
//! chat); `"ok": false` with `error_code` 400/403 (no such chat, the bot was blocked) fails it, 429
//! (with `retry_after`) slows down, anything else is tried again. Telegram sends no delivery
//! receipts.
//!
//! In (parsed here, served by [`crate::webhooks`]): an Update (`message.chat.id`, `message.text`).

use std::time::Duration;

use prost::Message;
use serde::Deserialize;

use super::events::{ChannelEvent, Received};
use super::http;
use super::worker::{Refusal, Transport};
use crate::config::providers::Telegram as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::{outbound_message_body, MessagingChannel, OutboundMessage};

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
        let outbound = OutboundMessage::decode(message.message.as_slice())
            .map_err(|e| Refusal::Permanent(format!("stored message does not decode: {e}")))?;
        let text = match outbound.body.and_then(|b| b.entry) {
            Some(outbound_message_body::Entry::Text(t)) => t,
            _ => return Err(Refusal::Permanent("this version sends text through Telegram".into())),
        };
        let chat_id = message.customer_number.as_str();
        let url = format!("{}/bot{}/sendMessage", self.settings.base_url.trim_end_matches('/'), self.bot_token);
        let body = serde_json::json!({ "chat_id": chat_id, "text": text }).to_string().into_bytes();
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        // The URL holds the bot token: errors name the method only.
        let answer = http::post(&url, &[], "application/json", body, timeout)
            .await
            .map_err(|_| Refusal::Transient(format!("{}: sendMessage got no answer", self.name)))?;
        outcome(chat_id, answer.status, &answer.body)
    }
}

#[derive(Debug, Deserialize)]
struct Update {
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
    let Some(message) = update.message else { return Ok(None) };
    let Some(text) = message.text else { return Ok(None) };
    Ok(Some(ChannelEvent::Received(Received {
        provider: provider.to_string(),
        channel: MessagingChannel::Telegram,
        channel_number: username.to_string(),
        customer_number: message.chat.id.to_string(),
        text,
        provider_message_id: Some(format!("{}:{}", message.chat.id, message.message_id)),
        email: None,
    })))
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
}
