//! Hodi as a SIP registrar for an org's own phones and softphones (RFC 3261 §10).
//!
//! An operator provisions SIP users (`hodi provision sip-user`, [`crate::store::sip_users`]): a
//! user name in one of the org's SIP domains, a password kept only as digest hashes, an optional
//! extension, and the voice number whose app handles the calls the user places. Their devices
//! REGISTER here with digest authentication ([`digest`]); the contacts they register are kept
//! in memory with their expiry ([`bindings`]) so that `dial` to `sip:alice@<domain>`, `alice`
//! or an extension rings them, and the INVITEs they send are challenged and then handled as
//! calls to the app (see [`crate::voice::listener`]).
//!
//! Guessing is made slow: wrong credentials are counted per source address and, past five in a
//! minute, the address is locked out for 10 s, doubling with each failure after (up to 5 min):
//! answered 403 at once, with no hashing, and counted in `/metrics`. A missing or stale nonce is
//! not a failure.
//!
//! Owns authentication of phones, their registrations and the lockouts; does not own calls.

pub mod bindings;
pub mod digest;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use tracing::{debug, info, warn};

use self::bindings::{Aor, Binding, Bindings, Change, Refused};
use self::digest::{Algorithm, Nonces, Refusal};
use super::sip::message::{self, Request};
use super::sip::transport::Transport;
use crate::context::Hodi;
use crate::store::sip_users::SipUser;

/// How long a nonce is good for.
const NONCE_LIFETIME_SECS: u64 = 300;
/// Registration lifetimes a device may ask for: shorter is refused (423), longer is cut.
const MIN_EXPIRES: u64 = 60;
const MAX_EXPIRES: u64 = 3600;
/// What a device gets when it names no lifetime.
const DEFAULT_EXPIRES: u64 = 3600;
/// Contacts per user, and in all, held by one node.
const PER_USER: usize = 10;
/// Failures an address may have in [`STRIKE_WINDOW`] before it is locked out.
const FREE_FAILURES: u32 = 5;
const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// The first lockout, doubled by each failure after it up to the longest.
const FIRST_LOCKOUT: Duration = Duration::from_secs(10);
const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Addresses tracked for lockouts at once.
const MAX_TRACKED: usize = 16_384;

/// The registrar's state, one per node.
pub struct Registrar {
    nonces: Nonces,
    bindings: Mutex<Bindings>,
    lockouts: Mutex<Lockouts>,
}

impl Registrar {
    pub fn new(max_registrations: usize) -> Registrar {
        Registrar {
            nonces: Nonces::new(NONCE_LIFETIME_SECS),
            bindings: Mutex::new(Bindings::new(PER_USER, max_registrations)),
            lockouts: Mutex::new(Lockouts::default()),
        }
    }

    fn bindings(&self) -> std::sync::MutexGuard<'_, Bindings> {
        self.bindings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lockouts(&self) -> std::sync::MutexGuard<'_, Lockouts> {
        self.lockouts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Devices registered now.
    pub fn registrations(&self) -> usize {
        self.bindings().len()
    }

    /// Drops expired registrations (every few seconds, from the listener).
    pub fn sweep(&self) {
        let mut b = self.bindings();
        b.sweep(Instant::now());
        crate::metrics::sip_registrations(b.len());
    }

    /// The devices of `user` registered now.
    pub fn devices(&self, user: &SipUser) -> Vec<Binding> {
        self.bindings().lookup(&(user.domain.clone(), user.username.clone()), Instant::now())
    }
}

