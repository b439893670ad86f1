//! Twilio's callbacks: `status` (status callbacks of messages Hodi sent) and `message` (incoming
//! SMS and WhatsApp messages, answered with an empty TwiML `<Response/>`: the app answers through
//! the API). Each must carry a valid `X-Twilio-Signature` for the URL Twilio called (the
//! provider's `public_url` followed by this path): a missing or wrong one is 403 and nothing is
//! stored.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::channel::twilio;
use crate::config::providers::Twilio as Settings;
use crate::context::Hodi;

pub async fn hook(
    hodi: &Arc<Hodi>,
    provider: &str,
    settings: &Settings,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Ok(token) = settings.auth_token() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "webhooks for this provider are not set up").into_response();
    };
    let url = format!("{}{path}", settings.public_url.trim_end_matches('/'));
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !twilio::signed(token.expose(), &url, body, signature) {
        warn!(provider, "a Twilio callback without a valid signature: refused");
        return (StatusCode::FORBIDDEN, "bad signature").into_response();
    }
    let event = path.rsplit('/').next().unwrap_or_default();
    let parsed = match event {
        "status" => twilio::status_callback(provider, body),
        "message" => twilio::incoming_message(provider, body).map(Some),
        _ => return (StatusCode::NOT_FOUND, "Twilio calls back on status or message").into_response(),
    };
    let ok = if event == "message" {
        ([(header::CONTENT_TYPE, "text/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
            .into_response()
    } else {
        super::done()
    };
    super::store(hodi, provider, event, parsed.map(|e| e.into_iter().collect()), ok).await
}
