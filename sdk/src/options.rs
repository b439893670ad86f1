//! What a client needs to connect: where, who, and how patiently.

use std::time::Duration;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// RSocket over plain TCP with the 3-byte length prefix, `host:port` (Hodi's `listen.tcp`).
    Tcp(String),
    /// RSocket over WebSocket, a `ws://host:port/` URL (Hodi's `listen.ws`).
    WebSocket(String),
    /// RSocket over TLS with the length prefix, `host:port` (Hodi's `listen.tls`, where the
    /// Elarian SDKs connect). The certificate is checked against [`Options::trust`] for `host`.
    Tls(String),
    /// RSocket over WebSocket with TLS, a `wss://host:port/` URL (Hodi's `listen.wss`).
    SecureWebSocket(String),
}

impl Endpoint {
    /// `tcp://host:port`, `host:port`, `tls://host:port`, `ws://…` or `wss://…`.
    pub fn parse(s: &str) -> Result<Endpoint, crate::Error> {
        if s.starts_with("ws://") {
            Ok(Endpoint::WebSocket(s.to_string()))
        } else if s.starts_with("wss://") {
            Ok(Endpoint::SecureWebSocket(s.to_string()))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            Ok(Endpoint::Tcp(rest.to_string()))
        } else if let Some(rest) = s.strip_prefix("tls://") {
            Ok(Endpoint::Tls(rest.to_string()))
        } else if s.contains(':') && !s.contains('/') {
            Ok(Endpoint::Tcp(s.to_string()))
        } else {
            Err(crate::Error::Invalid(format!(
                "{s}: expected tcp://host:port, host:port, tls://host:port, ws://host:port or wss://host:port"
            )))
        }
    }

    /// Where to dial, `host:port`.
    pub(crate) fn address(&self) -> Result<String, crate::Error> {
        let from_url = |url: &str, scheme: &str, port: u16| {
            let rest = url.trim_start_matches(scheme);
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                return Err(crate::Error::Invalid(format!("{url}: no host")));
            }
            let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            Ok(if has_port { authority.to_string() } else { format!("{authority}:{port}") })
        };
        match self {
            Endpoint::Tcp(addr) | Endpoint::Tls(addr) => Ok(addr.clone()),
            Endpoint::WebSocket(url) => from_url(url, "ws://", 80),
            Endpoint::SecureWebSocket(url) => from_url(url, "wss://", 443),
        }
    }

    /// The host the certificate must name, for TLS endpoints.
    pub(crate) fn tls_host(&self) -> Result<Option<String>, crate::Error> {
        if !matches!(self, Endpoint::Tls(_) | Endpoint::SecureWebSocket(_)) {
            return Ok(None);
        }
        let address = self.address()?;
        let host = match address.rsplit_once(':') {
            Some((host, _)) => host,
            None => address.as_str(),
        };
        Ok(Some(host.trim_start_matches('[').trim_end_matches(']').to_string()))
    }
}

/// Which certificates a TLS endpoint may present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The public web PKI (Mozilla's roots, built in): a server with a real certificate.
    #[default]
    PublicRoots,
    /// Only certificates issued by (or equal to) these PEM certificates: a private CA, or Hodi's
    /// self-signed dev certificate (`.hodi/tls/cert.pem`).
    Pem(Vec<u8>),
}

impl Trust {
    /// Trusts the PEM certificates in `path`.
    pub fn pem_file(path: impl AsRef<std::path::Path>) -> Result<Trust, crate::Error> {
        let path = path.as_ref();
        std::fs::read(path)
            .map(Trust::Pem)
            .map_err(|e| crate::Error::Invalid(format!("reading certificates from {}: {e}", path.display())))
    }
}

/// How the client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    ApiKey(String),
    /// A token from [`crate::Elarian::generate_auth_token`], for apps that must not hold the key.
    AuthToken(String),
}

/// Reconnection delays: `initial`, doubled after each failure up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

impl Backoff {
    /// The wait after one that lasted `delay` and ended in another failure.
    pub fn after(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max)
    }
}

/// Everything [`crate::Elarian::connect`] and [`crate::Simulator::connect`] need.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: Endpoint,
    pub org_id: String,
    pub app_id: String,
    pub credentials: Credentials,
    /// How long a command waits for a connection while the client (re)connects.
    pub command_timeout: Duration,
    pub backoff: Backoff,
    /// Notifications the server may send ahead of the consumer (REQUEST_N window). Keep it small:
    /// each waits in memory, and the server re-sends any not answered within its reply timeout.
    pub notification_window: u32,
    /// Only send commands: no notification subscription (the Elarian `simplexMode`).
    pub simplex: bool,
    /// Which certificates a TLS endpoint may present (public roots by default).
    pub trust: Trust,
    /// How long a dropped connection may take to come back and resume its session (RSocket
    /// RESUME: nothing lost, nothing run twice); zero turns resumption off, and a drop starts a
    /// new session as before. The server must allow it too (`rsocket.resume_window_secs`).
    pub resume_window: Duration,
}

impl Options {
    pub fn new(
        endpoint: Endpoint,
        org_id: impl Into<String>,
        app_id: impl Into<String>,
        credentials: Credentials,
    ) -> Options {
        Options {
            endpoint,
            org_id: org_id.into(),
            app_id: app_id.into(),
            credentials,
            command_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            notification_window: 4,
            simplex: false,
            trust: Trust::default(),
            resume_window: Duration::from_secs(30),
        }
    }

