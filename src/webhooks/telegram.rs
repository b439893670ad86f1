//! A Telegram bot's webhook: `update` (set with setWebhook's `url` = `…/hooks/<name>/<token>/update`
//! and `secret_token` = the same token, which Telegram sends back as
//! `X-Telegram-Bot-Api-Secret-Token`: a missing or wrong one is 403 and nothing is stored).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::channel::telegram;
use crate::config::providers::Telegram as Settings;
use crate::context::Hodi;

pub async fn hook(
    hodi: &Arc<Hodi>,
    provider: &str,
    settings: &Settings,
    event: &str,
    token: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let header = headers.get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes()).unwrap_or_default();
    if !super::same_secret(header, token.as_bytes()) {
        warn!(provider, "a Telegram update without the secret token header: refused");
        return (StatusCode::FORBIDDEN, "wrong secret token").into_response();
    }
    if event != "update" {
        return (StatusCode::NOT_FOUND, "Telegram calls back on update").into_response();
    }
    let parsed = telegram::update(provider, &settings.username, body).map(|e| e.into_iter().collect());
    super::store(hodi, provider, event, parsed, super::done()).await
}
