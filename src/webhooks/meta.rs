//! Meta's webhook (WhatsApp Cloud API and Messenger): `GET …/events` answers the subscription
//! check (`hub.mode=subscribe`, `hub.verify_token` = the provider's `verify_token`: echo
//! `hub.challenge`, else 403); `POST …/events` must carry `X-Hub-Signature-256` signing the body
//! with the app secret (else 403, nothing stored) and may hold many messages and receipts, stored
//! together before the 200.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::channel::meta;
use crate::config::providers::Meta as Settings;
use crate::context::Hodi;

/// The subscription check, from the query string of a GET.
pub fn verify(provider: &str, settings: &Settings, query: &str) -> Response {
    let mut mode = None;
    let mut token = None;
    let mut challenge = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    let expected = match settings.verify_token() {
        Ok(t) if !t.is_empty() => t,
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "verify_token is not set").into_response(),
    };
    let matches = token.as_deref().is_some_and(|t| super::same_secret(t.as_bytes(), expected.expose().as_bytes()));
    match (mode.as_deref(), matches, challenge) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        _ => {
            warn!(provider, "a Meta subscription check with a wrong verify token: refused");
            (StatusCode::FORBIDDEN, "wrong verify token").into_response()
        }
    }
}

pub async fn hook(
    hodi: &Arc<Hodi>,
    provider: &str,
    settings: &Settings,
    event: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Ok(secret) = settings.app_secret() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "webhooks for this provider are not set up").into_response();
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if secret.is_empty() || !meta::signed(secret.expose(), body, signature) {
        warn!(provider, "a Meta webhook without a valid signature: refused");
        return (StatusCode::FORBIDDEN, "bad signature").into_response();
    }
    if event != "events" {
        return (StatusCode::NOT_FOUND, "Meta calls back on events").into_response();
    }
    super::store(hodi, provider, event, meta::events(provider, settings, body), super::done()).await
}