/// A SIP user as the CLI asks for it, checked, with the password turned into digest hashes.
pub fn sip_user(
    org: &str,
    domain: &str,
    user: &str,
    password: &str,
    extension: Option<String>,
    number: Option<String>,
) -> Result<SipUser> {
    let domain = domain.trim().to_ascii_lowercase();
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !domain.starts_with(['.', '-']);
    if !domain_ok {
        bail!("--domain {domain:?} is not a host name (letters, digits, dots and dashes)");
    }
    let user_ok =
        !user.is_empty() && user.len() <= 64 && user.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if !user_ok {
        bail!("--user {user:?}: 1 to 64 letters, digits, '.', '_', '-' or '+'");
    }
    if password.chars().count() < 8 || password.len() > 128 {
        bail!("--password must be 8 to 128 characters");
    }
    if let Some(ext) = &extension {
        if ext.is_empty() || ext.len() > 16 || !ext.chars().all(|c| c.is_ascii_digit()) {
            bail!("--extension {ext:?}: 1 to 16 digits");
        }
    }
    Ok(SipUser {
        org_id: org.to_string(),
        ha1_md5: digest::ha1(Algorithm::Md5, user, &domain, password),
        ha1_sha256: digest::ha1(Algorithm::Sha256, user, &domain, password),
        domain,
        username: user.to_string(),
        extension,
        number,
    })
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Failures per source address.
#[derive(Default)]
struct Lockouts {
    by_ip: HashMap<IpAddr, Strikes>,
}

struct Strikes {
    failures: u32,
    since: Instant,
    until: Option<Instant>,
}

impl Lockouts {
    /// How much longer `ip` is locked out, if it is.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.by_ip.get(&ip)?.until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure from `ip`; true when it is locked out from now.
    fn fail(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_TRACKED {
            self.by_ip.retain(|_, s| s.until.is_some_and(|u| u > now) || now - s.since < STRIKE_WINDOW);
            if self.by_ip.len() >= MAX_TRACKED {
                // Every slot is a live offender: the newcomer is not tracked (it still has to
                // guess a password, at the price of a hash each).
                return false;
            }
        }
        let s = self.by_ip.entry(ip).or_insert(Strikes { failures: 0, since: now, until: None });
        if now - s.since >= STRIKE_WINDOW && s.until.is_none_or(|u| u <= now) {
            *s = Strikes { failures: 0, since: now, until: None };
        }
        s.failures += 1;
        if s.failures > FREE_FAILURES {
            let doublings = (s.failures - FREE_FAILURES - 1).min(16);
            let lock = (FIRST_LOCKOUT * (1u32 << doublings)).min(MAX_LOCKOUT);
            s.until = Some(now + lock);
            s.since = now;
            return true;
        }
        false
    }
}

/// What authenticating a request came to.
enum Checked {
    Ok(SipUser),
    /// Already answered (challenge, refusal).
    Answered,
}

/// Challenges or checks the digest credentials of `req`, a REGISTER (401 / WWW-Authenticate) or
/// an INVITE (407 / Proxy-Authenticate), for user `name` of `domain`.
async fn authenticate(
    hodi: &Hodi,
    registrar: &Registrar,
    transport: &Transport,
    req: &Request,
    domain: &str,
    name: &str,
) -> Checked {
    let ip = transport.peer().ip();
    let now = Instant::now();
    let locked = registrar.lockouts().locked(ip, now);
    if let Some(left) = locked {
        crate::metrics::sip_auth_failed("locked_out");
        let retry = [("Retry-After", left.as_secs().max(1).to_string())];
        transport.send(req.response(403, "Too Many Failed Attempts", Some("reg"), &retry, None)).await;
        return Checked::Answered;
    }
    let (code, reason, header) = match req.method.as_str() {
        "REGISTER" => (401, "Unauthorized", "WWW-Authenticate"),
        _ => (407, "Proxy Authentication Required", "Proxy-Authenticate"),
    };
    let challenge = |stale: bool| {
        let nonce = registrar.nonces.mint(domain, now_secs());
        let values = digest::challenges(domain, &nonce, stale, hodi.config.voice.sip_auth_sha256);
        let extra: Vec<(&str, String)> = values.into_iter().map(|v| (header, v)).collect();
        req.response(code, reason, Some("reg"), &extra, None)
    };
    let Some(creds) = req.authorization.as_deref().and_then(digest::parse) else {
        transport.send(challenge(false)).await;
        return Checked::Answered;
    };
    // Credentials for another realm (or a nonce from before a restart) earn a fresh challenge.
    if !creds.realm.eq_ignore_ascii_case(domain) {
        transport.send(challenge(false)).await;
        return Checked::Answered;
    }
    let user = match hodi.store.sip_user(domain, &creds.username).await {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, "looking up a SIP user");
            transport.send(req.response(500, "Server Internal Error", Some("reg"), &[], None)).await;
            return Checked::Answered;
        }
    };
    let claimed = creds.username.as_str();
    let refuse = |reason: &'static str| async move {
        crate::metrics::sip_auth_failed(reason);
        let locked = registrar.lockouts().fail(ip, Instant::now());
        info!(%ip, user = %claimed, %domain, reason, locked, "SIP authentication failed");
        transport.send(req.response(403, "Forbidden", Some("reg"), &[], None)).await;
        Checked::Answered
    };
    let Some(user) = user else { return refuse("unknown_user").await };
    // A device may only act as the user it authenticates as.
    if creds.username != name {
        return refuse("wrong_password").await;
    }
    let ha1 = match creds.algorithm() {
        Some(Algorithm::Sha256) => &user.ha1_sha256,
        _ => &user.ha1_md5,
    };
    match creds.verify(&req.method, ha1, &registrar.nonces, domain, now_secs()) {
        Ok(()) => Checked::Ok(user),
        Err(Refusal::Stale) => {
            transport.send(challenge(true)).await;
            Checked::Answered
        }
        Err(Refusal::Forged | Refusal::Malformed | Refusal::Algorithm) => {
            debug!("credentials with a nonce or algorithm not ours: challenged again");
            transport.send(challenge(false)).await;
            Checked::Answered
        }
        Err(Refusal::Wrong) => refuse("wrong_password").await,
    }
}

