//! The SIP listener: receives datagrams, answers what needs no call (OPTIONS, malformed
//! requests, unknown dialogs), starts a task per new INVITE and routes everything else to the call
//! it belongs to by Call-ID.
//!
//! Owns the SIP socket and the table of live calls; does not own what a call does (see
//! [`super::call`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use hodi_rsocket::admission::{Admission, AdmittedListener};

use super::call::{self, Call, Incoming};
use super::sip::dialog::{Dialog, Route};
use super::sip::message::{self, Message, ParseError, Request};
use super::sip::transport::{self, Transport};
use crate::context::Hodi;

/// The methods Hodi answers outside a dialog.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER";

/// Messages queued for one call before further ones are dropped (UDP peers retransmit).
const CALL_INBOX: usize = 32;

/// A live call as the listener sees it: where its messages go, and which dialog it is.
#[derive(Clone)]
struct Live {
    inbox: mpsc::Sender<Incoming>,
    dialog: Arc<Dialog>,
    /// Where an inbound call came from (None for calls we place), for the per-address cap.
    from: Option<std::net::IpAddr>,
}

type Calls = Arc<Mutex<HashMap<String, Live>>>;

/// The SIP socket and the live calls, shared by the listener and outbound calls.
pub struct Sip {
    pub socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    calls: Calls,
    pub recordings: super::recordings::Recordings,
    pub queues: super::queue::Queues,
    /// The TCP listener's address, when SIP over TCP is on.
    pub tcp: Option<SocketAddr>,
    /// INVITEs refused before any org owned them (see [`Refusals`]).
    pub refusals: Refusals,
    /// When to warn about INVITEs refused for the call limits.
    busy: Mutex<hodi_rsocket::admission::Throttle>,
    /// The org's phones registered here.
    pub registrar: super::registrar::Registrar,
    /// The trunk's TCP connection and Hodi's registration with it.
    pub trunk: super::trunk::Link,
    /// Messages from connections Hodi opened (the trunk's), for the listener's task to handle.
    pub(super) inject: mpsc::Sender<(Vec<u8>, Transport)>,
    /// REGISTERs being handled at once (each a task of its own).
    register_slots: Arc<tokio::sync::Semaphore>,
    /// Conference rooms, by org and name.
    pub conferences: Arc<super::conference::Rooms>,
}

/// REGISTERs handled at once; more wait in the peer's retransmission timer.
const REGISTER_SLOTS: usize = 512;

/// Messages from Hodi's own connections waiting for the listener before their readers wait.
const INJECTED: usize = 256;

/// INVITEs refused before a number's owner is known (unreadable SDP, a number nobody
/// provisioned, a store error): answered statelessly, counted and logged at most every
/// [`LOG_EVERY`], never stored and holding no call slot, so a scanner's flood neither
/// grows the database nor keeps real calls out. Refusals of calls to an org's number
/// (the app rejected it, nobody answered, the caller cancelled) are that org's call records.
#[derive(Debug)]
pub struct Refusals {
    total: std::sync::atomic::AtomicU64,
    log: Mutex<hodi_rsocket::admission::Throttle>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals { total: Default::default(), log: Mutex::new(hodi_rsocket::admission::Throttle::new(LOG_EVERY)) }
    }
}

