//! What a client needs to connect: where, who, and how patiently.

use std::time::Duration;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// RSocket over plain TCP with the 3-byte length prefix, `host:port` (Hodi's `listen.tcp`).
    Tcp(String),
    /// RSocket over WebSocket, a `ws://host:port/` URL (Hodi's `listen.ws`).
    WebSocket(String),
}

impl Endpoint {
    /// `tcp://host:port`, `host:port` or `ws://…`.
    pub fn parse(s: &str) -> Result<Endpoint, crate::Error> {
        if s.starts_with("ws://") {
            Ok(Endpoint::WebSocket(s.to_string()))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            Ok(Endpoint::Tcp(rest.to_string()))
        } else if s.starts_with("wss://") || s.starts_with("tls://") {
            Err(crate::Error::Invalid(format!(
                "{s}: TLS endpoints are not supported by hodi-sdk yet; use tcp:// or ws://"
            )))
        } else if s.contains(':') && !s.contains('/') {
            Ok(Endpoint::Tcp(s.to_string()))
        } else {
            Err(crate::Error::Invalid(format!("{s}: expected tcp://host:port, host:port or ws://host:port")))
        }
    }

    pub(crate) fn address(&self) -> Result<String, crate::Error> {
        match self {
            Endpoint::Tcp(addr) => Ok(addr.clone()),
            Endpoint::WebSocket(url) => {
                let rest = url.trim_start_matches("ws://");
                let authority = rest.split('/').next().unwrap_or_default();
                if authority.is_empty() {
                    return Err(crate::Error::Invalid(format!("{url}: no host")));
                }
                Ok(if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") })
            }
        }
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
        }
    }

    /// Options from the environment, else from what a local `hodi serve` wrote in its data
    /// directory (`HODI_SDK_DATA_DIR`, default `.hodi`): the endpoint from `HODI_SDK_ENDPOINT`,
    /// else the plain TCP listener in `listening.toml`, else `127.0.0.1:8070`; credentials from
    /// `HODI_SDK_ORG`, `HODI_SDK_APP` and `HODI_SDK_API_KEY`, else `dev-credentials.toml`
    /// (`HODI_SDK_DEV_CREDENTIALS` names another file). What the examples and `hodi-simulator` use.
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
        Ok(Options::new(local_endpoint()?, org, app, Credentials::ApiKey(key)))
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
    fn endpoints_parse_and_unsupported_ones_say_why() {
        assert_eq!(Endpoint::parse("127.0.0.1:8070").ok(), Some(Endpoint::Tcp("127.0.0.1:8070".into())));
        assert_eq!(Endpoint::parse("tcp://localhost:8070").ok(), Some(Endpoint::Tcp("localhost:8070".into())));
        let ws = Endpoint::parse("ws://localhost:8080/").ok();
        assert_eq!(ws.as_ref().and_then(|e| e.address().ok()).as_deref(), Some("localhost:8080"));
        assert_eq!(
            Endpoint::parse("ws://example.test").ok().and_then(|e| e.address().ok()).as_deref(),
            Some("example.test:80")
        );
        for (bad, why) in
            [("wss://x:8444", "TLS"), ("tls://x:8443", "TLS"), ("localhost", "expected"), ("http://x:1/", "expected")]
        {
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
