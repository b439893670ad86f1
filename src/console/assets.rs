//! The console's style sheet and scripts, compiled into the binary (no CDN, no files to deploy):
//! `assets/` beside this file. Plain ES modules, no build step: `proto.js` encodes and decodes the
//! handful of protobuf messages a simulator socket uses, `rsocket.js` is an RSocket client over a
//! browser WebSocket (one frame per message), `phone.js` and `dashboard.js` drive the pages.
//!
//! Owns serving those files by name; anything else is a 404.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("dashboard.js", "text/javascript; charset=utf-8", include_str!("assets/dashboard.js")),
    ("phone.js", "text/javascript; charset=utf-8", include_str!("assets/phone.js")),
    ("rsocket.js", "text/javascript; charset=utf-8", include_str!("assets/rsocket.js")),
    ("proto.js", "text/javascript; charset=utf-8", include_str!("assets/proto.js")),
];

pub async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, ..)| *n == name) {
        Some((_, kind, text)) => {
            ([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "public, max-age=300")], *text).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