/// How often refusals a peer can cause at will are logged, at most.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Refusals {
    pub fn count(&self, status: u16, peer: SocketAddr) {
        let total = self.total.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(refused) = self.log.lock().unwrap_or_else(|p| p.into_inner()).hit() {
            info!(refused, total, last_status = status, last_peer = %peer, "INVITEs refused before any org owned them");
        }
    }

    /// Refused since start.
    pub fn total(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Sip {
    /// A new call's inbox, and its dialog as shared with the listener (a call we place learns
    /// the far end's tag from the answer); None when `call_id` is taken or the call limit is
    /// reached.
    pub(super) fn register(
        &self,
        call_id: &str,
        dialog: Dialog,
        from: Option<std::net::IpAddr>,
        voice: &crate::config::Voice,
    ) -> Option<(mpsc::Receiver<Incoming>, Arc<Dialog>)> {
        let mut calls = lock(&self.calls);
        if calls.len() >= voice.max_calls || calls.contains_key(call_id) {
            return None;
        }
        // One source may not take every slot (a caller flooding INVITEs at a real number).
        if from.is_some() && calls.values().filter(|c| c.from == from).count() >= voice.max_calls_per_address {
            return None;
        }
        let (tx, rx) = mpsc::channel(CALL_INBOX);
        let dialog = Arc::new(dialog);
        calls.insert(call_id.to_string(), Live { inbox: tx, dialog: dialog.clone(), from });
        Some((rx, dialog))
    }

    /// Calls in progress.
    pub fn live(&self) -> usize {
        lock(&self.calls).len()
    }

    pub(super) fn unregister(&self, call_id: &str) {
        lock(&self.calls).remove(call_id);
    }
}

/// The voice executor's sockets, bound but not yet served: bound before the shared context
/// exists, so the context can be built holding the executor (see [`super::outbound::Trunk`]).
pub struct Bound {
    pub sip: Arc<Sip>,
    injected: mpsc::Receiver<(Vec<u8>, Transport)>,
    tcp: Option<tokio::net::TcpListener>,
    /// The recordings' HTTP listener, when on.
    pub recordings_http: Option<SocketAddr>,
}

/// Binds SIP over UDP, SIP over TCP when configured, and the recordings' HTTP listener (served
/// until `shutdown`); None when voice is disabled in the config.
pub async fn bind(config: &crate::config::Config, shutdown: &CancellationToken) -> Result<Option<Bound>> {
    let addr = config.voice.sip_udp.trim().to_string();
    if addr.is_empty() {
        return Ok(None);
    }
    let socket = Arc::new(UdpSocket::bind(&addr).await.with_context(|| {
        format!("voice.sip_udp = {addr:?}: cannot listen there (in use, or not an address of this host)")
    })?);
    let local = socket.local_addr()?;
    info!(%local, "SIP listening (udp)");
    let tcp = config.voice.sip_tcp.trim().to_string();
    let tcp = match tcp.is_empty() {
        true => None,
        false => Some(tokio::net::TcpListener::bind(&tcp).await.with_context(|| {
            format!("voice.sip_tcp = {tcp:?}: cannot listen there (in use, or not an address of this host)")
        })?),
    };
    let tcp_local = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    if let Some(local) = tcp_local {
        info!(%local, "SIP listening (tcp)");
    }
    let (recordings, recordings_http) =
        super::recordings::start(&config.data_dir, &config.voice.recordings_http, shutdown.clone()).await?;
    let (inject, injected) = mpsc::channel(INJECTED);
    let sip = Arc::new(Sip {
        socket,
        local,
        calls: Arc::new(Mutex::new(HashMap::new())),
        recordings,
        queues: Default::default(),
        tcp: tcp_local,
        refusals: Refusals::default(),
        busy: Mutex::new(hodi_rsocket::admission::Throttle::new(LOG_EVERY)),
        registrar: super::registrar::Registrar::new(config.voice.max_registrations),
        trunk: Default::default(),
        inject,
        register_slots: Arc::new(tokio::sync::Semaphore::new(REGISTER_SLOTS)),
        conferences: Default::default(),
    });
    Ok(Some(Bound { sip, injected, tcp, recordings_http }))
}

/// Serves what [`bind`] bound until `shutdown`.
pub fn serve(hodi: Arc<Hodi>, bound: Bound, shutdown: CancellationToken) {
    let Bound { sip, tcp, injected, .. } = bound;
    if let (Some(listener), Some(local)) = (tcp, sip.tcp) {
        tokio::spawn(
            accept_tcp(hodi.clone(), sip.clone(), listener, shutdown.clone())
                .instrument(tracing::info_span!("sip_tcp", %local)),
        );
    }
    let local = sip.local;
    tokio::spawn(sweep_registrations(sip.clone(), shutdown.clone()));
    let v = &hodi.config.voice;
    if v.trunk_register && !v.trunk.trim().is_empty() {
        let (weak, sip, shutdown) = (Arc::downgrade(&hodi), sip.clone(), shutdown.clone());
        tokio::spawn(super::trunk::keep_registered(weak, sip, shutdown).instrument(tracing::info_span!("trunk")));
    }
    tokio::spawn(listen(hodi, sip, injected, shutdown).instrument(tracing::info_span!("sip", %local)));
}

/// Expired registrations go within seconds, whether or not anyone dials their users.
async fn sweep_registrations(sip: Arc<Sip>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => sip.registrar.sweep(),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// SIP over TCP: a task per connection, each message handled as a datagram would be, answers
/// going back on the connection.
async fn accept_tcp(hodi: Arc<Hodi>, sip: Arc<Sip>, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    let v = &hodi.config.voice;
    let admission = Admission::new("voice.sip_tcp", v.sip_tcp_max_connections, v.sip_tcp_max_per_address);
    let timeouts = transport::TcpTimeouts {
        idle: std::time::Duration::from_secs(v.sip_tcp_idle_secs.max(1)),
        message: std::time::Duration::from_secs(v.sip_tcp_message_secs.max(1)),
    };
    let mut listener = AdmittedListener::new("voice.sip_tcp", listener, admission);
    while let Some((stream, peer, ticket)) = listener.next(&shutdown).await {
        let (hodi, sip, shutdown) = (hodi.clone(), sip.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _ticket = ticket;
            let serving = transport::serve_tcp(stream, peer, timeouts, |bytes, t| {
                let (hodi, sip) = (hodi.clone(), sip.clone());
                async move { handle(&hodi, &sip, &bytes, t).await }
            });
            tokio::select! {
                _ = serving => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn listen(
    hodi: Arc<Hodi>,
    sip: Arc<Sip>,
    mut injected: mpsc::Receiver<(Vec<u8>, Transport)>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; message::MAX_MESSAGE + 1];
    loop {
        let (n, peer) = tokio::select! {
            Some((bytes, transport)) = injected.recv() => {
                handle(&hodi, &sip, &bytes, transport).await;
                continue;
            }
            r = sip.socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "SIP receive");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let bytes = &buf[..n];
        // Keep-alives (CRLF) carry nothing.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        handle(&hodi, &sip, bytes, Transport::Udp(sip.socket.clone(), peer)).await;
    }
}

/// One message from either transport (or the trunk's TCP connection, see [`super::trunk`]).
async fn handle(hodi: &Arc<Hodi>, sip: &Arc<Sip>, bytes: &[u8], transport: Transport) {
    match message::parse(bytes) {
        Ok(Message::Request(req)) => on_request(hodi, sip, transport, req).await,
        Ok(Message::Response(resp)) => {
            let live = lock(&sip.calls).get(&resp.call_id).cloned();
            match live {
                Some(live) if live.dialog.owns_response(&resp) => {
                    let _ = live.inbox.try_send(Incoming::Response(resp));
                }
                Some(_) => debug!(call_id = %resp.call_id, "a response with a live Call-ID but not our tag; dropped"),
                None => {}
            }
        }
        Err(e) => on_malformed(&transport, bytes, e).await,
    }
}

fn lock(calls: &Calls) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
    calls.lock().unwrap_or_else(|p| p.into_inner())
}

async fn on_request(hodi: &Arc<Hodi>, sip: &Arc<Sip>, transport: Transport, req: Request) {
    let peer = transport.peer();
    let existing = lock(&sip.calls).get(&req.call_id).cloned();
    debug!(method = %req.method, call_id = %req.call_id, known = existing.is_some(), "SIP request");
    if let Some(live) = existing {
        match live.dialog.route(&req) {
            Route::Call => {
                if live.inbox.try_send(Incoming::Request(req)).is_err() {
                    debug!("call inbox full or closed; dropped (the peer retransmits)");
                }
            }
            Route::Refuse(code, reason) => {
                info!(method = %req.method, call_id = %req.call_id, %peer, code, "a request that names a live call but not its dialog");
                transport.send(req.response(code, reason, None, &[], None)).await;
            }
            Route::Drop => {}
        }
        return;
    }
    match req.method.as_str() {
        // Admitted in order, on the listener's task: which of several INVITEs from one source gets
        // the last call slot must not depend on which store lookup finishes first.
        "INVITE" if message::tag(&req.to).is_none() => new_invite(hodi, sip, transport, req).await,
        // Off the listener's task: a REGISTER waits on the store, and the next datagram should
        // not wait for it. Bounded: beyond the slots REGISTERs are dropped (phones send again).
        "REGISTER" => match sip.register_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (hodi, sip) = (hodi.clone(), sip.clone());
                tokio::spawn(async move {
                    super::registrar::on_register(&hodi, &sip.registrar, &transport, &req).await;
                    drop(slot);
                });
            }
            Err(_) => debug!(%peer, "REGISTERs in progress at the limit; dropped (the phone sends it again)"),
        },
        "OPTIONS" => {
            let allow = [("Allow", ALLOW.to_string()), ("Accept", "application/sdp".to_string())];
            transport.send(req.response(200, "OK", Some("hodi"), &allow, None)).await;
        }
        // A stray ACK (for a call already gone) needs no answer.
        "ACK" => {}
        "BYE" | "CANCEL" | "INVITE" => {
            transport.send(req.response(481, "Call/Transaction Does Not Exist", None, &[], None)).await;
        }
        _ => {
            let allow = [("Allow", ALLOW.to_string())];
            transport.send(req.response(405, "Method Not Allowed", None, &allow, None)).await;
        }
    }
}

/// A new INVITE: a registered phone's credentials checked, the number's owner found, a call slot
/// taken, and the call started on a task of its own.
async fn new_invite(hodi: &Arc<Hodi>, sip: &Arc<Sip>, transport: Transport, req: Request) {
    // A phone registered here must prove it is who its From says before it calls.
    let peer = transport.peer();
    // A browser's leg comes from the WebRTC gateway, which checked the page's token.
    let vouched = match &transport {
        Transport::Web(_, _, vouched) => Some(vouched.clone()),
        _ => None,
    };
    let phone = match vouched {
        Some(_) => None,
        None => match super::registrar::caller(hodi, &sip.registrar, &transport, &req).await {
            None => None,
            Some(Some(user)) => Some(user),
            Some(None) => return,
        },
    };
    let admitted = match call::admit(hodi, &req, phone.as_ref()).await {
        // A token is good for its own org's numbers only.
        Ok(a) if vouched.as_ref().is_some_and(|v| v.org_id != a.org_id) => Err((404, "Not Found", Vec::new())),
        other => other,
    };
    let admitted = match admitted {
        Ok(a) => a,
        Err((code, reason, extra)) => {
            sip.refusals.count(code, peer);
            let tag = format!("{:x}", call::rand_id());
            return transport.send(req.response(code, reason, Some(&tag), &extra, None)).await;
        }
    };
    let local_tag = format!("{:x}", call::rand_id());
    let dialog = Dialog::inbound(local_tag.clone(), &req);
    let Some((rx, _)) = sip.register(&req.call_id, dialog, Some(peer.ip()), &hodi.config.voice) else {
        return refuse_busy(sip, &transport, &req).await;
    };
    let call = Call {
        hodi: hodi.clone(),
        sip: sip.clone(),
        transport: transport.clone(),
        local_tag,
        session_id: crate::store::new_id("call_"),
        // Our address on the transport the INVITE came on (Via and Contact of our requests).
        local: if transport.reliable() { sip.tcp.unwrap_or(sip.local) } else { sip.local },
        invite: req,
        started_at: crate::store::now_ms(),
        outcome: Default::default(),
        direction: crate::wire::CustomerEventDirection::Inbound,
        number: admitted.number.clone(),
        sip_user: match &vouched {
            Some(v) if v.cellular => None,
            Some(v) => Some(v.customer.clone()),
            None => phone.map(|u| format!("{}@{}", u.username, u.domain)),
        },
    };
    let call_id = call.invite.call_id.clone();
    let span = tracing::info_span!("call", %call_id, session_id = %call.session_id, %peer);
    let sip = sip.clone();
    tokio::spawn(
        async move {
            call::inbound(call, rx, admitted).await;
            sip.unregister(&call_id);
        }
        .instrument(span),
    );
}

/// 503 with Retry-After for an INVITE over the call limits (logged at most every [`LOG_EVERY`]).
async fn refuse_busy(sip: &Sip, transport: &Transport, req: &Request) {
    if let Some(count) = sip.busy.lock().unwrap_or_else(|p| p.into_inner()).hit() {
        warn!(count, last_peer = %transport.peer(), "call limit reached (in total or for the address); INVITEs refused with 503");
    }
    let extra = [("Retry-After", "30".to_string())];
    transport.send(req.response(503, "Service Unavailable", Some("busy"), &extra, None)).await;
}

/// A request we cannot parse gets 400 when it has enough for a response; anything else is dropped.
async fn on_malformed(transport: &Transport, bytes: &[u8], error: ParseError) {
    debug!(peer = %transport.peer(), %error, "malformed SIP");
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(message::MAX_MESSAGE)]);
    let text = text.trim_start_matches(['\r', '\n']);
    let first = text.lines().next().unwrap_or_default();
    if first.starts_with("SIP/") || !first.ends_with("SIP/2.0") {
        return; // a response, or not SIP at all: nobody to answer
    }
    // Echo the headers a response must carry, as far as they can be found line by line.
    let mut out =
        format!("SIP/2.0 400 Bad Request\r\nWarning: 399 hodi \"{}\"\r\n", error.to_string().replace('"', "'"));
    let mut has_via = false;
    for line in text.lines().skip(1) {
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if matches!(name.as_str(), "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq") {
            has_via |= name == "via" || name == "v";
            out.push_str(line.trim_end());
            out.push_str("\r\n");
        }
    }
    if has_via {
        out.push_str("Content-Length: 0\r\n\r\n");
        transport.send(out.into_bytes()).await;
    }
}