/// A REGISTER: authenticated, then its contacts added, refreshed or removed, and the user's
/// contacts listed in the 200.
pub async fn on_register(hodi: &Hodi, registrar: &Registrar, transport: &Transport, req: &Request) {
    let (Some(domain), Some(name)) = (message::host(&req.to), message::user(&req.to)) else {
        return transport.send(req.response(400, "Bad Request", Some("reg"), &[], None)).await;
    };
    let name = name.to_string();
    let user = match authenticate(hodi, registrar, transport, req, &domain, &name).await {
        Checked::Ok(user) => user,
        Checked::Answered => return,
    };
    let header_expires = req.expires.as_deref().and_then(|e| e.trim().parse::<u64>().ok());
    let mut changes = Vec::new();
    let mut star = false;
    for value in req.contact.iter().chain(&req.more_contacts) {
        for contact in split_contacts(value) {
            if contact.trim() == "*" {
                star = true;
                continue;
            }
            let after = contact.rsplit_once('>').map_or("", |(_, p)| p);
            let expires = message::param(after, "expires")
                .and_then(|e| e.parse::<u64>().ok())
                .or(header_expires)
                .unwrap_or(DEFAULT_EXPIRES);
            if expires != 0 && expires < MIN_EXPIRES {
                let min = [("Min-Expires", MIN_EXPIRES.to_string())];
                return transport.send(req.response(423, "Interval Too Brief", Some("reg"), &min, None)).await;
            }
            let uri = message::uri(contact);
            if uri.is_empty() || uri.len() > 512 {
                return transport.send(req.response(400, "Bad Contact", Some("reg"), &[], None)).await;
            }
            changes.push(Change { contact: uri.to_string(), expires: Duration::from_secs(expires.min(MAX_EXPIRES)) });
        }
    }
    if star && (header_expires != Some(0) || !changes.is_empty()) {
        return transport.send(req.response(400, "Contact * Needs Expires: 0 Alone", Some("reg"), &[], None)).await;
    }
    let aor: Aor = (user.domain.clone(), user.username.clone());
    let now = Instant::now();
    let result = {
        let mut b = registrar.bindings();
        let result = match (star, changes.is_empty()) {
            (true, _) => b.register(&aor, &req.call_id, req.cseq_number(), None, transport, now),
            // No Contact: a query for the current bindings.
            (false, true) => Ok(b.lookup(&aor, now)),
            (false, false) => b.register(&aor, &req.call_id, req.cseq_number(), Some(&changes), transport, now),
        };
        crate::metrics::sip_registrations(b.len());
        result
    };
    match result {
        Ok(current) => {
            debug!(user = %name, %domain, devices = current.len(), "registered");
            let extra: Vec<(&str, String)> = current
                .iter()
                .map(|b| {
                    let left = b.expires_at.saturating_duration_since(now).as_secs();
                    ("Contact", format!("<{}>;expires={left}", b.contact))
                })
                .collect();
            transport.send(req.response(200, "OK", Some("reg"), &extra, None)).await;
        }
        Err(Refused::OutOfOrder) => {
            transport.send(req.response(500, "Out Of Order Registration", Some("reg"), &[], None)).await;
        }
        Err(Refused::Full) => {
            warn!("SIP registrations are at voice.max_registrations; a new device was refused");
            let retry = [("Retry-After", "60".to_string())];
            transport.send(req.response(503, "Registrations Full", Some("reg"), &retry, None)).await;
        }
    }
}

