//! One call leg's RTP stream: sending audio paced at 20 ms, and a receiving task that keeps the
//! statistics and turns telephone events into digits.
//!
//! Owns the leg's RTP socket; does not own what to play or when (see [`crate::voice::call`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::audio::FRAME;
use super::g711;
use super::rtp::{Packet, Receiver};
use crate::voice::sdp::{Codec, Media};

/// Digits waiting to be read before older ones are dropped (a caller mashing keys).
const DIGIT_BUFFER: usize = 64;

/// Ports tried in `voice.rtp_ports` before a stream gives up (the range is busy).
const BIND_ATTEMPTS: usize = 64;

/// Where and how RTP sockets are opened (from the `[voice]` config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub ip: std::net::IpAddr,
    /// Even ports from this range (RTP's convention), or any port when None.
    pub ports: Option<(u16, u16)>,
    /// How long media goes to the SDP's address before the far end has sent any (see [`Far`]).
    pub unlatched: Duration,
}

impl From<&crate::config::Voice> for Settings {
    fn from(v: &crate::config::Voice) -> Settings {
        Settings { ip: v.rtp_ip, ports: v.rtp_ports.0, unlatched: Duration::from_secs(v.rtp_unlatched_secs) }
    }
}

/// The far end of a leg: what its SDP said, and where its media really comes from.
///
/// Symmetric RTP: the first valid RTP packet latches the leg to its source address (NATs rewrite
/// what the SDP says), and from then on media goes there and packets from anywhere else are
/// ignored (nobody else can inject audio or digits). Until then media goes to the SDP's address,
/// for at most [`Settings::unlatched`]: an INVITE naming somebody else's address cannot make
/// Hodi stream at it for longer. A new SDP (re-INVITE) unlatches.
#[derive(Debug, Clone, Copy)]
struct Far {
    media: Media,
    latched: Option<SocketAddr>,
    /// When media first went to the SDP's address (unlatched); None: not yet.
    since: Option<tokio::time::Instant>,
    unlatched: Duration,
}

impl Far {
    /// Where media goes now; None on hold or when an unlatched far end stayed silent too long
    /// (counted from the first packet sent, not from the answer: a prompt may take a while).
    fn target(&mut self) -> Option<SocketAddr> {
        if self.media.on_hold {
            return None;
        }
        match self.latched {
            Some(a) => Some(a),
            None if self.since.get_or_insert_with(tokio::time::Instant::now).elapsed() < self.unlatched => {
                Some(self.media.remote)
            }
            None => None,
        }
    }

    /// Whether a valid packet from `source` belongs to this leg (latching it if it is the first).
    fn accept(&mut self, source: SocketAddr) -> bool {
        match self.latched {
            Some(a) => a == source,
            None => {
                self.latched = Some(source);
                true
            }
        }
    }
}

type Shared = Arc<Mutex<Far>>;

fn far(shared: &Shared) -> std::sync::MutexGuard<'_, Far> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// How late packets leave against their 20 ms schedule, over every stream in the process (for
/// `hodi-bench calls`): a histogram in 1 ms buckets, the last one "100 ms or more".
pub struct SendTiming {
    buckets: [std::sync::atomic::AtomicU64; 101],
}

pub static SEND_TIMING: SendTiming = SendTiming { buckets: [const { std::sync::atomic::AtomicU64::new(0) }; 101] };

