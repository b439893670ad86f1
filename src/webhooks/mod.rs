//! Webhooks: the HTTP listener providers call back (`[webhooks] listen`): delivery reports,
//! customers' messages, USSD steps, payment results.
//!
//! Every route is `POST /hooks/<provider>/<token>/<event>`: `<provider>` a configured provider's
//! name, `<token>` its `webhook_token` (compared in constant time; a wrong one is 403 and logged,
//! and nothing is read further), `<event>` what the provider calls about. A body that does not parse
//! is 400 and stores nothing. A report is applied (stored, notification queued) before the answer,
//! so a 200 means it is durable and a 500 makes the provider send it again.
//!
//! The listener is the internet's door: connections are capped in total and per source address
//! (`hodi_rsocket::admission`), headers must arrive within `header_timeout_secs`, a connection
//! lives at most `connection_secs`, and a body is at most `max_body_bytes`.
//!
//! Owns the HTTP side only; what a provider's payload means is the provider's module in
//! [`crate::channel`], what it does is messaging's.

pub mod africastalking;
pub mod mailgun;
pub mod meta;
pub mod mpesa;
pub mod telegram;
pub mod twilio;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::events::ChannelEvent;
use crate::config::providers::Provider;
use crate::context::Hodi;

/// Whether two secrets are equal, taking as long whichever byte differs.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A refusal the provider (or whoever called) sees.
fn refuse(status: StatusCode, why: &str) -> Response {
    (status, why.to_string()).into_response()
}

/// Starts the listener (unless `[webhooks] listen` is empty); where it listens.
pub async fn start(hodi: Arc<Hodi>, shutdown: CancellationToken) -> Result<Option<SocketAddr>> {
    let settings = hodi.config.webhooks.clone();
    if settings.listen.trim().is_empty() {
        return Ok(None);
    }
    let (listener, local) = crate::transport::http::bind("webhooks.listen", &settings.listen).await?;
    let router = axum::Router::new()
        .route("/hooks/{provider}/{token}/{event}", axum::routing::post(hook).get(check))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(hodi);
    let limits = crate::transport::http::Limits::from_config(
        settings.max_connections,
        settings.max_connections_per_address,
        settings.header_timeout_secs,
        settings.connection_secs,
    );
    info!(%local, "webhooks listening");
    crate::transport::http::serve("webhooks", listener, router, limits, shutdown);
    Ok(Some(local))
}

/// The answer to a parsed callback: 400 if it did not parse; else its events stored (with their
/// notifications) before `ok` is answered, or 500 so that the provider sends it again.
async fn store(
    hodi: &Arc<Hodi>,
    provider: &str,
    event: &str,
    parsed: Result<Vec<ChannelEvent>, String>,
    ok: Response,
) -> Response {
    match parsed {
        Err(why) => {
            warn!(provider, event, why, "a malformed callback: refused");
            refuse(StatusCode::BAD_REQUEST, &why)
        }
        Ok(events) if events.is_empty() => ok,
        Ok(events) => match crate::messaging::providers::apply(hodi, events).await {
            Ok(()) => ok,
            Err(e) => {
                warn!(provider, event, error = %e, "storing a provider's callback");
                refuse(StatusCode::INTERNAL_SERVER_ERROR, "try again")
            }
        },
    }
}

/// An empty 200.
fn done() -> Response {
    StatusCode::OK.into_response()
}

async fn hook(
    State(hodi): State<Arc<Hodi>>,
    Path((provider, token, event)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(settings) = hodi.config.providers.get(&provider) else {
        return refuse(StatusCode::NOT_FOUND, "no such provider");
    };
    let expected = match settings.webhook_token() {
        Ok(Some(t)) => t,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "this provider takes no webhooks"),
        Err(why) => {
            warn!(provider, why, "webhook for a provider whose token cannot be read");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "webhooks for this provider are not set up");
        }
    };
    if !same_secret(token.as_bytes(), expected.expose().as_bytes()) {
        warn!(provider, event, "webhook with a wrong token: refused");
        return refuse(StatusCode::FORBIDDEN, "wrong token");
    }
    match settings {
        Provider::AfricasTalking(_) => africastalking::hook(&hodi, &provider, &event, &body).await,
        Provider::Twilio(t) => twilio::hook(&hodi, &provider, t, uri.path(), &headers, &body).await,
        Provider::Telegram(t) => telegram::hook(&hodi, &provider, t, &event, &token, &headers, &body).await,
        Provider::Meta(m) => meta::hook(&hodi, &provider, m, &event, &headers, &body).await,
        Provider::Mailgun(m) => mailgun::hook(&hodi, &provider, m, &event, &headers, &body).await,
        Provider::Mpesa(_) => mpesa::hook(&hodi, &provider, &event, &body).await,
        _ => refuse(StatusCode::NOT_FOUND, "this provider takes no webhooks"),
    }
}

/// A provider checking the webhook before it subscribes (Meta's `hub.challenge`).
async fn check(
    State(hodi): State<Arc<Hodi>>,
    Path((provider, token, _event)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let Some(settings) = hodi.config.providers.get(&provider) else {
        return refuse(StatusCode::NOT_FOUND, "no such provider");
    };
    match settings.webhook_token() {
        Ok(Some(expected)) if same_secret(token.as_bytes(), expected.expose().as_bytes()) => {}
        _ => {
            warn!(provider, "webhook check with a wrong token: refused");
            return refuse(StatusCode::FORBIDDEN, "wrong token");
        }
    }
    match settings {
        Provider::Meta(m) => meta::verify(&provider, m, uri.query().unwrap_or_default()),
        _ => refuse(StatusCode::METHOD_NOT_ALLOWED, "this provider's webhooks are POSTs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
