//! SIP digest authentication (RFC 3261 §22 with RFC 2617's MD5 and RFC 8760's SHA-256): the
//! challenges Hodi sends, the check of what comes back, and the answer Hodi gives when a trunk
//! challenges it.
//!
//! Sans-IO: header values in, header values out; the clock is passed in. Nonces are stateless —
//! a timestamp and an HMAC of it under a secret made at start — so a flood of REGISTERs makes
//! the server hold nothing per challenge, and a nonce older than its lifetime is "stale" (the
//! phone retries with a new one, without asking its user again).
//!
//! Owns the digest arithmetic and header syntax; does not own who the users are (the store) nor
//! what happens to those who fail (the registrar's lockouts).

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A digest algorithm a challenge offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(name: Option<&str>) -> Option<Algorithm> {
        match name {
            None => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        let joined = parts.join(":");
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(joined.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(joined.as_bytes())),
        }
    }
}

/// HA1 = H(user:realm:password), what the store keeps instead of the password (one per algorithm).
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[user, realm, password])
}

/// Makes and checks nonces.
pub struct Nonces {
    secret: [u8; 32],
    lifetime_secs: u64,
}

/// What a nonce that came back is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Ours, but older than the lifetime: challenge again with `stale=true`.
    Stale,
    /// Not one we made (or for another realm).
    Forged,
}

impl Nonces {
    pub fn new(lifetime_secs: u64) -> Nonces {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Nonces { secret, lifetime_secs: lifetime_secs.max(1) }
    }

    fn mac(&self, stamp: &str, realm: &str) -> String {
        // The key is 32 bytes: any length is valid for HMAC, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else { return String::new() };
        mac.update(stamp.as_bytes());
        mac.update(b":");
        mac.update(realm.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..12])
    }

    pub fn mint(&self, realm: &str, now_secs: u64) -> String {
        let stamp = format!("{now_secs:x}");
        let mac = self.mac(&stamp, realm);
        format!("{stamp}.{mac}")
    }

    pub fn check(&self, nonce: &str, realm: &str, now_secs: u64) -> Freshness {
        let Some((stamp, mac)) = nonce.split_once('.') else { return Freshness::Forged };
        if stamp.len() > 16 || !bool::from(self.mac(stamp, realm).as_bytes().ct_eq(mac.as_bytes())) {
            return Freshness::Forged;
        }
        match u64::from_str_radix(stamp, 16) {
            Ok(t) if t <= now_secs && now_secs - t <= self.lifetime_secs => Freshness::Fresh,
            Ok(t) if t <= now_secs + 5 => Freshness::Stale,
            _ => Freshness::Forged,
        }
    }
}

/// The `WWW-Authenticate` / `Proxy-Authenticate` values for a challenge: MD5, and SHA-256 too
/// when `sha256` (then MD5 still first). RFC 8760 §2.4 would have SHA-256 offered first, but
/// phones in use answer only the first challenge or, like baresip 1.0 (libre), give up on the
/// whole response ("Function not implemented") when any challenge names an algorithm they lack;
/// so SHA-256 is an operator's choice (`voice.sip_auth_sha256`), for fleets known to handle it.
pub fn challenges(realm: &str, nonce: &str, stale: bool, sha256: bool) -> Vec<String> {
    let stale = if stale { ", stale=true" } else { "" };
    let offered: &[Algorithm] = if sha256 { &[Algorithm::Md5, Algorithm::Sha256] } else { &[Algorithm::Md5] };
    offered
        .iter()
        .map(|a| format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}", a.name()))
        .collect()
}

/// What an `Authorization` header says (the fields a check needs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// Why credentials did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the Authorization header is not a digest we can read")]
    Malformed,
    #[error("the digest algorithm is not one we offered")]
    Algorithm,
    #[error("the nonce is not ours")]
    Forged,
    #[error("the nonce has expired")]
    Stale,
    #[error("the digest does not match (wrong password)")]
    Wrong,
}

/// `key=value, key="quoted value", …` after the `Digest` scheme name.
pub fn parse(header: &str) -> Option<Credentials> {
    let rest = header.trim();
    let (scheme, mut rest) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut c = Credentials::default();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => out.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => out.push(ch),
                }
            }
            (out, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "username" => c.username = value,
            "realm" => c.realm = value,
            "nonce" => c.nonce = value,
            "uri" => c.uri = value,
            "response" => c.response = value,
            "algorithm" => c.algorithm = Some(value),
            "qop" => c.qop = Some(value),
            "nc" => c.nc = Some(value),
            "cnonce" => c.cnonce = Some(value),
            "opaque" => c.opaque = Some(value),
            _ => {}
        }
        rest = next;
    }
    (!c.username.is_empty() && !c.nonce.is_empty() && !c.response.is_empty()).then_some(c)
}

impl Credentials {
    pub fn algorithm(&self) -> Option<Algorithm> {
        Algorithm::parse(self.algorithm.as_deref())
    }

    /// Checks the response against the stored HA1 for the credentials' algorithm.
    pub fn verify(&self, method: &str, ha1: &str, nonces: &Nonces, realm: &str, now_secs: u64) -> Result<(), Refusal> {
        let algorithm = self.algorithm().ok_or(Refusal::Algorithm)?;
        match nonces.check(&self.nonce, realm, now_secs) {
            Freshness::Forged => return Err(Refusal::Forged),
            Freshness::Stale => {
                // A stale nonce with the right password is only stale; with a wrong one, wrong.
                return Err(if self.expected(algorithm, method, ha1) == Some(self.response.to_ascii_lowercase()) {
                    Refusal::Stale
                } else {
                    Refusal::Wrong
                });
            }
            Freshness::Fresh => {}
        }
        let expected = self.expected(algorithm, method, ha1).ok_or(Refusal::Malformed)?;
        match bool::from(expected.as_bytes().ct_eq(self.response.to_ascii_lowercase().as_bytes())) {
            true => Ok(()),
            false => Err(Refusal::Wrong),
        }
    }

