//! The web console, on the operator's HTTP listener under `/console`: log in with an org's API key
//! and see that org only — the dashboard (connected sockets, outbox depth over time, the latest
//! notifications and how each went), customers by id or number, call records with their
//! recordings, and the browser phone.
//!
//! The browser phone is a simulator socket like the SDK's `Simulator`: the page's script speaks
//! RSocket over the WebSocket listener (`listen.ws`/`listen.wss`) with protobuf payloads, with a
//! short-lived auth token the console issues for the org's first enabled app. No private API: what the
//! phone can do, any simulator socket can.
//!
//! Pages are rendered here (maud, everything escaped); the scripts and style sheet are embedded
//! in the binary ([`assets`]); nothing is fetched from elsewhere, and the Content-Security-Policy
//! says so. Owns the console's routes, sessions and history; reads the store, the socket
//! registries and the dispatcher's recent outcomes, and changes nothing but auth tokens.

mod assets;
pub mod history;
pub mod login;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::context::Hodi;
use history::History;
use login::{Sessions, Viewer};

/// How long a browser phone's auth token lasts; the phone fetches a new one when its socket is
/// closed at expiry.
const PHONE_TOKEN_SECS: u64 = 3600;
/// Recordings listed per call.
const RECORDINGS_PER_CALL: usize = 10;
/// Call records the calls page shows.
const CALLS_SHOWN: i64 = 50;

/// Where the browser phone's socket connects: the RSocket WebSocket listeners, as bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
}

struct Console {
    hodi: Arc<Hodi>,
    sessions: Arc<Sessions>,
    history: Arc<History>,
    links: Links,
}

type Shared = State<Arc<Console>>;

impl Console {
    /// The viewer, or the login page's redirect.
    async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Response> {
        self.sessions.viewer(&self.hodi, headers).await.ok_or_else(login::to_login)
    }
}

/// The console's routes (state applied), and its sampler started.
pub fn router(hodi: Arc<Hodi>, links: Links, shutdown: CancellationToken) -> axum::Router {
    let sessions = Arc::new(Sessions::default());
    let history = Arc::new(History::default());
    history::start(hodi.clone(), history.clone(), sessions.clone(), shutdown);
    let console = Arc::new(Console { hodi, sessions, history, links });
    axum::Router::new()
        .route("/console", get(|| async { Redirect::to("/console/dashboard") }))
        .route("/console/", get(|| async { Redirect::to("/console/dashboard") }))
        .route("/console/login", get(|| async { pages::login(None, StatusCode::OK) }).post(log_in))
        .route("/console/logout", post(log_out))
        .route("/console/dashboard", get(dashboard))
        .route("/console/customers", get(customers))
        .route("/console/calls", get(calls))
        .route("/console/phone", get(phone))
        .route("/console/api/overview", get(overview))
        .route("/console/api/phone-token", post(phone_token))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/recordings/{call}/{file}", get(recording))
        .layer(axum::middleware::map_response(secure))
        .with_state(console)
}

/// Every console answer: no framing by other sites, no referrer, scripts and media from here only,
/// sockets to the WebSocket listeners.
async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn log_in(State(c): Shared, body: Bytes) -> Response {
    match login::login(&c.hodi, &c.sessions, &body).await {
        Some(logged_in) => {
            // The chart starts with a point rather than after the first tick.
            c.history.sample(&c.hodi, &c.sessions.orgs()).await;
            logged_in
        }
        None => pages::login(Some("That org id and API key do not match."), StatusCode::UNAUTHORIZED),
    }
}

async fn log_out(State(c): Shared, headers: HeaderMap) -> Response {
    login::logout(&c.sessions, &headers)
}

async fn dashboard(State(c): Shared, headers: HeaderMap) -> Response {
    match c.viewer(&headers).await {
        Ok(v) => pages::dashboard(&v).into_response(),
        Err(to_login) => to_login,
    }
}

#[derive(Debug, serde::Deserialize)]
struct Search {
    q: Option<String>,
}

async fn customers(State(c): Shared, headers: HeaderMap, Query(search): Query<Search>) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(to_login) => return to_login,
    };
    let q = search.q.unwrap_or_default().trim().chars().take(256).collect::<String>();
    if q.is_empty() {
        return pages::customers(&v, &q, None).into_response();
    }
    let found = match c.hodi.store.find_customer(&v.org_id, &q).await {
        Ok(found) => found,
        Err(e) => return server_error(e),
    };
    let summary = match found {
        Some(customer) => match crate::customer::state(&c.hodi.store, &v.org_id, &customer.id).await {
            Ok(state) => Some(crate::customer::summary::summarise(&state)),
            Err(e) => return server_error(e),
        },
        None => None,
    };
    pages::customers(&v, &q, Some(summary.as_ref())).into_response()
}