    /// Options from the environment, else from what a local `hodi serve` wrote in its data
    /// directory (`HODI_SDK_DATA_DIR`, default `.hodi`): the endpoint from `HODI_SDK_ENDPOINT`,
    /// else the plain TCP listener in `listening.toml`, else `127.0.0.1:8070`; credentials from
    /// `HODI_SDK_ORG`, `HODI_SDK_APP` and `HODI_SDK_API_KEY`, else `dev-credentials.toml`
    /// (`HODI_SDK_DEV_CREDENTIALS` names another file); for a TLS endpoint, `HODI_SDK_CA` names
    /// a PEM file to trust (e.g. `.hodi/tls/cert.pem`) instead of the public roots. What the
    /// examples and `hodi-simulator` use.
    pub fn from_env() -> Result<Options, crate::Error> {
        let (org, app, key) = match (env("HODI_SDK_ORG"), env("HODI_SDK_APP"), env("HODI_SDK_API_KEY")) {
            (Some(o), Some(a), Some(k)) => (o, a, k),
            _ => {
                let path = env("HODI_SDK_DEV_CREDENTIALS")
                    .unwrap_or_else(|| local_dir().join("dev-credentials.toml").display().to_string());
                let dev = DevCredentials::read(&path)?;
                (dev.org_id, dev.app_id, dev.api_key)
            }
        };
        let mut options = Options::new(local_endpoint()?, org, app, Credentials::ApiKey(key));
        if let Some(ca) = env("HODI_SDK_CA") {
            options.trust = Trust::pem_file(ca)?;
        }
        Ok(options)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where a local `hodi serve` keeps its files: `HODI_SDK_DATA_DIR`, default `.hodi`.
fn local_dir() -> std::path::PathBuf {
    env("HODI_SDK_DATA_DIR").unwrap_or_else(|| ".hodi".into()).into()
}

/// The endpoint of a local server: `HODI_SDK_ENDPOINT`, else the plain TCP listener its
/// `listening.toml` records (ports chosen by the OS included), else `127.0.0.1:8070`.
pub fn local_endpoint() -> Result<Endpoint, crate::Error> {
    if let Some(e) = env("HODI_SDK_ENDPOINT") {
        return Endpoint::parse(&e);
    }
    let path = local_dir().join("listening.toml");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))?;
        if let Some(tcp) = table.get("tcp").and_then(toml::Value::as_str) {
            return Endpoint::parse(tcp);
        }
    }
    Endpoint::parse("127.0.0.1:8070")
}

/// The dev tenant file `hodi serve` writes on first start.
#[derive(serde::Deserialize)]
struct DevCredentials {
    org_id: String,
    app_id: String,
    api_key: String,
}

impl DevCredentials {
    fn read(path: &str) -> Result<DevCredentials, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::Error::Invalid(format!(
                "set HODI_SDK_ORG, HODI_SDK_APP and HODI_SDK_API_KEY, or run `hodi serve` here so {path} exists ({e})"
            ))
        })?;
        toml::from_str(&text).map_err(|e| crate::Error::Invalid(format!("{path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_waits_double_up_to_the_cap() {
        let backoff = Backoff::default();
        let mut waits = vec![backoff.initial];
        for _ in 0..7 {
            waits.push(backoff.after(waits[waits.len() - 1]));
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(backoff.after(Duration::MAX), backoff.max, "no overflow");
    }

    #[test]
    fn endpoints_parse_and_bad_ones_say_why() {
        assert_eq!(Endpoint::parse("127.0.0.1:8070").ok(), Some(Endpoint::Tcp("127.0.0.1:8070".into())));
        assert_eq!(Endpoint::parse("tcp://localhost:8070").ok(), Some(Endpoint::Tcp("localhost:8070".into())));
        let ws = Endpoint::parse("ws://localhost:8080/").ok();
        assert_eq!(ws.as_ref().and_then(|e| e.address().ok()).as_deref(), Some("localhost:8080"));
        assert_eq!(
            Endpoint::parse("ws://example.test").ok().and_then(|e| e.address().ok()).as_deref(),
            Some("example.test:80")
        );
        let tls = Endpoint::parse("tls://localhost:8443").expect("tls");
        assert_eq!(
            (tls.address().ok().as_deref(), tls.tls_host().ok().flatten().as_deref()),
            (Some("localhost:8443"), Some("localhost"))
        );
        let wss = Endpoint::parse("wss://example.test/").expect("wss");
        assert_eq!(wss.address().ok().as_deref(), Some("example.test:443"));
        let v6 = Endpoint::Tls("[::1]:8443".into());
        assert_eq!(v6.tls_host().ok().flatten().as_deref(), Some("::1"));
        assert_eq!(Endpoint::Tcp("x:1".into()).tls_host().ok().flatten(), None);
        let nowhere = Endpoint::parse("wss:///").expect("parsed").address();
        assert!(matches!(nowhere, Err(crate::Error::Invalid(m)) if m.contains("no host")));
        for (bad, why) in [("localhost", "expected"), ("http://x:1/", "expected")] {
            match Endpoint::parse(bad) {
                Err(crate::Error::Invalid(m)) => assert!(m.contains(why), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_dev_credentials_say_what_to_set() {
        match DevCredentials::read("/nonexistent/dev-credentials.toml") {
            Err(crate::Error::Invalid(m)) => assert!(m.contains("HODI_SDK_API_KEY") && m.contains("hodi serve"), "{m}"),
            other => panic!("{:?}", other.map(|d| d.org_id)),
        }
    }
}
