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
    match telegram::update(provider, &settings.username, body) {
        Err(why) => {
            warn!(provider, why, "a malformed Telegram update: refused");
            (StatusCode::BAD_REQUEST, why).into_response()
        }
        Ok(None) => (StatusCode::OK, "").into_response(),
        Ok(Some(event)) => match crate::messaging::providers::apply(hodi, vec![event]).await {
            Ok(()) => (StatusCode::OK, "").into_response(),
            Err(e) => {
                warn!(provider, error = %e, "storing a provider's callback");
                (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
            }
        },
    }
}
