//! A provider's queue worker: takes the provider's due items from a durable queue (a [`Lane`]:
//! messages, or payment requests) and hands them over, at most `window` unanswered at once and
//! `rate_per_sec` a second; retries transient failures with doubling delays; slows down when the
//! provider says it is throttling; reports every message's outcome as a [`ChannelEvent`].
//!
//! Owns pacing and retries. It does not decide what an outcome means for the message (messaging
//! does, on the event) and it does not speak any protocol (the transport does).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::events::{self, ChannelEvent};
use crate::config::providers::Limits;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::store::{now_ms, Store};
use crate::wire::MessageDeliveryStatus;

/// Why a transport did not get a message accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Worth trying again later: the link is down, a timeout, a temporary error code.
    Transient(String),
    /// The provider asks us to slow down; the message is tried again without using an attempt.
    Throttled(String),
    /// Trying again will not help: a bad address, a message the provider refuses.
    Permanent(String),
}

/// A way to hand a message to a provider.
pub trait Transport: Send + Sync + 'static {
    /// Sends one queued message; on success, the provider's id of each part.
    fn send(&self, message: &QueuedSend) -> impl Future<Output = Result<Vec<AcceptedPart>, Refusal>> + Send;
}

/// How long a claimed row stays ours: longer than any send plus the time messaging takes to
/// record its outcome (a worker that dies releases its rows when this runs out).
const CLAIM_MS: i64 = 5 * 60 * 1000;
/// Rows claimed at once (at least the window).
const CLAIM_BATCH: u32 = 256;
/// How long the worker slows down after the provider said it is throttling.
const THROTTLE_PAUSE: Duration = Duration::from_secs(1);
/// How often the queue is looked at with nothing waking the worker (retries falling due).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// The delay before retry `attempt` (1 = the first retry): `first`, doubling, at most `max`.
pub fn retry_delay(limits: &Limits, attempt: u32) -> Duration {
    let first = Duration::from_secs(limits.retry_secs.max(1));
    let max = Duration::from_secs(limits.retry_max_secs.max(limits.retry_secs.max(1)));
    first.checked_mul(1u32 << attempt.saturating_sub(1).min(20)).unwrap_or(max).min(max)
}

/// Spaces hand-overs `1/rate` apart, and holds them while the provider is throttling us.
struct Pacer {
    gap: Option<Duration>,
    next: Instant,
    paused_until: Arc<Mutex<Instant>>,
}

impl Pacer {
    fn new(rate_per_sec: u32) -> Pacer {
        let gap = (rate_per_sec > 0).then(|| Duration::from_secs(1) / rate_per_sec);
        Pacer { gap, next: Instant::now(), paused_until: Arc::new(Mutex::new(Instant::now())) }
    }

    async fn wait(&mut self) {
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        let at = self.next.max(paused);
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        if let Some(gap) = self.gap {
            self.next = at.max(Instant::now() - gap) + gap;
        }
    }
}

/// A durable queue a worker feeds to its provider: messages ([`Messages`]) or payment requests
/// ([`super::payments`]).
pub trait Lane: Send + Sync + 'static {
    type Item: Send + 'static;
    fn id(item: &Self::Item) -> &str;
    fn expires_at(item: &Self::Item) -> i64;
    /// Claims up to `limit` due items until `until`.
    fn claim(&self, limit: i64, until: i64) -> impl Future<Output = anyhow::Result<Vec<Self::Item>>> + Send;
    /// Reports that `item` ran out of time before the provider took it; false when nobody
    /// listens any more (shutting down: the item stays queued).
    fn expire(&self, item: Self::Item) -> impl Future<Output = bool> + Send;
    /// Hands `item` to the provider and records the outcome (accepted, refused, or tried again
    /// later, as [`after_refusal`] says); true when the provider said it is throttling.
    fn hand_over(&self, item: Self::Item) -> impl Future<Output = bool> + Send;
}

/// What becomes of an item the provider did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again at `at` (ms); `counts` says whether it used up an attempt (throttling does not).
    Retry { at: i64, counts: bool, why: String },
    /// Give up: the provider refused it, or it is out of attempts.
    Fail(String),
}