impl SendTiming {
    pub(crate) fn record(&self, late: Duration) {
        let i = (late.as_millis() as usize).min(100);
        self.buckets[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The histogram so far (packets per 1 ms of lateness).
    pub fn snapshot(&self) -> [u64; 101] {
        std::array::from_fn(|i| self.buckets[i].load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The leg's statistics, shared between its sender, its receiver and its RTCP task, and with the
/// call (for its record).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// The round trip RTCP measured last (None: the far end sent no report echoing ours).
    pub rtt_ms: Option<f64>,
    /// What the far end's reports say of the audio it receives from us: share lost, and jitter.
    pub far_loss: Option<f64>,
    pub far_jitter_ms: Option<f64>,
    /// For our reports: the source heard and its extended highest sequence number, our RTP
    /// timestamp now, and the far end's last SR (its NTP middle bits, when it arrived).
    far_ssrc: Option<u32>,
    /// The source the leg sends now: its own while Hodi plays, the other leg's while bridged.
    sent_ssrc: Option<u32>,
    highest: u32,
    rtp_timestamp: u32,
    last_sr: Option<(u32, std::time::Instant)>,
}

impl Stats {
    /// The conditions the customer's audio went through, for a quality score: the far end's own
    /// view of what we sent when its reports gave one, else what we received.
    pub fn conditions(&self) -> super::quality::Conditions {
        let ours = self.lost as f64 / (self.received + self.lost).max(1) as f64;
        super::quality::Conditions {
            loss: self.far_loss.map_or(ours, |f| f.max(ours)),
            jitter_ms: self.far_jitter_ms.map_or(self.jitter_ms, |f| f.max(self.jitter_ms)),
            rtt_ms: self.rtt_ms,
        }
    }

    /// Whether anything was heard or sent (a score of a silent leg means nothing).
    pub fn has_audio(&self) -> bool {
        self.received > 0 || self.sent > 0
    }
}

/// Audio being recorded, placed by arrival time so both directions line up (a session
/// recording mixes what the customer said with what Hodi played).
///
/// Within one source, consecutive frames are laid end to end while their arrival stays within
/// [`RECORDING_SLACK`] of that: a frame a busy task sends or reads a few milliseconds late must
/// not overlap the one before (a tone would jump phase and smear). A real gap (silence
/// suppression, hold, a stall) beyond the slack places the frame by arrival again.
#[derive(Debug)]
struct Recorder {
    start: tokio::time::Instant,
    max: usize,
    samples: Vec<i16>,
    /// The last time the customer's audio was above the silence threshold.
    last_voice: tokio::time::Instant,
    /// Where each source's next frame goes when it comes on time.
    next: [Option<usize>; 3],
}

/// Whose audio a frame is: ours (sent), the leg's far end (received), or the bridged leg's far
/// end (relayed into this leg's session recording).
#[derive(Debug, Clone, Copy)]
enum Source {
    Sent = 0,
    Received = 1,
    Bridged = 2,
}

/// How far a frame's arrival may drift from where its source's previous frame ended before it is
/// placed by arrival instead (in samples: 60 ms).
const RECORDING_SLACK: usize = 480;

impl Recorder {
    fn new(max: Duration) -> Recorder {
        let now = tokio::time::Instant::now();
        Recorder {
            start: now,
            max: (max.as_millis() as usize).saturating_mul(8),
            samples: Vec::new(),
            last_voice: now,
            next: [None; 3],
        }
    }

    fn add(&mut self, frame: &[i16], at: tokio::time::Instant, source: Source) {
        let arrival = (at.saturating_duration_since(self.start).as_micros() / 125) as usize;
        let pos = match self.next[source as usize] {
            Some(next) if next.abs_diff(arrival) <= RECORDING_SLACK => next,
            _ => arrival,
        };
        self.next[source as usize] = Some(pos + frame.len());
        let end = (pos + frame.len()).min(self.max);
        if pos >= end {
            return;
        }
        if self.samples.len() < end {
            self.samples.resize(end, 0);
        }
        for (slot, s) in self.samples[pos..end].iter_mut().zip(frame) {
            *slot = slot.saturating_add(*s);
        }
    }
}

/// Where a bridged stream relays what it receives: the other leg's socket and far end, and the
/// other leg's recorders when the bridge is recorded.
struct Relay {
    socket: Arc<UdpSocket>,
    remote: Shared,
    record_into: Option<Arc<Mutex<Recorders>>>,
    /// The other leg's statistics: what is relayed onto it is what it sends (for its RTCP).
    stats: Arc<Mutex<Stats>>,
}

/// Where a leg in a conference puts what it hears from its far end: decoded 20 ms frames for the
/// room's mixer. At most [`INLET_FRAMES`] wait; beyond, the oldest goes (a mixer that fell behind
/// must not make the room lag behind the speakers).
#[derive(Debug, Default)]
pub struct Inlet {
    frames: std::collections::VecDeque<Vec<i16>>,
}

/// Frames an [`Inlet`] holds: 60 ms, enough to absorb the jitter between a leg's packets and the
/// mixer's tick.
pub const INLET_FRAMES: usize = 3;

impl Inlet {
    pub fn push(&mut self, frame: &[i16]) {
        if self.frames.len() >= INLET_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back(frame.to_vec());
    }

    pub fn pop(&mut self) -> Option<Vec<i16>> {
        self.frames.pop_front()
    }
}

pub type SharedInlet = Arc<Mutex<Inlet>>;

#[derive(Debug, Default)]
struct Recorders {
    /// getRecording: the customer only.
    message: Option<Recorder>,
    /// recordSession: both directions.
    session: Option<Recorder>,
}

/// How a prompt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Played {
    Completed,
    /// A key was pressed and the prompt allowed barge-in; the key is returned, not consumed.
    Interrupted(char),
    /// The stream was closed (the call ended).
    Stopped,
}

/// A handle on a stream that another task owns or that is busy playing: signalling changes the
/// far end (re-INVITE) or stops it (hang-up), a dial or a dequeue bridges it.
#[derive(Clone)]
pub struct End {
    socket: Arc<UdpSocket>,
    remote: Shared,
    recorders: Arc<Mutex<Recorders>>,
    relay: Arc<Mutex<Option<Relay>>>,
    stop: CancellationToken,
    stats: Arc<Mutex<Stats>>,
    mix: Arc<Mutex<Option<SharedInlet>>>,
}

impl End {
    /// The far end moved, changed codec, or put us on hold (re-INVITE).
    pub fn update(&self, media: Media) {
        let mut far = far(&self.remote);
        far.media = media;
        far.latched = None;
        far.since = None;
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Relays each end's incoming RTP to the other; with `record`, what `b` receives also goes
    /// into `a`'s session recording.
    pub fn bridge(a: &End, b: &End, record: bool) {
        *b.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(Relay {
            socket: a.socket.clone(),
            remote: a.remote.clone(),
            record_into: record.then(|| a.recorders.clone()),
            stats: a.stats.clone(),
        });
        *a.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(Relay {
            socket: b.socket.clone(),
            remote: b.remote.clone(),
            record_into: None,
            stats: b.stats.clone(),
        });
    }

    pub fn unbridge(a: &End, b: &End) {
        *a.relay.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *b.relay.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Resolves when this end's call has ended.
    pub async fn wait_stopped(&self) {
        self.stop.cancelled().await
    }

    pub fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// One leg's RTP.
pub struct Stream {
    socket: Arc<UdpSocket>,
    remote: Shared,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    digits: mpsc::Receiver<char>,
    /// A key read during a prompt with barge-in, handed to the next digit reader.
    pending: Option<char>,
    stats: Arc<Mutex<Stats>>,
    stop: CancellationToken,
    recorders: Arc<Mutex<Recorders>>,
    relay: Arc<Mutex<Option<Relay>>>,
    /// The conference inlet what the far end says goes to, while the leg is in a room.
    mix: Arc<Mutex<Option<SharedInlet>>>,
}

impl Stream {
    /// Binds a socket as `settings` say for a leg whose far end is `remote`.
    pub async fn open(settings: &Settings, remote: Media) -> std::io::Result<Stream> {
        let (socket, rtcp) = bind(settings).await?;
        let socket = Arc::new(socket);
        let (tx, rx) = mpsc::channel(DIGIT_BUFFER);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = CancellationToken::new();
        let recorders = Arc::new(Mutex::new(Recorders::default()));
        let relay = Arc::new(Mutex::new(None));
        let remote =
            Arc::new(Mutex::new(Far { media: remote, latched: None, since: None, unlatched: settings.unlatched }));
        let ssrc = crate::voice::rand_id() as u32;
        let reports = Arc::new(Mutex::new(Reports::default()));
        if let Some(rtcp) = rtcp {
            tokio::spawn(rtcp_task(rtcp, ssrc, remote.clone(), stats.clone(), reports.clone(), stop.clone()));
        }
        let stream = Stream {
            socket,
            remote,
            ssrc,
            sequence: crate::voice::rand_id() as u16,
            timestamp: crate::voice::rand_id() as u32,
            digits: rx,
            pending: None,
            stats,
            stop,
            recorders,
            relay,
            mix: Arc::default(),
        };
        tokio::spawn(receive(stream.end(), tx, reports));
        Ok(stream)
    }

    pub fn local(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn remote(&self) -> Media {
        far(&self.remote).media
    }

    fn recorders(&self) -> std::sync::MutexGuard<'_, Recorders> {
        self.recorders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording what the customer says, up to `max`.
    pub fn start_recording(&self, max: Duration) {
        self.recorders().message = Some(Recorder::new(max));
    }

    /// Stops the recording; its samples.
    pub fn take_recording(&self) -> Vec<i16> {
        self.recorders().message.take().map(|r| r.samples).unwrap_or_default()
    }

    /// How long since the customer last spoke during the recording (or since it started).
    pub fn recording_silence(&self) -> Duration {
        self.recorders().message.as_ref().map_or(Duration::ZERO, |r| r.last_voice.elapsed())
    }

    /// How long the recording has run.
    pub fn recording_length(&self) -> Duration {
        self.recorders().message.as_ref().map_or(Duration::ZERO, |r| r.start.elapsed())
    }

    /// Starts recording the whole call (both directions), up to `max`.
    pub fn start_session_recording(&self, max: Duration) {
        let mut r = self.recorders();
        if r.session.is_none() {
            r.session = Some(Recorder::new(max));
        }
    }

    /// The session recording so far, if one was started.
    pub fn take_session_recording(&self) -> Option<Vec<i16>> {
        self.recorders().session.take().map(|r| r.samples)
    }

    /// Sends what the far end says to a conference's mixer (`Some`), or stops (`None`).
    pub fn mix_into(&self, inlet: Option<SharedInlet>) {
        *self.mix.lock().unwrap_or_else(|p| p.into_inner()) = inlet;
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plays `samples` (8 kHz), one packet every 20 ms. With `barge_in`, a key press stops it.
    pub async fn play(&mut self, samples: &[i16], barge_in: bool) -> Played {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut payload = Vec::with_capacity(FRAME);
        let mut packet = Vec::with_capacity(12 + FRAME);
        let lateness = crate::metrics::rtp_send_lateness();
        for (i, frame) in samples.chunks(FRAME).enumerate() {
            tokio::select! {
                scheduled = tick.tick() => {
                    let late = scheduled.elapsed();
                    SEND_TIMING.record(late);
                    lateness.record(late.as_secs_f64());
                }
                _ = self.stop.cancelled() => return Played::Stopped,
                key = self.digits.recv(), if barge_in => {
                    match key {
                        Some(k) => {
                            self.pending = Some(k);
                            return Played::Interrupted(k);
                        }
                        None => return Played::Stopped,
                    }
                }
            }
            self.send_frame(frame, i == 0, &mut payload, &mut packet).await;
        }
        Played::Completed
    }

    /// Sends one 20 ms frame now (the caller keeps time) in the far end's codec, and adds it to
    /// the session recording; nothing goes out while held or with nobody there. `marker` starts
    /// a talkspurt. `payload` and `packet` are scratch buffers the caller reuses.
    pub async fn send_frame(&mut self, frame: &[i16], marker: bool, payload: &mut Vec<u8>, packet: &mut Vec<u8>) {
        let (media, target) = {
            let mut far = far(&self.remote);
            (far.media, far.target())
        };
        let Some(target) = target else { return };
        payload.clear();
        let encode = match media.codec {
            Codec::Pcmu => g711::ulaw_encode,
            Codec::Pcma => g711::alaw_encode,
        };
        payload.extend(frame.iter().map(|s| encode(*s)));
        payload.resize(FRAME, encode(0));
        packet.clear();
        Packet {
            marker,
            payload_type: media.codec.payload_type(),
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload,
        }
        .write(packet);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        if let Some(r) = self.recorders().session.as_mut() {
            r.add(frame, tokio::time::Instant::now(), Source::Sent);
        }
        // A failed send (the far end's port closed) is loss, not an error: the call decides.
        if self.socket.send_to(packet, target).await.is_ok() {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.sent += 1;
            stats.rtp_timestamp = self.timestamp;
            stats.sent_ssrc = Some(self.ssrc);
        }
    }

    /// A key pressed and not read yet, without waiting.
    pub fn try_digit(&mut self) -> Option<char> {
        self.pending.take().or_else(|| self.digits.try_recv().ok())
    }

    /// The next key, waiting up to `wait`; None on timeout or when the stream closed.
    pub async fn next_digit(&mut self, wait: Duration) -> Option<char> {
        if let Some(k) = self.pending.take() {
            return Some(k);
        }
        tokio::select! {
            k = self.digits.recv() => k,
            _ = tokio::time::sleep(wait) => None,
            _ = self.stop.cancelled() => None,
        }
    }

    /// The call ended (a hang-up stopped the stream).
    pub fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when the stream is stopped.
    pub async fn wait_stopped(&self) {
        self.stop.cancelled().await
    }

    /// The codec agreed with the far end.
    pub fn codec(&self) -> Codec {
        self.remote().codec
    }

    /// Relays each leg's incoming RTP to the other (a dial's bridge). With `record`, what `b`
    /// receives also goes into `a`'s session recording.
    pub fn bridge(a: &Stream, b: &Stream, record: bool) {
        End::bridge(&a.end(), &b.end(), record);
    }

    pub fn unbridge(a: &Stream, b: &Stream) {
        End::unbridge(&a.end(), &b.end());
    }

    /// A handle for other tasks: signalling (re-INVITE, hang-up) and bridges (dial, dequeue).
    pub fn end(&self) -> End {
        End {
            socket: self.socket.clone(),
            remote: self.remote.clone(),
            recorders: self.recorders.clone(),
            relay: self.relay.clone(),
            stop: self.stop.clone(),
            stats: self.stats.clone(),
            mix: self.mix.clone(),
        }
    }

    /// Stops receiving and sending.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A socket on `settings.ip`: any port, or a free even one from `settings.ports`.
/// An RTP socket and, when the port above it is free too, its RTCP socket (RFC 3550 §11: RTP on
/// an even port, RTCP on the next). A far end sends its reports to our RTP port + 1 whatever we
/// do; holding that port keeps them from landing on another leg's RTP socket.
async fn bind(settings: &Settings) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
    let ip = settings.ip;
    let Some((low, high)) = settings.ports else {
        // Any port: ask for ports until an even one with its neighbour free comes up.
        for _ in 0..BIND_ATTEMPTS {
            let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let port = rtp.local_addr()?.port();
            if port % 2 == 0 && port < u16::MAX {
                if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                    return Ok((rtp, Some(rtcp)));
                }
            }
        }
        // Should not happen (half of all free ports are even with a free neighbour): say so, a
        // leg without RTCP has no round trip or far-end loss in its record.
        tracing::warn!(attempts = BIND_ATTEMPTS, "no RTP/RTCP port pair free; this leg sends no RTCP");
        return Ok((UdpSocket::bind(SocketAddr::new(ip, 0)).await?, None));
    };
    let first = low + (low % 2);
    let evens = (high.saturating_sub(first) / 2) as u64 + 1;
    let start = crate::voice::rand_id() % evens;
    let mut last = None;
    let mut alone = None;
    for i in 0..(BIND_ATTEMPTS as u64).min(evens) {
        let port = first + (((start + i) % evens) * 2) as u16;
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(rtp) => match UdpSocket::bind(SocketAddr::new(ip, port.saturating_add(1))).await {
                Ok(rtcp) if port < high => return Ok((rtp, Some(rtcp))),
                // Its neighbour is busy (or out of range): keep it in case no pair is free.
                _ => alone = alone.or(Some(rtp)),
            },
            Err(e) => last = Some(e),
        }
    }
    match alone {
        Some(rtp) => {
            tracing::warn!("no RTP/RTCP port pair free in voice.rtp_ports; this leg sends no RTCP");
            Ok((rtp, None))
        }
        None => Err(last.unwrap_or_else(|| std::io::Error::other("voice.rtp_ports has no even port"))),
    }
}

/// Our recent SRs' NTP middle bits: a report block echoing one of them gives a round trip
/// (bridged legs relay the other leg's SSRC, so blocks are matched by what they echo).
#[derive(Debug, Default)]
struct Reports {
    sent: std::collections::VecDeque<u32>,
    /// The far end's cumulative counts at our previous report, for the fraction lost since.
    expected_before: u32,
    lost_before: u64,
}

/// How often reports go out (RFC 3550 §6.2's minimum for a two-party session), ±50% at random.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// When the first report goes out, ±50%.
const RTCP_FIRST: Duration = Duration::from_secs(1);

fn ntp_now() -> u64 {
    super::rtcp::ntp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
}

/// The leg's RTCP: reports sent every few seconds to the far end's RTP port + 1, and the far
/// end's reports read from the RTCP socket (only from the far end's address).
async fn rtcp_task(
    socket: UdpSocket,
    ssrc: u32,
    remote: Shared,
    stats: Arc<Mutex<Stats>>,
    reports: Arc<Mutex<Reports>>,
    stop: CancellationToken,
) {
    let cname = socket.local_addr().map(|a| format!("hodi@{}", a.ip())).unwrap_or_else(|_| "hodi".into());
    let jittered = |base: Duration| base.mul_f64(0.5 + (crate::voice::rand_id() % 1000) as f64 / 1000.0);
    // The first report goes out after about a second (not RFC 3550's half interval): the far
    // end's next report then echoes it, so even a short call measures a round trip.
    let mut next = tokio::time::Instant::now() + jittered(RTCP_FIRST);
    let mut buf = vec![0u8; 1500];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let from_far = {
                    let f = far(&remote);
                    source.ip() == f.latched.map_or(f.media.remote.ip(), |a| a.ip())
                };
                if from_far {
                    on_rtcp(&buf[..n], &stats, &reports);
                }
            }
            _ = tokio::time::sleep_until(next) => {
                next = tokio::time::Instant::now() + jittered(RTCP_INTERVAL);
                let target = far(&remote).target().map(|t| SocketAddr::new(t.ip(), t.port().wrapping_add(1)));
                let Some(target) = target else { continue };
                let report = report(ssrc, &stats, &reports, &cname);
                let _ = socket.send_to(&report, target).await;
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Our next compound report: an SR once we have sent audio (else an RR), with a block about
/// what we receive once we have heard the far end.
fn report(ssrc: u32, stats: &Mutex<Stats>, reports: &Mutex<Reports>, cname: &str) -> Vec<u8> {
    use super::rtcp::{Block, SenderInfo};
    let s = *stats.lock().unwrap_or_else(|p| p.into_inner());
    let now = ntp_now();
    let mut r = reports.lock().unwrap_or_else(|p| p.into_inner());
    let sender = (s.sent > 0).then(|| SenderInfo {
        ntp: now,
        rtp_timestamp: s.rtp_timestamp,
        packets: s.sent as u32,
        octets: (s.sent * FRAME as u64) as u32,
    });
    if sender.is_some() {
        r.sent.push_back(super::rtcp::middle(now));
        if r.sent.len() > 8 {
            r.sent.pop_front();
        }
    }
    let block = s.far_ssrc.map(|far_ssrc| {
        let expected = (s.received + s.lost) as u32;
        let (d_expected, d_lost) = (expected.saturating_sub(r.expected_before), s.lost.saturating_sub(r.lost_before));
        r.expected_before = expected;
        r.lost_before = s.lost;
        let (lsr, dlsr) = match s.last_sr {
            Some((middle, at)) => (middle, (at.elapsed().as_secs_f64() * 65_536.0) as u32),
            None => (0, 0),
        };
        Block {
            ssrc: far_ssrc,
            fraction_lost: (d_lost.min(u64::from(d_expected)) * 256 / u64::from(d_expected.max(1))).min(255) as u8,
            cumulative_lost: s.lost.min(0x7F_FFFF) as i32,
            highest: s.highest,
            jitter: (s.jitter_ms * 8.0) as u32,
            lsr,
            dlsr,
        }
    });
    super::rtcp::compound(s.sent_ssrc.unwrap_or(ssrc), sender, block, cname)
}

/// A report from the far end: its SR noted for our next block's LSR/DLSR, and its blocks read for
/// the round trip (when one echoes our SR) and for how our audio reaches it.
fn on_rtcp(bytes: &[u8], stats: &Mutex<Stats>, reports: &Mutex<Reports>) {
    let Some(parsed) = super::rtcp::parse(bytes) else { return };
    let now = ntp_now();
    let ours = reports.lock().unwrap_or_else(|p| p.into_inner()).sent.clone();
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    for report in parsed {
        if let Some(info) = report.sender {
            s.last_sr = Some((super::rtcp::middle(info.ntp), std::time::Instant::now()));
        }
        for block in report.blocks.iter().filter(|b| b.lsr != 0 && ours.contains(&b.lsr)) {
            if let Some(rtt) = super::rtcp::round_trip(block, now) {
                s.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
            }
            let sent = s.sent.max(1) as f64;
            s.far_loss = Some((f64::from(block.cumulative_lost.max(0)) / sent).min(1.0));
            s.far_jitter_ms = Some(f64::from(block.jitter) / 8.0);
        }
    }
}

/// The leg's receiving task: statistics, digits, recordings, and relaying while bridged.
async fn receive(end: End, digits: mpsc::Sender<char>, reports: Arc<Mutex<Reports>>) {
    let End { socket, remote, recorders, relay, stop, stats, mix } = end;
    let mut buf = vec![0u8; 2048];
    let mut onward_buf = Vec::with_capacity(2048);
    let mut pcm: Vec<i16> = Vec::with_capacity(FRAME * 2);
    let mut receiver = Receiver::default();
    let started = tokio::time::Instant::now();
    loop {
        let (n, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        // RTCP multiplexed on the RTP port (RFC 5761: packet types 200-204 where RTP's payload
        // type would be): a report, never audio, and never what latches the leg.
        if n > 1 && (200..=204).contains(&buf[1]) {
            let from_far = {
                let f = far(&remote);
                f.latched.is_some_and(|a| a.ip() == source.ip())
            };
            if from_far {
                on_rtcp(&buf[..n], &stats, &reports);
            }
            continue;
        }
        let Some(packet) = Packet::parse(&buf[..n]) else { continue };
        // Read per packet: the answer to our offer, or a re-INVITE, may set the event type.
        let events = {
            let mut far = far(&remote);
            if !far.accept(source) {
                continue; // not the leg's far end: no audio, no digits from strangers
            }
            far.media.events
        };
        let arrival = (started.elapsed().as_micros() / 125) as u32; // 8 kHz units
        let key = receiver.on_packet(&packet, arrival, events);
        {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.received = receiver.received;
            s.lost = receiver.lost;
            s.jitter_ms = receiver.jitter / 8.0;
            s.far_ssrc = receiver.ssrc();
            s.highest = receiver.extended_highest();
        }
        if let Some(k) = key {
            let _ = digits.try_send(k);
        }
        // Bridged: the packet goes on to the other leg as it came, or in the other leg's G.711
        // when the two legs agreed on different ones.
        let onward = relay.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|r| {
            let mut far = far(&r.remote);
            (r.socket.clone(), far.target(), far.media.codec, r.record_into.clone(), r.stats.clone())
        });
        let mut record_into = None;
        if let Some((socket, target, codec, into, onward_stats)) = onward {
            if let Some(target) = target {
                let sent = match transcode(&packet, codec, &mut onward_buf) {
                    true => socket.send_to(&onward_buf, target).await,
                    false => socket.send_to(&buf[..n], target).await,
                };
                if sent.is_ok() {
                    // The other leg sends this source now: its reports speak for it (RFC 3550
                    // §7.1, a translator), so the far end's replies echo them.
                    let mut o = onward_stats.lock().unwrap_or_else(|p| p.into_inner());
                    o.sent += 1;
                    o.rtp_timestamp = packet.timestamp;
                    o.sent_ssrc = Some(packet.ssrc);
                }
            }
            record_into = into;
        }
        // Decoding is only for recordings and conferences: skip it when neither wants it.
        let own = {
            let r = recorders.lock().unwrap_or_else(|p| p.into_inner());
            r.message.is_some() || r.session.is_some()
        };
        let inlet = mix.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !own && record_into.is_none() && inlet.is_none() {
            continue;
        }
        let decode = match packet.payload_type {
            0 => g711::ulaw_decode,
            8 => g711::alaw_decode,
            _ => continue,
        };
        pcm.clear();
        pcm.extend(packet.payload.iter().map(|b| decode(*b)));
        if let Some(inlet) = inlet {
            inlet.lock().unwrap_or_else(|p| p.into_inner()).push(&pcm);
        }
        let now = tokio::time::Instant::now();
        if let Some(other) = record_into {
            if let Some(s) = other.lock().unwrap_or_else(|p| p.into_inner()).session.as_mut() {
                s.add(&pcm, now, Source::Bridged);
            }
        }
        let mut r = recorders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = r.message.as_mut() {
            m.add(&pcm, now, Source::Received);
            if super::audio::is_speech(&pcm) {
                m.last_voice = now;
            }
        }
        if let Some(s) = r.session.as_mut() {
            s.add(&pcm, now, Source::Received);
        }
    }
}

/// Writes `packet` into `out` in `to` when it is audio in the other G.711 law (true); false when
/// it can go on as it came (same codec, or not audio: telephone events, comfort noise).
fn transcode(packet: &Packet<'_>, to: Codec, out: &mut Vec<u8>) -> bool {
    let convert: fn(u8) -> u8 = match (packet.payload_type, to) {
        (0, Codec::Pcma) => g711::ulaw_to_alaw,
        (8, Codec::Pcmu) => g711::alaw_to_ulaw,
        _ => return false,
    };
    let payload: Vec<u8> = packet.payload.iter().map(|b| convert(*b)).collect();
    out.clear();
    Packet { payload_type: to.payload_type(), payload: &payload, ..packet.clone() }.write(out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_lays_late_frames_end_to_end_and_places_real_gaps_by_arrival() {
        let mut r = Recorder::new(Duration::from_secs(10));
        let at = |ms: u64| r.start + Duration::from_millis(ms);
        let (t0, t1, t2, t3) = (at(0), at(27), at(38), at(500));
        let frame = [100i16; FRAME];
        // 20 ms frames sent 0, 27 (late) and 38 ms (early) after the start: end to end, no overlap.
        r.add(&frame, t0, Source::Sent);
        r.add(&frame, t1, Source::Sent);
        r.add(&frame, t2, Source::Sent);
        assert_eq!(r.samples.len(), 3 * FRAME);
        assert!(r.samples.iter().all(|s| *s == 100), "no sample written twice, none skipped");
        // Half a second later (a pause): placed where it arrived, silence between.
        r.add(&frame, t3, Source::Sent);
        assert_eq!(r.samples.len(), 4000 + FRAME);
        assert!(r.samples[3 * FRAME..4000].iter().all(|s| *s == 0));
        // Another source keeps its own place: the far end's frame at 0 ms mixes with ours.
        r.add(&[1i16; FRAME], t0, Source::Received);
        assert_eq!(r.samples[0], 101);
    }
}