async fn calls(State(c): Shared, headers: HeaderMap) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(to_login) => return to_login,
    };
    let filter = crate::store::calls::CallFilter { org_id: Some(v.org_id.clone()), ..Default::default() };
    let records = match c.hodi.store.call_records_where(&filter, CALLS_SHOWN).await {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let folder = c.hodi.config.data_dir.join("recordings");
    let mut listed = Vec::with_capacity(records.len());
    for r in records {
        let files = recordings_of(&folder, &r.session_id).await;
        listed.push((r, files));
    }
    pages::calls(&v, &listed).into_response()
}

/// The WAV files recorded on call `session`, oldest name first, at most [`RECORDINGS_PER_CALL`].
async fn recordings_of(folder: &std::path::Path, session: &str) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(mut dir) = tokio::fs::read_dir(folder.join(session)).await else { return names };
    while let Ok(Some(entry)) = dir.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wav") {
            names.push(name);
        }
        if names.len() == RECORDINGS_PER_CALL {
            break;
        }
    }
    names.sort();
    names
}

async fn phone(State(c): Shared, headers: HeaderMap) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(to_login) => return to_login,
    };
    match c.hodi.store.org_inventory(&v.org_id).await {
        Ok((apps, numbers)) => {
            let numbers: Vec<_> = numbers.into_iter().filter(|n| !n.disabled).collect();
            pages::phone(&v, apps.iter().all(|a| a.disabled), &numbers, c.links).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// The dashboard's live part.
#[derive(Debug, Serialize)]
struct Overview {
    apps: Vec<SocketLine>,
    simulators: Vec<SocketLine>,
    /// (unix ms, notifications waiting), oldest first.
    outbox: Vec<(i64, i64)>,
    recent: Vec<crate::notify::recent::Seen>,
}

#[derive(Debug, Serialize)]
struct SocketLine {
    connection_id: String,
    app_id: String,
    peer: String,
}

async fn overview(State(c): Shared, headers: HeaderMap) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(to_login) => return to_login,
    };
    let line = |s: Arc<crate::socket::Session>| SocketLine {
        connection_id: s.connection_id.clone(),
        app_id: s.app_id.clone(),
        peer: s.peer.clone(),
    };
    let overview = Overview {
        apps: c.hodi.sockets.all_in_org(&v.org_id).into_iter().map(line).collect(),
        simulators: c.hodi.simulators.all_in_org(&v.org_id).into_iter().map(line).collect(),
        outbox: c.history.of_org(&v.org_id),
        recent: c.hodi.recent_notifications.of_org(&v.org_id),
    };
    axum::Json(overview).into_response()
}

/// What the browser phone connects with.
#[derive(Debug, Serialize)]
struct PhoneToken {
    org_id: String,
    app_id: String,
    token: String,
    expires_in_secs: u64,
}

async fn phone_token(State(c): Shared, headers: HeaderMap) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(_) => return (StatusCode::UNAUTHORIZED, "log in again\n").into_response(),
    };
    let app_id = match c.hodi.store.org_inventory(&v.org_id).await {
        Ok((apps, _)) => match apps.into_iter().find(|a| !a.disabled) {
            Some(app) => app.id,
            None => return (StatusCode::CONFLICT, "the org has no enabled app: provision one first\n").into_response(),
        },
        Err(e) => return server_error(e),
    };
    match c.hodi.store.issue_auth_token(&v.org_id, &app_id, PHONE_TOKEN_SECS).await {
        Ok(token) => axum::Json(PhoneToken { org_id: v.org_id, app_id, token, expires_in_secs: PHONE_TOKEN_SECS })
            .into_response(),
        Err(e) => server_error(e),
    }
}

/// A recording of one of the viewer's org's calls, as WAV.
async fn recording(State(c): Shared, headers: HeaderMap, Path((call, file)): Path<(String, String)>) -> Response {
    let v = match c.viewer(&headers).await {
        Ok(v) => v,
        Err(to_login) => return to_login,
    };
    let Some(path) = crate::voice::recordings::path(&c.hodi.config.data_dir, &call, &file) else {
        return not_found();
    };
    let filter = crate::store::calls::CallFilter {
        org_id: Some(v.org_id.clone()),
        session_id: Some(call.clone()),
        ..Default::default()
    };
    match c.hodi.store.call_records_where(&filter, 1).await {
        Ok(found) if !found.is_empty() => {}
        Ok(_) => return not_found(),
        Err(e) => return server_error(e),
    }
    let Ok(f) = tokio::fs::File::open(&path).await else { return not_found() };
    let Ok(size) = f.metadata().await.map(|m| m.len()) else { return not_found() };
    // Streamed rather than read whole (a long call's recording is megabytes), with its length so
    // that a player knows the duration.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let headers = [
        (header::CONTENT_TYPE, "audio/wav".to_string()),
        (header::CONTENT_LENGTH, size.to_string()),
        (header::CACHE_CONTROL, "private, max-age=3600".to_string()),
    ];
    (headers, body).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such recording\n").into_response()
}

fn server_error(e: anyhow::Error) -> Response {
    tracing::warn!(error = %e, "console: the store failed");
    (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer; try again\n").into_response()
}