/// The rule for a refusal of an item tried `attempts` times before.
pub fn after_refusal(limits: &Limits, attempts: i64, refusal: Refusal) -> Next {
    match refusal {
        Refusal::Throttled(why) => Next::Retry { at: now_ms() + THROTTLE_PAUSE.as_millis() as i64, counts: false, why },
        Refusal::Transient(why) if (attempts.max(0) as u64 + 1) < u64::from(limits.max_attempts) => {
            let delay = retry_delay(limits, attempts.max(0) as u32 + 1);
            Next::Retry { at: now_ms() + delay.as_millis() as i64, counts: true, why }
        }
        Refusal::Transient(why) => Next::Fail(format!("{why} (after {} attempts)", attempts + 1)),
        Refusal::Permanent(why) => Next::Fail(why),
    }
}

/// Runs `provider`'s worker over `lane` until shutdown.
pub async fn run<L: Lane>(
    provider: String,
    limits: Limits,
    lane: Arc<L>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let window = Arc::new(Semaphore::new(limits.window.max(1) as usize));
    let claim_batch = i64::from(limits.window.max(CLAIM_BATCH));
    let mut pacer = Pacer::new(limits.rate_per_sec);
    // Items handed to the provider and not settled yet. A slow provider can outlast a claim
    // (CLAIM_MS); when the worker claims such a row again it must not hand it over a second time.
    let sending: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Claimed in batches (one write each), then fed through the window one by one.
        let batch = match lane.claim(claim_batch, now_ms() + CLAIM_MS).await {
            Ok(batch) => batch,
            Err(e) => {
                warn!(provider, error = %e, "reading the provider queue");
                Vec::new()
            }
        };
        let fresh: Vec<L::Item> = {
            let sending = sending.lock().unwrap_or_else(|e| e.into_inner());
            batch.into_iter().filter(|item| !sending.contains(L::id(item))).collect()
        };
        if fresh.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_LOOK) => {}
            }
            continue;
        }
        for item in fresh {
            if L::expires_at(&item) <= now_ms() {
                if !lane.expire(item).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = pacer.wait() => {}
            }
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = window.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            };
            let lane = lane.clone();
            let paused_until = pacer.paused_until.clone();
            let sending = sending.clone();
            let id = L::id(&item).to_string();
            sending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
            tokio::spawn(async move {
                let throttled = lane.hand_over(item).await;
                drop(permit);
                if throttled {
                    *paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now() + THROTTLE_PAUSE;
                }
                sending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        }
    }
}

/// Queued messages, handed to a message transport; outcomes go to messaging as events.
pub struct Messages<T> {
    pub provider: String,
    pub limits: Limits,
    pub transport: Arc<T>,
    pub store: Store,
    pub events: events::Sender,
}

impl<T: Transport> Lane for Messages<T> {
    type Item = QueuedSend;

    fn id(item: &QueuedSend) -> &str {
        &item.message_id
    }

    fn expires_at(item: &QueuedSend) -> i64 {
        item.expires_at
    }

    async fn claim(&self, limit: i64, until: i64) -> anyhow::Result<Vec<QueuedSend>> {
        self.store.claim_provider_sends(&self.provider, limit, until).await
    }

    async fn expire(&self, item: QueuedSend) -> bool {
        let ended = ChannelEvent::Ended {
            provider: self.provider.clone(),
            message_id: item.message_id,
            status: MessageDeliveryStatus::Expired,
            reason: "not accepted by the provider before it expired".into(),
        };
        self.events.send(ended).await.is_ok()
    }

    async fn hand_over(&self, message: QueuedSend) -> bool {
        let outcome = self.transport.send(&message).await;
        let provider = self.provider.as_str();
        let id = message.message_id;
        let event = match outcome {
            Ok(parts) => {
                debug!(provider, message_id = %id, parts = parts.len(), "accepted by the provider");
                ChannelEvent::Accepted { provider: provider.to_string(), message_id: id, parts }
            }
            Err(refusal) => {
                let throttled = matches!(refusal, Refusal::Throttled(_));
                match after_refusal(&self.limits, message.attempts, refusal) {
                    Next::Retry { at, counts, why } => {
                        if counts {
                            warn!(provider, message_id = %id, why, retry_at_ms = at, "send failed; will retry");
                        } else {
                            debug!(provider, message_id = %id, why, "throttled; trying again shortly");
                        }
                        if let Err(e) = self.store.provider_send_retry(&id, at, &why, counts).await {
                            warn!(provider, message_id = %id, error = %e, "rescheduling a message");
                        }
                        return throttled;
                    }
                    Next::Fail(reason) => {
                        warn!(provider, message_id = %id, reason, "the message will not be sent");
                        ChannelEvent::Ended {
                            provider: provider.to_string(),
                            message_id: id,
                            status: MessageDeliveryStatus::Failed,
                            reason,
                        }
                    }
                }
            }
        };
        // Messaging gone means shutting down: the row stays claimed and is sent after the restart.
        let _ = self.events.send(event).await;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_first_delay_up_to_the_cap() {
        let limits = Limits { retry_secs: 2, retry_max_secs: 30, ..Limits::default() };
        let delays: Vec<u64> = (1..=6).map(|a| retry_delay(&limits, a).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 30, 30]);
        assert_eq!(retry_delay(&limits, u32::MAX).as_secs(), 30, "no overflow on a huge attempt count");
    }