/// Splits a Contact header value into its contacts (commas inside `<…>` or quotes are not
/// separators).
fn split_contacts(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut angle, mut quote) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' if !angle => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !angle && !quote => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|c| !c.is_empty());
    out
}

/// An INVITE that says it comes from a user of a domain Hodi keeps users for: `None` when its
/// From names no such domain (an ordinary caller); otherwise challenged and, once it proves to
/// be the user, `Some(Some(user))`; `Some(None)` when it was answered here (challenge, refusal).
pub async fn caller(
    hodi: &Hodi,
    registrar: &Registrar,
    transport: &Transport,
    req: &Request,
) -> Option<Option<SipUser>> {
    let domain = message::host(&req.from)?;
    let name = message::user(&req.from)?.to_string();
    match hodi.store.sip_domain_known(&domain).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            warn!(error = %e, "looking up a SIP domain");
            return None;
        }
    }
    match authenticate(hodi, registrar, transport, req, &domain, &name).await {
        Checked::Ok(user) => Some(Some(user)),
        Checked::Answered => Some(None),
    }
}

/// What `dial` reaches for `target` in `org_id`: the user and its registered devices, when the
/// target names one of the org's SIP users (`sip:alice@domain` or `sip:101@domain`, `alice`, or
/// an extension).
pub async fn resolve(
    hodi: &Hodi,
    registrar: &Registrar,
    org_id: &str,
    target: &str,
) -> Option<(SipUser, Vec<Binding>)> {
    let found = match target.strip_prefix("sip:").or_else(|| target.strip_prefix("sips:")) {
        Some(uri) => {
            let (name, host) = uri.split_once('@')?;
            let host = message::host(&format!("sip:x@{host}"))?;
            hodi.store.sip_user_in_domain(&host, name).await
        }
        None => hodi.store.sip_user_in_org(org_id, target).await,
    };
    let user = match found {
        Ok(Some(u)) if u.org_id == org_id => u,
        Ok(_) => return None,
        Err(e) => {
            warn!(error = %e, "looking up a SIP user to dial");
            return None;
        }
    };
    let devices = registrar.devices(&user);
    Some((user, devices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_lists_split_outside_brackets_and_quotes() {
        assert_eq!(
            split_contacts(r#""A, B" <sip:a@h;x=1,2>;expires=60, <sip:b@h> ,*"#),
            vec![r#""A, B" <sip:a@h;x=1,2>;expires=60"#, "<sip:b@h>", "*"]
        );
        assert!(split_contacts(" , ").is_empty());
    }

    #[test]
    fn failures_lock_an_address_out_for_a_doubling_time() {
        let mut l = Lockouts::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(!l.fail(ip, t0));
        }
        assert_eq!(l.locked(ip, t0), None);
        assert!(l.fail(ip, t0));
        assert_eq!(l.locked(ip, t0), Some(FIRST_LOCKOUT));
        assert!(l.fail(ip, t0 + Duration::from_secs(2)));
        assert_eq!(l.locked(ip, t0 + Duration::from_secs(2)), Some(FIRST_LOCKOUT * 2));
        // Another address is not affected; a quiet minute forgives.
        assert_eq!(l.locked(IpAddr::from([10, 0, 0, 2]), t0), None);
        assert!(!l.fail(ip, t0 + Duration::from_secs(200)));
        assert_eq!(l.locked(ip, t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn provisioning_input_is_checked() {
        assert!(sip_user("o", "Acme.Example", "alice", "longenough", Some("101".into()), None).is_ok());
        assert_eq!(
            sip_user("o", "Acme.Example", "alice", "longenough", None, None).map(|u| u.domain).ok().as_deref(),
            Some("acme.example")
        );
        for (domain, user, password, ext) in [
            ("", "alice", "longenough", None),
            ("bad domain", "alice", "longenough", None),
            ("acme.example", "al ice", "longenough", None),
            ("acme.example", "alice", "short", None),
            ("acme.example", "alice", "longenough", Some("10a")),
        ] {
            assert!(
                sip_user("o", domain, user, password, ext.map(String::from), None).is_err(),
                "{domain} {user} {ext:?}"
            );
        }
    }
}
