//! Call queues: `enqueue` holds a caller (hold music) in a named queue of the org until another
//! call's `dequeue` takes the longest-waiting one; the two calls are then bridged until either
//! hangs up, and each goes on with its own actions.
//!
//! Owns the queues; each call keeps its own stream and dialog — the dequeuing call only relays
//! RTP between the two (see [`End`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;
use tracing::info;

use super::call::Call;
use super::media::audio;
use super::media::stream::{End, Played, Stream};
use crate::wire::{DequeueCallAction, EnqueueCallAction, VoiceCallQueueInput};

/// Callers waiting per queue, oldest first.
#[derive(Default)]
pub struct Queues {
    queues: Mutex<HashMap<(String, String), VecDeque<Waiting>>>,
}

struct Waiting {
    session_id: String,
    end: End,
    enqueued_at: i64,
    taken: oneshot::Sender<Taken>,
}

/// What a waiting caller learns when dequeued; `done` resolves when the bridge is over.
struct Taken {
    input: VoiceCallQueueInput,
    done: oneshot::Receiver<()>,
}

fn name(queue: &Option<String>) -> String {
    queue.clone().filter(|q| !q.is_empty()).unwrap_or_else(|| "default".into())
}

impl Queues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), VecDeque<Waiting>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Callers waiting in `queue` of `org_id`.
    pub fn waiting(&self, org_id: &str, queue: &str) -> usize {
        self.lock().get(&(org_id.to_string(), queue.to_string())).map_or(0, VecDeque::len)
    }

    fn remove(&self, key: &(String, String), session_id: &str) {
        if let Some(q) = self.lock().get_mut(key) {
            q.retain(|w| w.session_id != session_id);
        }
    }
}

/// A quiet two-tone hold signal, when the action names no hold music.
fn hold_tone() -> Vec<i16> {
    let mut tone = audio::beep(300);
    tone.iter_mut().for_each(|s| *s /= 4);
    tone.resize(audio::RATE as usize * 3, 0);
    tone
}

/// Holds the caller until dequeued and the bridge ends: the queue data, or None when the caller
/// hung up first.
pub(super) async fn enqueue(
    call: &Call,
    org_id: &str,
    stream: &mut Stream,
    e: &EnqueueCallAction,
) -> Option<VoiceCallQueueInput> {
    let sip = &call.sip;
    let key = (org_id.to_string(), name(&e.queue_name));
    let (tx, mut rx) = oneshot::channel();
    sip.queues.lock().entry(key.clone()).or_default().push_back(Waiting {
        session_id: call.session_id.clone(),
        end: stream.end(),
        enqueued_at: crate::store::now_ms(),
        taken: tx,
    });
    info!(queue = %key.1, "caller enqueued");
    let music = match e.hold_music.as_deref().filter(|m| !m.is_empty()) {
        Some(url) => super::media::prompts::load(url).await.unwrap_or_else(|_| std::sync::Arc::new(hold_tone())),
        None => std::sync::Arc::new(hold_tone()),
    };
    let taken = loop {
        tokio::select! {
            t = &mut rx => match t {
                Ok(t) => break t,
                Err(_) => return None, // the queue went away
            },
            played = stream.play(&music, false) => if played == Played::Stopped {
                sip.queues.remove(&key, &call.session_id);
                return None;
            },
        }
    };
    // Bridged by the dequeuing call: wait for it to end (either side hanging up).
    tokio::select! {
        _ = taken.done => {}
        _ = stream.wait_stopped() => {}
    }
    (!stream.stopped()).then_some(taken.input)
}

/// Bridges this call with the longest-waiting caller of the queue until either hangs up; the
/// queue data, or None when nobody was waiting.
pub(super) async fn dequeue(
    call: &Call,
    org_id: &str,
    stream: &mut Stream,
    d: &DequeueCallAction,
) -> Option<VoiceCallQueueInput> {
    let sip = &call.sip;
    let key = (org_id.to_string(), name(&d.queue_name));
    loop {
        let waiting = sip.queues.lock().get_mut(&key).and_then(VecDeque::pop_front)?;
        if waiting.end.stopped() {
            continue;
        }
        let now = crate::store::now_ms();
        let input = VoiceCallQueueInput {
            enqueued_at: Some(crate::convert::timestamp(waiting.enqueued_at)),
            dequeued_at: Some(crate::convert::timestamp(now)),
            dequeued_to_number: Some(call.caller()),
            dequeued_to_session_id: Some(call.session_id.clone()),
            queue_duration: Some(prost_types::Duration { seconds: (now - waiting.enqueued_at) / 1000, nanos: 0 }),
        };
        let (done_tx, done_rx) = oneshot::channel();
        if waiting.taken.send(Taken { input: input.clone(), done: done_rx }).is_err() {
            continue; // hung up meanwhile
        }
        info!(queue = %key.1, waited_ms = now - waiting.enqueued_at, "bridging a queued caller");
        let mine = stream.end();
        End::bridge(&mine, &waiting.end, d.record);
        tokio::select! {
            _ = mine.wait_stopped() => {}
            _ = waiting.end.wait_stopped() => {}
        }
        End::unbridge(&mine, &waiting.end);
        drop(done_tx);
        return Some(input);
    }
}
