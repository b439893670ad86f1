//! The operator's HTTP listener (`listen.http`): Prometheus metrics at `/metrics`, `/healthz`
//! (the process answers), `/readyz` (the store answers and every listener is bound), and the web
//! console under `/console` ([`crate::console`]); and whatever routes the server adds (browser
//! calls' signalling, [`crate::voice::webrtc`]).
//!
//! Owns these routes and the gauges read from the store at scrape time (outbox depth and oldest
//! age per app, pending reminders, running by-tag work) and the dispatcher's counters. Does not
//! own metric names ([`crate::metrics`]) or what any component counts.
//!
//! Bounded like every listener ([`crate::transport::http`]): connections in total and per
//! address, a header deadline, a lifetime; requests carry no body worth reading (GET only).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::Hodi;
use crate::metrics;

/// How long a scrape's store queries may take before `/metrics` answers without them.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Starts the listener (unless `listen.http` is empty); where it listens.
pub async fn start(
    hodi: Arc<Hodi>,
    links: crate::console::Links,
    more: Option<axum::Router>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let address = hodi.config.listen.http.clone();
    if address.trim().is_empty() {
        return Ok(None);
    }
    let (listener, local) = crate::transport::http::bind("listen.http", &address).await?;
    let settings = hodi.config.http.clone();
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(hodi.clone())
        .merge(crate::console::router(hodi, links, shutdown.clone()))
        .merge(more.unwrap_or_default())
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_bytes));
    let limits = crate::transport::http::Limits::from_config(
        settings.max_connections,
        settings.max_connections_per_address,
        settings.header_timeout_secs,
        settings.connection_secs,
    );
    info!(%local, "operator's HTTP listening (/metrics, /healthz, /readyz, /console)");
    crate::transport::http::serve("http", listener, router, limits, shutdown);
    Ok(Some(local))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store answers within [`STORE_WAIT`]; the listeners are bound before this one
/// starts, and the server exits if one cannot bind.
async fn readyz(State(hodi): State<Arc<Hodi>>) -> Response {
    match tokio::time::timeout(STORE_WAIT, hodi.store.count_orgs()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            warn!(error = %e, "readyz: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "the store does not answer\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer in time\n").into_response(),
    }
}

async fn render(State(hodi): State<Arc<Hodi>>) -> Response {
    let Some(handle) = metrics::install() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are off in this process\n").into_response();
    };
    if tokio::time::timeout(STORE_WAIT, read_store(&hodi)).await.is_err() {
        warn!("metrics: the store's gauges took too long; answered without fresh ones");
    }
    let stats = &hodi.notify_stats;
    for (outcome, counter) in [
        ("sent", &stats.sent),
        ("answered", &stats.answered),
        ("unanswered", &stats.unanswered),
        ("late", &stats.late_answers),
        ("redelivered", &stats.redelivered),
        ("expired", &stats.expired),
    ] {
        ::metrics::counter!(metrics::NOTIFICATIONS, "outcome" => outcome).absolute(counter.load(Ordering::Relaxed));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// Apps whose outbox the last scrape showed.
static SHOWN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The gauges read from the store. An app whose outbox emptied since the last scrape shows 0.
async fn read_store(hodi: &Hodi) {
    let now = crate::store::now_ms();
    match hodi.store.outbox_by_app().await {
        Ok(apps) => {
            // Apps shown last time with nothing queued now go to 0 rather than keep their value.
            let now_shown: HashSet<String> = apps.iter().map(|(a, _, _)| a.clone()).collect();
            let before = SHOWN.lock().unwrap_or_else(|p| p.into_inner()).replace(now_shown.clone()).unwrap_or_default();
            for app in before.difference(&now_shown) {
                ::metrics::gauge!(metrics::OUTBOX_DEPTH, "app" => app.clone()).set(0.0);
                ::metrics::gauge!(metrics::OUTBOX_OLDEST, "app" => app.clone()).set(0.0);
            }
            for (app, depth, oldest) in apps {
                let age = (now - oldest).max(0) as f64 / 1000.0;
                ::metrics::gauge!(metrics::OUTBOX_DEPTH, "app" => app.clone()).set(depth as f64);
                ::metrics::gauge!(metrics::OUTBOX_OLDEST, "app" => app).set(age);
            }
        }
        Err(e) => warn!(error = %e, "metrics: reading the outbox"),
    }
    match hodi.store.count_reminders().await {
        Ok(n) => ::metrics::gauge!(metrics::REMINDERS_PENDING).set(n as f64),
        Err(e) => warn!(error = %e, "metrics: counting reminders"),
    }
    match hodi.store.running_work().await {
        Ok(n) => ::metrics::gauge!(metrics::WORK_RUNNING).set(n as f64),
        Err(e) => warn!(error = %e, "metrics: counting running work"),
    }
}
