//! Who is looking: logging in with an org id and one of its API keys, the session cookie that
//! follows, and logging out.
//!
//! A session is a random token in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console`,
//! mapped here to the org and the key it logged in with. The key is checked again on every
//! request, so revoking it (`hodi keys revoke`) ends the sessions it opened at their next click.
//! Sessions are bounded in number (the oldest goes first) and in age; a wrong key costs the
//! guesser a pause, and the listener bounds connections per address, so guesses are slow.
//!
//! Owns sessions and checking a login; must not decide what a page shows (the form is a page).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use tracing::info;

use crate::context::Hodi;

const COOKIE: &str = "hodi_console";
/// Sessions kept at once; logging in beyond this ends the oldest.
pub const MAX_SESSIONS: usize = 1024;
/// A session's lifetime from login.
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// What a wrong org id or key costs before the answer.
const WRONG_KEY_PAUSE: Duration = Duration::from_millis(400);
/// Longest org id or key looked at: anything longer is wrong.
const MAX_FIELD: usize = 256;

/// A logged-in viewer: the one org whose data the console shows them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub org_id: String,
}

#[derive(Debug)]
struct Open {
    org_id: String,
    api_key: String,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Open>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, org_id: &str, api_key: &str) -> String {
        let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut open = self.lock();
        open.retain(|_, s| s.since.elapsed() < LIFETIME);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.since).map(|(t, _)| t.clone()) {
                open.remove(&oldest);
            }
        }
        open.insert(token.clone(), Open { org_id: org_id.into(), api_key: api_key.into(), since: Instant::now() });
        token
    }

    fn end(&self, token: &str) {
        self.lock().remove(token);
    }

    /// The orgs somebody is logged in to (the dashboard's history is only sampled for those).
    pub fn orgs(&self) -> Vec<String> {
        let mut orgs: Vec<String> = self.lock().values().map(|s| s.org_id.clone()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        orgs
    }

    /// The viewer behind the request's cookie, if its session is live and its key still valid.
    pub async fn viewer(&self, hodi: &Hodi, headers: &HeaderMap) -> Option<Viewer> {
        let token = cookie(headers)?;
        let (org_id, api_key) = {
            let open = self.lock();
            let s = open.get(&token)?;
            if s.since.elapsed() >= LIFETIME {
                return None;
            }
            (s.org_id.clone(), s.api_key.clone())
        };
        match hodi.store.api_key_valid(&org_id, &api_key).await {
            Ok(true) => Some(Viewer { org_id }),
            Ok(false) => {
                info!(%org_id, "console session ended: its API key was revoked");
                self.end(&token);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: checking a session's key");
                None
            }
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty() && value.len() <= 128).then(|| value.to_string())
    })
}

/// Where a request without a live session goes.
pub fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// Logs in with the form's org id and key: the redirect that sets the session cookie, or None
/// (after a pause) when they do not match.
pub async fn login(hodi: &Hodi, sessions: &Sessions, body: &[u8]) -> Option<Response> {
    let mut org = String::new();
    let mut key = String::new();
    for (name, value) in form_urlencoded::parse(body) {
        match name.as_ref() {
            "org" => org = value.trim().chars().take(MAX_FIELD + 1).collect(),
            "key" => key = value.trim().chars().take(MAX_FIELD + 1).collect(),
            _ => {}
        }
    }
    let fits = !org.is_empty() && !key.is_empty() && org.len() <= MAX_FIELD && key.len() <= MAX_FIELD;
    let valid = fits && matches!(hodi.store.api_key_valid(&org, &key).await, Ok(true));
    if !valid {
        info!(org_id = %org, "console login refused");
        tokio::time::sleep(WRONG_KEY_PAUSE).await;
        return None;
    }
    let token = sessions.start(&org, &key);
    info!(org_id = %org, "console login");
    let cookie = format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs());
    let mut response = Redirect::to("/console/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Some(response)
}

pub fn logout(sessions: &Sessions, headers: &HeaderMap) -> Response {
    if let Some(token) = cookie(headers) {
        sessions.end(&token);
    }
    let mut response = Redirect::to("/console/login").into_response();
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_odd_ones_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; hodi_console=abc; b=2"));
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("hodi_console="));
        assert_eq!(cookie(&h), None);
        let long = format!("hodi_console={}", "x".repeat(200));
        h.insert(header::COOKIE, HeaderValue::from_str(&long).expect("header"));
        assert_eq!(cookie(&h), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let s = Sessions::default();
        let first = s.start("org", "key");
        for _ in 0..MAX_SESSIONS {
            s.start("org", "key");
        }
        let open = s.lock();
        assert_eq!(open.len(), MAX_SESSIONS);
        assert!(!open.contains_key(&first));
    }
}