    /// A queue in memory whose claims never hold (every claim returns every item not done yet, as
    /// if each earlier claim had run out), with a provider that takes 100 ms an item.
    #[derive(Default)]
    struct Slow {
        items: Mutex<Vec<(String, i64)>>,
        handed: Mutex<Vec<String>>,
        expired: Mutex<Vec<String>>,
        done: Mutex<HashSet<String>>,
        out: std::sync::atomic::AtomicUsize,
        most_out: std::sync::atomic::AtomicUsize,
        throttle_first: std::sync::atomic::AtomicUsize,
    }

    impl Lane for Slow {
        type Item = (String, i64);

        fn id(item: &(String, i64)) -> &str {
            &item.0
        }

        fn expires_at(item: &(String, i64)) -> i64 {
            item.1
        }

        async fn claim(&self, limit: i64, _until: i64) -> anyhow::Result<Vec<(String, i64)>> {
            let done = self.done.lock().expect("lock").clone();
            let items = self.items.lock().expect("lock");
            Ok(items.iter().filter(|i| !done.contains(&i.0)).take(limit as usize).cloned().collect())
        }

        async fn expire(&self, item: (String, i64)) -> bool {
            self.expired.lock().expect("lock").push(item.0.clone());
            self.done.lock().expect("lock").insert(item.0);
            true
        }

        async fn hand_over(&self, item: (String, i64)) -> bool {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.out.fetch_add(1, SeqCst) + 1;
            self.most_out.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.out.fetch_sub(1, SeqCst);
            if self.throttle_first.load(SeqCst) > 0 {
                self.throttle_first.fetch_sub(1, SeqCst);
                return true;
            }
            self.handed.lock().expect("lock").push(item.0.clone());
            self.done.lock().expect("lock").insert(item.0);
            false
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_provider_gets_each_item_once_and_never_more_than_the_window() {
        let lane = Arc::new(Slow::default());
        let far = now_ms() + 3_600_000;
        lane.items.lock().expect("lock").extend((0..20).map(|i| (format!("m{i:02}"), far)));
        lane.items.lock().expect("lock").push(("stale".into(), now_ms() - 1));
        lane.throttle_first.store(2, std::sync::atomic::Ordering::SeqCst);
        let limits = Limits { window: 3, ..Limits::default() };
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run("slow".into(), limits, lane.clone(), Arc::new(Notify::new()), shutdown.clone()));
        for _ in 0..600 {
            if lane.done.lock().expect("lock").len() == 21 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        worker.await.expect("the worker ends");
        let mut handed = lane.handed.lock().expect("lock").clone();
        handed.sort();
        let expected: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
        assert_eq!(handed, expected, "each item handed over once, throttled ones again later");
        assert_eq!(*lane.expired.lock().expect("lock"), vec!["stale".to_string()]);
        assert!(lane.most_out.load(std::sync::atomic::Ordering::SeqCst) <= 3, "more than the window out at once");
        assert_eq!(lane.most_out.load(std::sync::atomic::Ordering::SeqCst), 3, "the window is used");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_hand_overs_and_holds_them_while_throttled() {
        let mut pacer = Pacer::new(10);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400), "five at 10/s: the first at once");
        *pacer.paused_until.lock().expect("lock") = Instant::now() + Duration::from_secs(1);
        let before = Instant::now();
        pacer.wait().await;
        assert_eq!(before.elapsed(), Duration::from_secs(1));
    }
}
