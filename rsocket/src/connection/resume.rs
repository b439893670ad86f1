//! RSocket resumption: a session that outlives its transport for a while.
//!
//! A connection set up with a resume token keeps, besides its streams, a log of the resumable
//! frames it sent (every frame on a stream; KEEPALIVE, SETUP, RESUME, METADATA_PUSH and ERROR on
//! stream 0 are not) and how many bytes of such frames it has received — the "implied positions".
//! KEEPALIVE frames carry the receiver's position, so each side drops what the other has. When the
//! transport is lost the session is detached, not closed: its requests and handlers wait. The
//! client dials again and sends RESUME (token, what it received, the oldest frame it still
//! has); the server answers RESUME_OK (what it received), and each side sends again what the
//! other missed, in order, before anything new. No frame is lost or delivered twice.
//!
//! Bounded: the log holds at most `resume_buffer_bytes` (a peer that falls further behind can no
//! longer be resumed, and is refused, as the spec has it); a detached session lasts at most
//! `resume_window`; the server's [`Registry`] holds at most a fixed number of sessions, each still
//! counted against its address's connection cap while detached.
//!
//! Owns the positions, the log, the registry and the checks of a RESUME; the engine
//! ([`super::engine`]) decides when to detach and drives the reattachment.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::frame::Frame;
use crate::transport::FrameIo;

/// Recovers the guard of a lock a panic left poisoned: these tables stay consistent enough.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `frame` counts towards the implied position (and is sent again after a resume).
pub(crate) fn resumable(frame: &Frame) -> bool {
    frame.stream_id != 0
}

/// One side's resumption state.
pub(crate) struct ResumeState {
    pub(crate) token: Bytes,
    log: Mutex<SentLog>,
    received: AtomicU64,
}

struct SentLog {
    /// Position of the first frame still held.
    first: u64,
    /// Position after the last frame sent.
    next: u64,
    frames: VecDeque<(u64, Frame)>,
    bytes: usize,
    max_bytes: usize,
}

impl ResumeState {
    pub(crate) fn new(token: Bytes, max_bytes: usize) -> Arc<ResumeState> {
        Arc::new(ResumeState {
            token,
            log: Mutex::new(SentLog { first: 0, next: 0, frames: VecDeque::new(), bytes: 0, max_bytes }),
            received: AtomicU64::new(0),
        })
    }

    /// Records a frame handed to the transport (the writer calls this before writing it).
    pub(crate) fn sent(&self, frame: &Frame) {
        if !resumable(frame) {
            return;
        }
        let len = frame.encoded_len() as u64;
        let mut log = lock(&self.log);
        log.frames.push_back((len, frame.clone()));
        log.next += len;
        log.bytes += len as usize;
        // Past the bound the oldest go: the peer must have them by now, or cannot be resumed.
        while log.bytes > log.max_bytes {
            let Some((len, _)) = log.frames.pop_front() else { break };
            log.first += len;
            log.bytes -= len as usize;
        }
    }