    fn expected(&self, algorithm: Algorithm, method: &str, ha1: &str) -> Option<String> {
        let ha2 = algorithm.hash(&[method, &self.uri]);
        match self.qop.as_deref() {
            None => Some(algorithm.hash(&[ha1, &self.nonce, &ha2])),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (nc, cnonce) = (self.nc.as_deref()?, self.cnonce.as_deref()?);
                Some(algorithm.hash(&[ha1, &self.nonce, nc, cnonce, "auth", &ha2]))
            }
            Some(_) => None,
        }
    }
}

/// A challenge as a client reads it (from a trunk's 401/407).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub qop_auth: bool,
    pub opaque: Option<String>,
}

/// The first challenge among `headers` that we can answer (SHA-256 or MD5; qop absent or auth).
pub fn read_challenge<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    headers.into_iter().find_map(|h| {
        // The challenge has the same syntax as credentials, minus response and username.
        let c = parse(&format!("{h}, username=\"-\", response=\"-\""))?;
        let algorithm = c.algorithm()?;
        let qop_auth = match c.qop.as_deref() {
            None => false,
            Some(q) if q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")) => true,
            Some(_) => return None,
        };
        Some(Challenge { realm: c.realm, nonce: c.nonce, algorithm, qop_auth, opaque: c.opaque })
    })
}

impl Challenge {
    /// The `Authorization` / `Proxy-Authorization` value answering this challenge.
    pub fn answer(&self, user: &str, password: &str, method: &str, uri: &str, cnonce: &str, nc: u32) -> String {
        let a = self.algorithm;
        let ha1 = ha1(a, user, &self.realm, password);
        let ha2 = a.hash(&[method, uri]);
        let nc = format!("{nc:08x}");
        let (response, qop) = match self.qop_auth {
            true => (
                a.hash(&[&ha1, &self.nonce, &nc, cnonce, "auth", &ha2]),
                format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""),
            ),
            false => (a.hash(&[&ha1, &self.nonce, &ha2]), String::new()),
        };
        let opaque = self.opaque.as_ref().map(|o| format!(", opaque=\"{o}\"")).unwrap_or_default();
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}{qop}{opaque}",
            self.realm,
            self.nonce,
            a.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 §3.5 (HTTP, but the arithmetic is the same).
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "6629fae49393a05397450978507c4ef1".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
            ..Default::default()
        };
        let ha1 = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(c.expected(Algorithm::Md5, "GET", &ha1).as_deref(), Some("6629fae49393a05397450978507c4ef1"));
    }

    #[test]
    fn what_a_client_answers_the_server_accepts_and_a_wrong_password_is_refused() {
        let nonces = Nonces::new(300);
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = nonces.mint("acme.example", 1_000);
            let offered = challenges("acme.example", &nonce, false, true);
            assert_eq!(challenges("acme.example", &nonce, false, false).len(), 1, "MD5 only unless asked");
            let challenge = &offered[usize::from(algorithm == Algorithm::Sha256)];
            let read = read_challenge([challenge.as_str()]).expect("our own challenge reads");
            assert_eq!(read.algorithm, algorithm);
            let answer = read.answer("alice", "s3cret", "REGISTER", "sip:acme.example", "c0ffee", 1);
            let creds = parse(&answer).expect("our own answer parses");
            let stored = ha1(algorithm, "alice", "acme.example", "s3cret");
            assert_eq!(creds.verify("REGISTER", &stored, &nonces, "acme.example", 1_010), Ok(()));
            assert_eq!(creds.verify("INVITE", &stored, &nonces, "acme.example", 1_010), Err(Refusal::Wrong));
            let wrong = ha1(algorithm, "alice", "acme.example", "guess");
            assert_eq!(creds.verify("REGISTER", &wrong, &nonces, "acme.example", 1_010), Err(Refusal::Wrong));
            assert_eq!(creds.verify("REGISTER", &stored, &nonces, "acme.example", 1_301), Err(Refusal::Stale));
            assert_eq!(creds.verify("REGISTER", &wrong, &nonces, "acme.example", 1_301), Err(Refusal::Wrong));
            assert_eq!(creds.verify("REGISTER", &stored, &nonces, "other.example", 1_010), Err(Refusal::Forged));
            assert_eq!(
                creds.verify("REGISTER", &stored, &Nonces::new(300), "acme.example", 1_010),
                Err(Refusal::Forged)
            );
        }
    }

    #[test]
    fn headers_with_quotes_commas_and_junk_parse_or_are_refused() {
        let c = parse(r#"Digest username="a\"b", realm="r,1",nonce="n", uri="sip:x", response="R", qop=auth, nc=00000001, cnonce="c""#)
            .expect("parses");
        assert_eq!((c.username.as_str(), c.realm.as_str(), c.qop.as_deref()), ("a\"b", "r,1", Some("auth")));
        for bad in ["", "Basic abc", "Digest", "Digest username=\"unterminated", "Digest username=a", "Digest =,=,="] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(Nonces::new(1).check("zz.zz", "r", 5), Freshness::Forged);
        assert_eq!(Nonces::new(1).check("", "r", 5), Freshness::Forged);
    }
}
