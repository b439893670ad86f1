//! Conferences: named rooms of an org that calls join by dialling `conference:<name>` — a
//! dialable resource, so an app written with the Elarian SDK needs nothing new. Everyone in a
//! room hears everyone else (never themselves); `*6` on the keypad mutes and unmutes oneself; a
//! dial with `record` records the room (everyone, as that call heard it plus its own voice) into
//! the call's session recording; `maxDuration` bounds the stay. The room ends when the last one
//! leaves. Leaving completes the dial: the app hears `dialCompleted` with the room as the
//! destination and the time spent in it.
//!
//! Each room has one mixer task ticking every 20 ms: it takes each participant's latest frame
//! from its [`Inlet`] (filled by the leg's receive task), mixes ([`media::mixer`]) and hands each
//! participant its frame through a small queue; the participant's call task sends it on its own
//! RTP stream (its SSRC, sequence and codec). A participant that falls behind loses frames, the
//! room does not wait for it.
//!
//! Owns rooms and their mixers; the legs' media is [`media::stream`]'s.
//!
//! [`Inlet`]: super::media::stream::Inlet
//! [`media::mixer`]: super::media::mixer
//! [`media::stream`]: super::media::stream

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info};

use super::media::audio::FRAME;
use super::media::mixer::{self, Input};
use super::media::stream::{SharedInlet, Stream};

/// Participants one room holds; more are refused (the dial completes with no destination).
pub const MAX_PARTICIPANTS: usize = 64;
/// Frames waiting for a participant's call task before the mixer drops its newest.
const OUTLET_FRAMES: usize = 4;
/// The longest stay when the dial sets no maximum.
const MAX_STAY: Duration = Duration::from_secs(4 * 3600);

/// The rooms of every org, by (org, name).
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<(String, String), Arc<Room>>>,
}

struct Room {
    seats: Mutex<Vec<Seat>>,
    next_id: std::sync::atomic::AtomicU64,
}

struct Seat {
    id: u64,
    inlet: SharedInlet,
    outlet: mpsc::Sender<Vec<i16>>,
    muted: bool,
}

/// How a stay in a room went, for the app's `dialData`.
pub(super) struct Stay {
    pub joined_at: Option<i64>,
    pub duration: Duration,
    /// The caller hung up while in the room.
    pub caller_gone: bool,
}

/// The room name a dialled number names (`conference:<name>`), if it is one.
pub fn room_name(number: &str) -> Option<&str> {
    let name = number.strip_prefix("conference:")?.trim();
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then_some(name)
}

impl Rooms {
    /// Rooms open now, and the people in them.
    pub fn totals(&self) -> (usize, usize) {
        let rooms: Vec<Arc<Room>> = self.lock().values().cloned().collect();
        (rooms.len(), rooms.iter().map(|r| lock(&r.seats).len()).sum())
    }