    /// Counts a resumable frame of `len` bytes received.
    pub(crate) fn received(&self, len: usize) {
        self.received.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn received_position(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The peer has everything up to `position`: drop it from the log.
    pub(crate) fn acknowledged(&self, position: u64) {
        let mut log = lock(&self.log);
        while let Some((len, _)) = log.frames.front() {
            let len = *len;
            if log.first + len > position {
                break;
            }
            log.frames.pop_front();
            log.first += len;
            log.bytes -= len as usize;
        }
    }

    /// The oldest position this side can still send again.
    pub(crate) fn first_available(&self) -> u64 {
        lock(&self.log).first
    }

    /// The frames after `position` (what the peer says it has), to send again; an error when the
    /// log no longer reaches back that far, `position` is beyond what was sent, or it falls
    /// inside a frame.
    pub(crate) fn replay_from(&self, position: u64) -> Result<Vec<Frame>, String> {
        let log = lock(&self.log);
        if position < log.first {
            return Err(format!(
                "the peer has frames up to position {position}, but this side only holds them from {}",
                log.first
            ));
        }
        if position > log.next {
            return Err(format!("the peer claims position {position}, beyond the {} bytes sent", log.next));
        }
        let mut at = log.first;
        let mut replay = Vec::new();
        for (len, frame) in &log.frames {
            if at >= position {
                replay.push(frame.clone());
            } else if at + len > position {
                return Err(format!("position {position} falls inside a frame"));
            }
            at += len;
        }
        Ok(replay)
    }
}

/// A RESUME that arrived on a new transport, handed to the detached session it names.
pub(crate) struct Attach {
    pub(crate) io: FrameIo,
    pub(crate) last_received_server_position: u64,
    pub(crate) first_available_client_position: u64,
}

/// Server role: the sessions that may be resumed, by token.
pub struct Registry {
    sessions: Mutex<HashMap<Bytes, mpsc::Sender<Attach>>>,
    max: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("sessions", &lock(&self.sessions).len()).field("max", &self.max).finish()
    }
}

impl Registry {
    /// A registry holding at most `max` resumable sessions.
    pub fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry { sessions: Mutex::new(HashMap::new()), max: max.max(1) })
    }

    /// Registers a session; refused when the token is taken or the registry is full.
    pub(crate) fn insert(&self, token: &Bytes, attach: mpsc::Sender<Attach>) -> Result<(), &'static str> {
        let mut sessions = lock(&self.sessions);
        if sessions.contains_key(token) {
            return Err("this resume token is in use by another session");
        }
        if sessions.len() >= self.max {
            return Err("the server holds as many resumable sessions as it may");
        }
        sessions.insert(token.clone(), attach);
        Ok(())
    }

    pub(crate) fn remove(&self, token: &Bytes) {
        lock(&self.sessions).remove(token);
    }

    /// The session with `token`, if one is registered.
    pub(crate) fn find(&self, token: &Bytes) -> Option<mpsc::Sender<Attach>> {
        lock(&self.sessions).get(token).cloned()
    }

    /// Resumable sessions held now.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Body;
    use crate::payload::Payload;

    fn payload(id: u32, n: usize) -> Frame {
        Frame::new(
            id,
            Body::Payload { follows: false, complete: false, next: true, payload: Payload::new(vec![b'x'; n]) },
        )
    }

    #[test]
    fn replay_starts_where_the_peer_stopped_and_acknowledged_frames_go() {
        let s = ResumeState::new(Bytes::from_static(b"t"), 1 << 20);
        let frames: Vec<Frame> = (0..4).map(|i| payload(1, 10 + i)).collect();
        for f in &frames {
            s.sent(f);
        }
        s.sent(&Frame::new(0, Body::Keepalive { respond: true, last_position: 0, data: Bytes::new() }));
        let lens: Vec<u64> = frames.iter().map(|f| f.encoded_len() as u64).collect();
        let after_two = lens[0] + lens[1];
        assert_eq!(s.replay_from(after_two).expect("replay"), frames[2..].to_vec());
        assert_eq!(s.replay_from(0).expect("all").len(), 4, "keepalives are not resumable");
        assert!(s.replay_from(1).is_err(), "inside a frame");
        assert!(s.replay_from(lens.iter().sum::<u64>() + 1).is_err(), "beyond what was sent");
        s.acknowledged(after_two);
        assert_eq!(s.first_available(), after_two);
        assert!(s.replay_from(0).is_err(), "dropped once acknowledged");
        assert_eq!(s.replay_from(after_two).expect("replay").len(), 2);
    }

    #[test]
    fn the_log_is_bounded_in_bytes() {
        let s = ResumeState::new(Bytes::from_static(b"t"), 100);
        for _ in 0..50 {
            s.sent(&payload(1, 30));
        }
        let held = s.replay_from(s.first_available()).expect("what is held");
        let bytes: usize = held.iter().map(Frame::encoded_len).sum();
        assert!(bytes <= 100 && !held.is_empty(), "{bytes} bytes held");
        assert!(s.replay_from(0).is_err(), "the oldest are gone");
    }

    #[test]
    fn the_registry_refuses_a_taken_token_and_is_bounded() {
        let r = Registry::new(1);
        let (tx, _rx) = mpsc::channel(1);
        let a = Bytes::from_static(b"a");
        r.insert(&a, tx.clone()).expect("first");
        assert!(r.insert(&a, tx.clone()).is_err(), "taken");
        assert!(r.insert(&Bytes::from_static(b"b"), tx).is_err(), "full");
        r.remove(&a);
        assert!(r.find(&a).is_none() && r.is_empty());
    }
}
