//! The way to the SIP trunk (`voice.trunk`): its address, the transport Hodi uses to reach it
//! (UDP from the SIP socket, or one TCP connection kept open and redialled when it drops), the
//! digest credentials it challenges for, and Hodi's registration with it when the trunk wants
//! one (REGISTER refreshed at half its lifetime, retried with backoff when refused).
//!
//! Owns the trunk connection and registration; calls placed through the trunk are
//! [`super::outbound`]'s, and what arrives on the TCP connection is handled by
//! [`super::listener`] like anything else.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::listener::Sip;
use super::registrar::digest;
use super::sip::message::{self, Response};
use super::sip::transport::{self, Transport};
use crate::config::TrunkTransport;
use crate::context::Hodi;

/// How long dialling the trunk over TCP may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The trunk as the voice executor reaches it.
#[derive(Default)]
pub struct Link {
    /// The TCP connection to the trunk, while it is up.
    tcp: Mutex<Option<Transport>>,
    /// Whether Hodi's registration with the trunk holds now.
    registered: std::sync::atomic::AtomicBool,
}

/// Credentials for a trunk's challenge: user name and password.
pub struct Credentials {
    pub username: String,
    pub password: crate::config::providers::Secret,
}

impl Link {
    /// Whether the trunk last accepted Hodi's REGISTER (and it has not expired).
    pub fn registered(&self) -> bool {
        self.registered.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_registered(&self, yes: bool) {
        self.registered.store(yes, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::sip_trunk_registered(yes);
    }
}

/// The trunk's address and the transport to send to it on: None when no trunk is configured or
/// it cannot be reached (logged).
pub async fn reach(hodi: &Arc<Hodi>, sip: &Arc<Sip>) -> Option<(SocketAddr, Transport)> {
    let v = &hodi.config.voice;
    let trunk = v.trunk.trim();
    let Some(addr) = tokio::net::lookup_host(trunk).await.ok().and_then(|mut a| a.next()) else {
        warn!(trunk = %v.trunk, "the voice trunk is not set or does not resolve");
        return None;
    };
    match v.trunk_transport {
        TrunkTransport::Udp => Some((addr, Transport::Udp(sip.socket.clone(), addr))),
        TrunkTransport::Tcp => {
            let mut held = sip.trunk.tcp.lock().await;
            if let Some(Transport::Tcp(tx, _)) = held.as_ref() {
                if !tx.is_closed() {
                    return held.clone().map(|t| (addr, t));
                }
            }
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    warn!(%addr, error = %e, "connecting to the voice trunk over TCP");
                    return None;
                }
                Err(_) => {
                    warn!(%addr, "connecting to the voice trunk over TCP timed out");
                    return None;
                }
            };
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let inject = sip.inject.clone();
            let timeouts = transport::TcpTimeouts {
                idle: Duration::from_secs(v.sip_tcp_idle_secs.max(1)),
                message: Duration::from_secs(v.sip_tcp_message_secs.max(1)),
            };
            tokio::spawn(async move {
                let on_ready = |t| {
                    let _ = ready_tx.send(t);
                };
                // Handled by the listener's task, like a datagram (waiting when it is behind).
                let on_message = |bytes: Vec<u8>, t| {
                    let inject = inject.clone();
                    async move {
                        let _ = inject.send((bytes, t)).await;
                    }
                };
                transport::serve_tcp_with(stream, addr, timeouts, on_ready, on_message).await;
                debug!(%addr, "the TCP connection to the trunk closed");
            });
            let t = ready_rx.await.ok()?;
            info!(%addr, "connected to the voice trunk over TCP");
            *held = Some(t.clone());
            Some((addr, t))
        }
    }
}

/// The trunk's credentials, when configured (a password that cannot be read is logged).
pub fn credentials(hodi: &Hodi) -> Option<Credentials> {
    let v = &hodi.config.voice;
    if v.trunk_username.trim().is_empty() {
        return None;
    }
    match v.trunk_password() {
        Ok(password) => Some(Credentials { username: v.trunk_username.trim().to_string(), password }),
        Err(e) => {
            warn!(error = %e, "the voice trunk's password");
            None
        }
    }
}

/// The header answering a trunk's 401 (`Authorization`) or 407 (`Proxy-Authorization`) to
/// `method` on `uri`: None without credentials or a challenge we can answer.
pub fn answer(hodi: &Hodi, challenge: &Response, method: &str, uri: &str) -> Option<(&'static str, String)> {
    let creds = credentials(hodi)?;
    let Some(c) = digest::read_challenge(challenge.challenges.iter().map(String::as_str)) else {
        warn!(code = challenge.code, "the trunk's challenge is not a digest Hodi can answer");
        return None;
    };
    let header = if challenge.code == 407 { "Proxy-Authorization" } else { "Authorization" };
    let cnonce = format!("{:x}", super::rand_id());
    Some((header, c.answer(&creds.username, creds.password.expose(), method, uri, &cnonce, 1)))
}

