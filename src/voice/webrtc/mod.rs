//! Browser calls: a WebRTC gateway inside Hodi.
//!
//! A page opens a WebSocket at `/voice/webrtc` on `listen.http`, sends its call — the org and
//! app, a token the app's server minted with GenerateAuthToken, the voice number, its SDP offer —
//! and gets an SDP answer. The gateway terminates WebRTC (ICE-lite, DTLS-SRTP; `str0m`) and places
//! the call on the voice executor as a SIP leg inside the process ([`leg`]), through the
//! listener's in-process transport, which vouches for the caller the token names. From there the
//! call is a `voiceCall` like a phone's: the app answers it with the same actions, sessions,
//! recordings and call records. The page's customer is the `from` it sent: a cellular customer
//! when that is a valid E.164 number (a browser phone standing in for a handset, as the
//! console's does — a token already lets a simulator socket play any customer), else an `app`
//! provider number (a fresh `browser-…` name when none is sent).
//!
//! Bounded: `voice.webrtc_max_calls` sessions at once and `voice.webrtc_max_calls_per_address`
//! from one address (beyond them 503 before the upgrade); an address that keeps presenting bad
//! tokens waits before it is heard again (429); each socket carries one call, its frames at most
//! [`signal::MAX_FRAME`] bytes, the call due within 10 s and the media connected within 20 s.
//!
//! Pages call with the script served at `/voice/webrtc.js` (`client.js` here, no dependencies).
//!
//! Owns the signalling route, the page script, admission and the sessions; does not own the executor's calls
//! ([`crate::voice::call`]) or the SIP listener ([`crate::voice::listener`]).

pub mod leg;
pub mod session;
pub mod signal;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hodi_rsocket::admission::{Admission, Failures};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{debug, warn};

use crate::context::Hodi;
use crate::voice::listener::Sip;

/// Bad tokens an address may present before it must wait (doubling up to a minute).
const TOKEN_FAILURES: u32 = 5;

/// What the route shares between sessions.
pub struct Gateway {
    hodi: Arc<Hodi>,
    sip: Arc<Sip>,
    media_ip: IpAddr,
    leg_ip: IpAddr,
    admission: Admission,
    failures: Failures,
}

impl Gateway {
    /// The gateway for this node, unless browser calls are off.
    pub fn new(hodi: Arc<Hodi>, sip: Arc<Sip>) -> Option<Arc<Gateway>> {
        let v = &hodi.config.voice;
        if !v.webrtc {
            return None;
        }
        let media_ip = v.webrtc_ip.unwrap_or(v.rtp_ip);
        if media_ip.is_unspecified() {
            warn!("browser calls are off: set voice.webrtc_ip (or voice.rtp_ip) to an address browsers can reach");
            return None;
        }
        Some(Arc::new(Gateway {
            media_ip,
            leg_ip: v.rtp_ip,
            admission: Admission::new("voice.webrtc_max_calls", v.webrtc_max_calls, v.webrtc_max_calls_per_address),
            failures: Failures::new(TOKEN_FAILURES),
            hodi,
            sip,
        }))
    }

    /// The signalling route, to merge into the HTTP listener's router.
    pub fn router(self: Arc<Gateway>) -> axum::Router {
        axum::Router::new()
            .route("/voice/webrtc", axum::routing::get(upgrade))
            .route("/voice/webrtc.js", axum::routing::get(client))
            .with_state(self)
    }
}

/// The page side, for any page to import (the console's phone does).
const CLIENT: &str = include_str!("client.js");

async fn client() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], CLIENT)
        .into_response()
}

/// The WebSocket handshake (RFC 6455 §4.2), then the call on a task of its own.
async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return (StatusCode::UPGRADE_REQUIRED, "browser calls are signalled over a WebSocket\n").into_response();
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13\n").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec()) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing\n").into_response();
    };
    if let Some(wait) = gateway.failures.barred(peer.ip()) {
        let retry = [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())];
        return (StatusCode::TOO_MANY_REQUESTS, retry, "too many bad tokens from this address\n").into_response();
    }
    let ticket = match gateway.admission.admit(peer.ip()) {
        Ok(t) => t,
        Err(refused) => {
            debug!(%peer, %refused, "browser call refused");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "30")], format!("{refused}\n"))
                .into_response();
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                debug!(%peer, error = %e, "WebSocket upgrade");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(signal::MAX_FRAME))
            .max_frame_size(Some(signal::MAX_FRAME));
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            Some(config),
        )
        .await;
        session::run(gateway, ws, peer).await;
        drop(ticket);
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}