    /// People in `org_id`'s room `name` now.
    pub fn size(&self, org_id: &str, name: &str) -> usize {
        let room = self.lock().get(&(org_id.to_string(), name.to_string())).cloned();
        room.map_or(0, |r| lock(&r.seats).len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a seat in the room (made, with its mixer, if it did not exist); None when full.
    fn sit(
        self: &Arc<Self>,
        org_id: &str,
        name: &str,
        inlet: SharedInlet,
    ) -> Option<(Arc<Room>, u64, mpsc::Receiver<Vec<i16>>)> {
        let key = (org_id.to_string(), name.to_string());
        let mut rooms = self.lock();
        let room = rooms.entry(key.clone()).or_insert_with(|| {
            let room = Arc::new(Room { seats: Mutex::new(Vec::new()), next_id: Default::default() });
            tokio::spawn(mix(self.clone(), key.clone(), room.clone()));
            info!(org = %key.0, room = %key.1, "conference started");
            room
        });
        let mut seats = lock(&room.seats);
        if seats.len() >= MAX_PARTICIPANTS {
            return None;
        }
        let id = room.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTLET_FRAMES);
        seats.push(Seat { id, inlet, outlet: tx, muted: false });
        drop(seats);
        Some((room.clone(), id, rx))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The room's mixer: every 20 ms, everyone's frame in, everyone's mix out; ends (and removes the
/// room) when nobody is left.
async fn mix(rooms: Arc<Rooms>, key: (String, String), room: Arc<Room>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut frames: Vec<Option<Vec<i16>>> = Vec::new();
    let mut out: Vec<Vec<i16>> = Vec::new();
    let lateness = crate::metrics::rtp_send_lateness();
    loop {
        // The room's frames leave on this tick: its lateness is theirs.
        let late = tick.tick().await.elapsed();
        super::media::stream::SEND_TIMING.record(late);
        lateness.record(late.as_secs_f64());
        let outlets: Vec<mpsc::Sender<Vec<i16>>> = {
            // Removing an empty room happens under the registry's lock, so a newcomer either
            // finds this room with its mixer running or makes a new one.
            let mut registry = rooms.lock();
            let seats = lock(&room.seats);
            if seats.is_empty() {
                registry.remove(&key);
                info!(org = %key.0, room = %key.1, "conference ended");
                return;
            }
            drop(registry);
            frames.clear();
            frames.extend(seats.iter().map(|s| lock(&s.inlet).pop()));
            let inputs: Vec<Input<'_>> =
                seats.iter().zip(&frames).map(|(s, f)| Input { frame: f.as_deref(), muted: s.muted }).collect();
            mixer::mix(&inputs, &mut out);
            seats.iter().map(|s| s.outlet.clone()).collect()
        };
        for (outlet, frame) in outlets.iter().zip(out.iter()) {
            // Full: that participant's task is behind; it loses this frame, nobody waits.
            let _ = outlet.try_send(frame.clone());
        }
    }
}

/// The call on `stream` stays in `org_id`'s room `name` until it hangs up, `max` passes, or the
/// app's call ends otherwise.
pub(super) async fn stay(
    rooms: &Arc<Rooms>,
    org_id: &str,
    name: &str,
    stream: &mut Stream,
    max: Option<Duration>,
    joined_tx: tokio::sync::oneshot::Sender<i64>,
) -> Stay {
    let inlet = SharedInlet::default();
    let Some((room, id, mut outlet)) = rooms.sit(org_id, name, inlet.clone()) else {
        info!(room = %name, "conference full; not joined");
        return Stay { joined_at: None, duration: Duration::ZERO, caller_gone: false };
    };
    stream.mix_into(Some(inlet));
    let joined = tokio::time::Instant::now();
    let joined_at = crate::store::now_ms();
    // The app hears of the join while the call sits in the room (see `dial`).
    let _ = joined_tx.send(joined_at);
    let deadline = joined + max.unwrap_or(MAX_STAY).min(MAX_STAY);
    info!(room = %name, people = lock(&room.seats).len(), "joined the conference");
    let (mut payload, mut packet) = (Vec::with_capacity(FRAME), Vec::with_capacity(12 + FRAME));
    let end = stream.end();
    let mut star = false;
    let mut first = true;
    loop {
        let frame = tokio::select! {
            frame = outlet.recv() => frame,
            _ = end.wait_stopped() => None,
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let Some(frame) = frame else { break };
        stream.send_frame(&frame, first, &mut payload, &mut packet).await;
        first = false;
        // Keys are looked at once a frame (every 20 ms): *6 toggles one's own mute, as on most
        // conference bridges.
        while let Some(key) = stream.try_digit() {
            match key {
                '*' => star = true,
                '6' if star => {
                    star = false;
                    let mut seats = lock(&room.seats);
                    if let Some(seat) = seats.iter_mut().find(|s| s.id == id) {
                        seat.muted = !seat.muted;
                        debug!(room = %name, muted = seat.muted, "mute toggled");
                    }
                }
                _ => star = false,
            }
        }
    }
    stream.mix_into(None);
    lock(&room.seats).retain(|s| s.id != id);
    info!(room = %name, "left the conference");
    Stay { joined_at: Some(joined_at), duration: joined.elapsed(), caller_gone: stream.stopped() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_short_and_plain() {
        assert_eq!(room_name("conference:sales-1"), Some("sales-1"));
        assert_eq!(room_name("conference: team.a "), Some("team.a"));
        for bad in [
            "+254700000001",
            "conference:",
            "conference:a b",
            "conference:../x",
            &format!("conference:{}", "x".repeat(65)),
        ] {
            assert_eq!(room_name(bad), None, "{bad}");
        }
    }
}
