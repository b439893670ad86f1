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

/// Receiving statistics shared with the call (for its record).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
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

/// What signalling may change on a stream that is busy playing.
#[derive(Clone)]
pub struct Control {
    remote: Arc<Mutex<Media>>,
    stop: CancellationToken,
}

impl Control {
    /// The far end moved, changed codec, or put us on hold (re-INVITE).
    pub fn update(&self, media: Media) {
        *self.remote.lock().unwrap_or_else(|p| p.into_inner()) = media;
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// One leg's RTP.
pub struct Stream {
    socket: Arc<UdpSocket>,
    remote: Arc<Mutex<Media>>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    digits: mpsc::Receiver<char>,
    /// A key read during a prompt with barge-in, handed to the next digit reader.
    pending: Option<char>,
    stats: Arc<Mutex<Stats>>,
    stop: CancellationToken,
}

impl Stream {
    /// Binds a socket on `ip` (any port) for a leg whose far end is `remote`.
    pub async fn open(ip: std::net::IpAddr, remote: Media) -> std::io::Result<Stream> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
        let (tx, rx) = mpsc::channel(DIGIT_BUFFER);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = CancellationToken::new();
        tokio::spawn(receive(socket.clone(), remote.events, tx, stats.clone(), stop.clone()));
        Ok(Stream {
            socket,
            remote: Arc::new(Mutex::new(remote)),
            ssrc: rand_u32(),
            sequence: rand_u32() as u16,
            timestamp: rand_u32(),
            digits: rx,
            pending: None,
            stats,
            stop,
        })
    }

    pub fn local(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A handle for the signalling side: re-INVITEs change the far end, hang-ups stop the stream,
    /// while a prompt is playing.
    pub fn control(&self) -> Control {
        Control { remote: self.remote.clone(), stop: self.stop.clone() }
    }

    fn remote(&self) -> Media {
        self.remote.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        for (i, frame) in samples.chunks(FRAME).enumerate() {
            tokio::select! {
                _ = tick.tick() => {}
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
            let media = self.remote();
            if media.on_hold {
                continue; // held: keep time, send nothing
            }
            payload.clear();
            let encode = match media.codec {
                Codec::Pcmu => g711::ulaw_encode,
                Codec::Pcma => g711::alaw_encode,
            };
            payload.extend(frame.iter().map(|s| encode(*s)));
            payload.resize(FRAME, encode(0));
            packet.clear();
            Packet {
                marker: i == 0,
                payload_type: media.codec.payload_type(),
                sequence: self.sequence,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                payload: &payload,
            }
            .write(&mut packet);
            self.sequence = self.sequence.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
            // A failed send (the far end's port closed) is loss, not an error: the call decides.
            if self.socket.send_to(&packet, media.remote).await.is_ok() {
                self.stats.lock().unwrap_or_else(|p| p.into_inner()).sent += 1;
            }
        }
        Played::Completed
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

async fn receive(
    socket: Arc<UdpSocket>,
    events: Option<u8>,
    digits: mpsc::Sender<char>,
    stats: Arc<Mutex<Stats>>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 2048];
    let mut receiver = Receiver::default();
    let started = tokio::time::Instant::now();
    loop {
        let n = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let Some(packet) = Packet::parse(&buf[..n]) else { continue };
        let arrival = (started.elapsed().as_micros() / 125) as u32; // 8 kHz units
        let key = receiver.on_packet(&packet, arrival, events);
        {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.received = receiver.received;
            s.lost = receiver.lost;
            s.jitter_ms = receiver.jitter / 8.0;
        }
        if let Some(k) = key {
            let _ = digits.try_send(k);
        }
    }
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}