/// Keeps Hodi registered with the trunk (when `voice.trunk_register`) until `shutdown`.
pub async fn keep_registered(hodi: Weak<Hodi>, sip: Arc<Sip>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(5);
    loop {
        let Some(hodi) = hodi.upgrade() else { return };
        let next = match register_once(&hodi, &sip).await {
            Ok(lifetime) => {
                sip.trunk.set_registered(true);
                backoff = Duration::from_secs(5);
                info!(lifetime_secs = lifetime.as_secs(), "registered with the voice trunk");
                (lifetime / 2).max(Duration::from_secs(5))
            }
            Err(why) => {
                sip.trunk.set_registered(false);
                warn!(%why, retry_secs = backoff.as_secs(), "registering with the voice trunk");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                wait
            }
        };
        drop(hodi);
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One REGISTER transaction with the trunk (answering one challenge): the lifetime granted.
async fn register_once(hodi: &Arc<Hodi>, sip: &Arc<Sip>) -> Result<Duration, String> {
    let v = &hodi.config.voice;
    let (addr, transport) = reach(hodi, sip).await.ok_or("the trunk cannot be reached")?;
    let user = v.trunk_username.trim();
    let host = v.trunk.trim();
    let call_id = format!("{:x}@hodi-trunk", super::rand_id());
    let tag = format!("{:x}", super::rand_id());
    let (mut inbox, _) = sip
        .register(&call_id, super::sip::dialog::Dialog::outbound(tag.clone()), None, v)
        .ok_or("no call slot for the registration")?;
    let local = match &transport {
        Transport::Tcp(..) => sip.tcp.unwrap_or(sip.local),
        Transport::Udp(..) | Transport::Web(..) => sip.local,
    };
    let uri = format!("sip:{host}");
    let mut auth: Option<(&str, String)> = None;
    let result = async {
        for cseq in 1..=2u32 {
            let branch = format!("z9hG4bK{:x}", super::rand_id());
            let auth_line = auth.as_ref().map(|(h, v)| format!("{h}: {v}\r\n")).unwrap_or_default();
            let request = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{} {local};branch={branch}\r\nMax-Forwards: 70\r\n\
                 From: <sip:{user}@{host}>;tag={tag}\r\nTo: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: {}\r\n{auth_line}\
                 User-Agent: Hodi\r\nContent-Length: 0\r\n\r\n",
                transport.name(),
                v.trunk_register_secs.max(60)
            )
            .into_bytes();
            let resp = transact(&transport, &mut inbox, request).await.ok_or("the trunk did not answer")?;
            match resp.code {
                200..=299 => return Ok(granted(&resp, v.trunk_register_secs.max(60))),
                401 | 407 if cseq == 1 => {
                    auth =
                        Some(answer(hodi, &resp, "REGISTER", &uri).ok_or("challenged, with no credentials to answer")?);
                }
                code => return Err(format!("the trunk answered {code}")),
            }
        }
        Err("challenged again after answering".to_string())
    }
    .await;
    sip.unregister(&call_id);
    debug!(%addr, ok = result.is_ok(), "trunk REGISTER");
    result
}

/// Sends a request and waits for its final response (retransmitted over UDP per Timer E).
async fn transact(
    transport: &Transport,
    inbox: &mut tokio::sync::mpsc::Receiver<super::call::Incoming>,
    request: Vec<u8>,
) -> Option<Response> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(32);
    let mut wait = Duration::from_millis(500);
    loop {
        transport.send(request.clone()).await;
        let until = match transport.reliable() {
            true => deadline,
            false => (tokio::time::Instant::now() + wait).min(deadline),
        };
        loop {
            match tokio::time::timeout_at(until, inbox.recv()).await {
                Ok(Some(super::call::Incoming::Response(r))) if r.code >= 200 => return Some(r),
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) => break,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        wait = (wait * 2).min(Duration::from_secs(4));
    }
}

/// The lifetime a 200 to REGISTER grants: the `expires` of our Contact, else `asked`.
fn granted(resp: &Response, asked: u64) -> Duration {
    let secs = resp
        .contact
        .as_deref()
        .and_then(|c| message::param(c.rsplit_once('>').map_or(c, |(_, p)| p), "expires"))
        .and_then(|e| e.parse::<u64>().ok())
        .unwrap_or(asked);
    Duration::from_secs(secs.clamp(10, 24 * 3600))
}
