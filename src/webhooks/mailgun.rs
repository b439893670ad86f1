//! Mailgun's callbacks: `events` (delivery events, JSON) and `inbound` (a route's
//! `forward("https://hodi.example/hooks/<name>/<token>/inbound")`, a form). Both carry Mailgun's
//! signature (timestamp, token, HMAC-SHA256 with the webhook signing key): a missing or wrong one
//! is 403 and nothing is stored. Routes with attachments come as multipart/form-data (read,
//! files skipped; raise `webhooks.max_body_bytes` to take large ones).

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::channel::mailgun::{self, Refused};
use crate::config::providers::Mailgun as Settings;
use crate::context::Hodi;

pub async fn hook(
    hodi: &Arc<Hodi>,
    provider: &str,
    settings: &Settings,
    event: &str,
    headers: &HeaderMap,
    body: &axum::body::Bytes,
) -> Response {
    let key = match settings.signing_key() {
        Ok(k) if !k.is_empty() => k,
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "signing_key is not set").into_response(),
    };
    let parsed = match event {
        "events" => mailgun::event(provider, key.expose(), body),
        "inbound" => {
            let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            match mailgun::route_fields(kind, body.clone()).await {
                Ok(fields) => mailgun::inbound(provider, key.expose(), &fields).map(Some),
                Err(why) => Err(Refused::Malformed(why)),
            }
        }
        _ => return (StatusCode::NOT_FOUND, "Mailgun calls back on events or inbound").into_response(),
    };
    let parsed = match parsed {
        Err(Refused::Signature) => {
            warn!(provider, "a Mailgun callback without a valid signature: refused");
            return (StatusCode::FORBIDDEN, "bad signature").into_response();
        }
        Err(Refused::Malformed(why)) => Err(why),
        Ok(e) => Ok(e.into_iter().collect()),
    };
    super::store(hodi, provider, event, parsed, super::done()).await
}
