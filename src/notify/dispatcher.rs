//! The outbox dispatcher: delivers queued notifications to the apps' sockets, in outbox order per
//! customer, at least once.
//!
//! Owns: which queued notifications go out now (a per-customer window of unanswered ones, per-app
//! and total caps), which socket each goes to (a customer's notifications in flight stick to one
//! socket), waiting for answers (and for late answers until the retry is due), and recording what
//! each delivery came to. Does not own how a notification is built or
//! what a reply's message does: that is [`super`]'s encoding and the [`Replies`] handler given at
//! start-up (messaging's).
//!
//! Order: a customer's notifications are put on the wire in outbox order, to the same socket while
//! any are unanswered, at most `notify.per_customer_window` at once (server-initiated requests;
//! a subscription takes one per customer at a time). A notification waiting for its retry holds
//! back the customer's later ones, so with a window of 1 nothing ever overtakes; with a larger
//! window, notifications already out when one fails may be answered before its retry.
//!
//! Reading: each app's due rows are read in seq order from a cursor that moves on each look and
//! starts again from the oldest once it reaches the end (a sweep). Rows in flight are known here
//! and skipped; a customer whose window is full is skipped for the rest of the sweep, so a
//! customer with a long queue never keeps the others waiting.
//!
//! Late answers: after `notify.reply_timeout_ms` the attempt counts as failed and a retry is
//! scheduled, but the request stays open until shortly before that retry; an answer arriving
//! meanwhile completes the delivery (no second send).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hodi_rsocket::{Payload, StartError};
use prost::Message;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::recent::Seen;
use super::{encode, subscription, Encoded, Target, Via};
use crate::context::Hodi;
use crate::store::app_data::AppDataValue;
use crate::store::outbox::{Completion, OutboxRow};
use crate::wire::ServerToAppNotificationReply;

/// Notifications read from the outbox per app per look.
const BATCH: i64 = 512;
/// Notifications offered to one subscription per look: it takes them one at a time as its
/// client grants credit, so more would only wait for demand (and give up, 250 ms later).
const STREAM_ROOM: usize = 128;
/// Answers recorded per transaction at most.
const SETTLE_BATCH: usize = 1024;
/// Deliveries awaiting answers at once, per app (one slow app cannot take every slot) and in all.
const PER_APP: usize = 4096;
const IN_FLIGHT: usize = 16384;
/// How long a delivery waits for a subscription to have credit before leaving the notification
/// queued for a later look (short: a slot held for a consumer out of credit is a slot idle).
const DEMAND_WAIT: Duration = Duration::from_millis(250);
/// Expired notifications are looked for this often.
const EXPIRY_EVERY: Duration = Duration::from_secs(10);
/// A late answer stops being awaited this long before the retry is due, so the two never meet.
const LATE_MARGIN: Duration = Duration::from_millis(50);

/// How long before a failed notification is tried again.
fn backoff_ms(attempts: i64) -> i64 {
    (1000i64 << attempts.clamp(0, 6)).min(60_000)
}

/// One notification on its way: what was sent with it and where an answer's message goes.
struct Delivery {
    row: OutboxRow,
    /// The socket it went to.
    connection_id: String,
    /// The app data the notification carried: a reply that only hands it back changes nothing.
    sent_app_data: Option<AppDataValue>,
    reply_to: Option<(crate::wire::MessagingChannelNumber, crate::wire::CustomerNumber)>,
    kind: &'static str,
}

/// What one delivery came to.
enum Outcome {
    /// The app's answer, and when it arrived (unix µs): its app-data update yields to a later one.
    Answered(Box<ServerToAppNotificationReply>, i64),
    /// Not delivered; `recorded`: the failure is already in the store (a timeout records itself).
    Failed { error: String, recorded: bool },
    /// Every subscription was out of credit: not an attempt, it stays queued as it was.
    NoDemand,
}

struct Settled {
    delivery: Delivery,
    outcome: Outcome,
}

/// A customer's notifications in flight, and the ones waiting for a retry.
struct Lane {
    count: usize,
    connection_id: String,
    /// Ones that failed or were not taken, awaiting another attempt (by seq): until they go
    /// again, nothing later does.
    waiting: HashSet<i64>,
    /// The socket the last failure happened on: the next attempt tries another if there is one.
    failed_on: Option<String>,
}

/// Notifications in flight (sent, answer awaited), per customer and per app.
#[derive(Default)]
struct InFlight {
    seqs: HashSet<i64>,
    lanes: HashMap<(String, String), Lane>,
    per_app: HashMap<String, usize>,
    /// Rows in lanes' `waiting`, per app.
    waiting_apps: HashMap<String, usize>,
    /// Answered, their completion not yet committed: not to be sent again meanwhile.
    completing: HashSet<i64>,
    /// Customers whose answered notification's app-data update is not committed yet: their next
    /// notification waits for it, so it carries the app data the app just set.
    updating: HashMap<(String, String), usize>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.seqs.len()
    }

    fn app_full(&self, app_id: &str) -> bool {
        self.per_app.get(app_id).copied().unwrap_or(0) >= PER_APP
    }

    fn lane(&self, row: &OutboxRow) -> Option<&Lane> {
        self.lanes.get(&(row.app_id.clone(), row.customer_id.clone()))
    }

    fn take(&mut self, row: &OutboxRow, connection_id: &str) {
        self.seqs.insert(row.seq);
        let lane = self.lanes.entry((row.app_id.clone(), row.customer_id.clone())).or_insert_with(|| Lane {
            count: 0,
            connection_id: connection_id.to_string(),
            waiting: HashSet::new(),
            failed_on: None,
        });
        if lane.count == 0 {
            lane.connection_id = connection_id.to_string();
        }
        lane.count += 1;
        if lane.waiting.remove(&row.seq) {
            Self::count_waiting(&mut self.waiting_apps, &row.app_id, -1);
        }
        *self.per_app.entry(row.app_id.clone()).or_default() += 1;
    }

    /// The delivery of `row` is over; `retry`: it was not answered on `connection_id` and waits
    /// for another attempt.
    fn release(&mut self, row: &OutboxRow, retry: Option<&str>) {
        if !self.seqs.remove(&row.seq) {
            return;
        }
        let key = (row.app_id.clone(), row.customer_id.clone());
        if let Some(lane) = self.lanes.get_mut(&key) {
            lane.count = lane.count.saturating_sub(1);
            if let Some(connection_id) = retry {
                if lane.waiting.insert(row.seq) {
                    Self::count_waiting(&mut self.waiting_apps, &row.app_id, 1);
                }
                lane.failed_on = Some(connection_id.to_string());
            }
            if lane.count == 0 && lane.waiting.is_empty() {
                self.lanes.remove(&key);
            }
        }
        if let Some(n) = self.per_app.get_mut(&row.app_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_app.remove(&row.app_id);
            }
        }
    }

    fn recording(&mut self, done: &[Completion]) {
        for c in done {
            self.completing.insert(c.seq);
            if c.app_data.is_some() {
                *self.updating.entry((c.app_id.clone(), c.customer_id.clone())).or_default() += 1;
            }
        }
    }

    fn recorded(&mut self, done: Vec<(i64, Option<(String, String)>)>) {
        for (seq, updated) in done {
            self.completing.remove(&seq);
            if let Some(key) = updated {
                if let Some(n) = self.updating.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.updating.remove(&key);
                    }
                }
            }
        }
    }

    fn updating(&self, row: &OutboxRow) -> bool {
        !self.updating.is_empty() && self.updating.contains_key(&(row.app_id.clone(), row.customer_id.clone()))
    }

    /// Some notification of `app_id` failed or was not taken and waits for another attempt.
    fn waiting_in(&self, app_id: &str) -> bool {
        self.waiting_apps.get(app_id).is_some_and(|n| *n > 0)
    }

    /// `row` left the outbox without a delivery (expired): it holds nothing back any more.
    fn forget(&mut self, row: &OutboxRow) {
        let key = (row.app_id.clone(), row.customer_id.clone());
        if let Some(lane) = self.lanes.get_mut(&key) {
            if lane.waiting.remove(&row.seq) {
                Self::count_waiting(&mut self.waiting_apps, &row.app_id, -1);
            }
            if lane.count == 0 && lane.waiting.is_empty() {
                self.lanes.remove(&key);
            }
        }
    }

    fn count_waiting(counts: &mut HashMap<String, usize>, app_id: &str, by: isize) {
        let n = counts.entry(app_id.to_string()).or_default();
        *n = n.saturating_add_signed(by);
        if *n == 0 {
            counts.remove(app_id);
        }
    }
}

/// Where each app's reading has got to in its sweep, and the customers skipped in this sweep
/// (their later rows must not overtake the skipped one).
#[derive(Default)]
struct Sweeps {
    apps: HashMap<String, Sweep>,
}

#[derive(Default)]
struct Sweep {
    after: i64,
    skipped: HashSet<String>,
}

/// Runs the dispatcher until `shutdown`.
///
/// Deliveries are pipelined: answers are awaited in their own tasks, which report back; the loop
/// keeps reading the outbox meanwhile, so an app that answers slowly (or a subscription out of
/// credit) holds up only its own notifications, never other apps' or other customers'.
/// What becomes of the message in an app's answer once the notification is recorded as answered
/// (messaging sends it). Given at start-up, so that notify imports no domain module.
pub type Replies = Arc<dyn Fn(Arc<Hodi>, Completion) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

pub async fn run(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken, replies: Replies) {
    match hodi.store.outbox_all_due().await {
        Ok(0) => {}
        Ok(n) => info!(notifications = n, "notifications waiting for a retry when the server stopped are due now"),
        Err(e) => warn!(error = %e, "making queued notifications due"),
    }
    let poll = Duration::from_millis(hodi.config.notify.outbox_poll_ms.max(10));
    let mut last_expiry = tokio::time::Instant::now() - EXPIRY_EVERY;
    let (settled_tx, mut settled_rx) = mpsc::channel::<Settled>(IN_FLIGHT);
    let mut in_flight = InFlight::default();
    let mut sweeps = Sweeps::default();
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    // Answers being written to the store, in the background while the loop reads and sends on
    // (one write at a time); their rows are skipped until it commits.
    let mut recording: Option<tokio::task::JoinHandle<Vec<Recorded>>> = None;
    loop {
        if last_expiry.elapsed() >= EXPIRY_EVERY {
            last_expiry = tokio::time::Instant::now();
            expire(&hodi, &mut in_flight).await;
        }
        // Answers that have come are settled before anything more is launched: the next
        // notification of a customer whose answer is waiting here must carry the app data that
        // answer sets (its customer is skipped while the answer is being recorded).
        while batch.len() < SETTLE_BATCH {
            match settled_rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let done = settle(&hodi, &mut in_flight, &mut sweeps, &mut batch).await;
            if !done.is_empty() {
                if let Some(previous) = recording.take() {
                    in_flight.recorded(previous.await.unwrap_or_default());
                }
                in_flight.recording(&done);
                recording = Some(tokio::spawn(record(hodi.clone(), done, replies.clone())));
            }
        }
        if in_flight.len() < IN_FLIGHT {
            launch(&hodi, &mut in_flight, &mut sweeps, &settled_tx).await;
        }
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            recorded = async {
                match recording.as_mut() {
                    Some(write) => write.await,
                    None => std::future::pending().await,
                }
            }, if recording.is_some() => {
                recording = None;
                in_flight.recorded(recorded.unwrap_or_default());
                None
            }
            s = settled_rx.recv() => s,
            _ = tokio::time::sleep(poll) => None,
            _ = hodi.store.outbox_changed().notified() => None,
            _ = hodi.sockets.connected.notified() => None,
        };
        // One buffer for the whole run: batches of answers come tens of times a second. Settled
        // at the top of the next turn, with whatever else has come by then.
        batch.extend(first);
    }
}

/// A completion written: its seq, and its customer if it updated app data.
type Recorded = (i64, Option<(String, String)>);

/// Completes answered notifications in one transaction, then hands their replies' messages to
/// messaging. Not recorded (a store error): they will be sent again.
async fn record(hodi: Arc<Hodi>, done: Vec<Completion>, replies: Replies) -> Vec<Recorded> {
    let seqs =
        done.iter().map(|c| (c.seq, c.app_data.is_some().then(|| (c.app_id.clone(), c.customer_id.clone())))).collect();
    match hodi.store.outbox_complete(&done).await {
        Ok(()) => {
            hodi.notify_stats.answered.fetch_add(done.len() as u64, Ordering::Relaxed);
            for c in done.into_iter().filter(|c| c.message.is_some()) {
                tokio::spawn(replies(hodi.clone(), c));
            }
        }
        Err(e) => warn!(error = %e, "recording delivered notifications; they will be sent again"),
    }
    seqs
}

async fn expire(hodi: &Hodi, in_flight: &mut InFlight) {
    match hodi.store.outbox_expire().await {
        Ok(expired) => {
            hodi.notify_stats.expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
            for row in expired {
                in_flight.forget(&row);
                warn!(notification_id = %row.id, app_id = %row.app_id, customer_id = %row.customer_id,
                      attempts = row.attempts, "notification expired undelivered");
            }
        }
        Err(e) => warn!(error = %e, "expiring notifications"),
    }
}

/// The sockets of each app for one look, whose turn it is among them, and how many more
/// requests each can queue in this look (its outbound queue's free room).
#[derive(Default)]
struct Turns {
    apps: HashMap<String, (Vec<Target>, usize)>,
    room: HashMap<String, usize>,
}

impl Turns {
    /// The socket for `row`: while its customer has notifications in flight, theirs (if still
    /// connected; None when it has no room left in this look); else the next in turn with room,
    /// sockets that can take one now first, and not the one the customer's last failure happened
    /// on unless it is the only one.
    fn target(&mut self, hodi: &Hodi, row: &OutboxRow, lane: Option<&Lane>) -> Option<Target> {
        let (targets, next) = self
            .apps
            .entry(row.app_id.clone())
            .or_insert_with(|| (hodi.sockets.candidates(&row.org_id, &row.app_id), 0));
        let room = &mut self.room;
        let mut has_room = |t: &Target| *room_left(room, t) > 0;
        if let Some(lane) = lane.filter(|l| l.count > 0) {
            if let Some(t) = targets.iter().find(|t| t.session.connection_id == lane.connection_id) {
                return has_room(t).then(|| t.clone());
            }
        }
        let avoid = lane.and_then(|l| l.failed_on.as_deref());
        let n = targets.len();
        let pick = (0..n).map(|i| (*next + i) % n).find(|&i| {
            let t = &targets[i];
            t.ready() && has_room(t) && (n == 1 || Some(t.session.connection_id.as_str()) != avoid)
        });
        let pick = pick.or_else(|| (0..n).map(|i| (*next + i) % n).find(|&i| has_room(&targets[i])))?;
        *next = next.wrapping_add(1);
        targets.get(pick).cloned()
    }

    /// How many requests the sockets of `app_id` can queue in this look, all together.
    fn room_of(&mut self, hodi: &Hodi, app_id: &str) -> usize {
        let Some(org_id) = hodi.sockets.org_of(app_id) else { return 0 };
        let (targets, _) =
            self.apps.entry(app_id.to_string()).or_insert_with(|| (hodi.sockets.candidates(&org_id, app_id), 0));
        let mut total = 0usize;
        for t in targets.iter() {
            let n = *room_left(&mut self.room, t);
            // A subscription takes few per look but one per customer: read a whole batch to find
            // customers with nothing out.
            let read = match t.via {
                Via::Request => n,
                Via::Stream(_) if n > 0 => BATCH as usize,
                Via::Stream(_) => 0,
            };
            total = total.saturating_add(read);
        }
        total
    }

    /// One request is going to `target` in this look.
    fn spend(&mut self, target: &Target) {
        if let Some(n) = self.room.get_mut(&target.session.connection_id) {
            *n = n.saturating_sub(1);
        }
    }

    /// No socket of `app_id` has room left in this look.
    fn app_full(&self, app_id: &str) -> bool {
        self.apps.get(app_id).is_some_and(|(targets, _)| {
            targets.iter().all(|t| self.room.get(&t.session.connection_id).is_some_and(|n| *n == 0))
        })
    }
}

/// What `target` can still take in this look: first asked, its outbound queue's free room (a
/// subscription: [`STREAM_ROOM`]), then counted down by [`Turns::spend`].
fn room_left<'a>(room: &'a mut HashMap<String, usize>, target: &Target) -> &'a mut usize {
    room.entry(target.session.connection_id.clone()).or_insert_with(|| match target.via {
        Via::Request => target.session.requester.capacity(),
        Via::Stream(_) => STREAM_ROOM,
    })
}

/// Reads the due notifications of apps that can take more and sends each that its customer's
/// window and its app's cap allow, in outbox order.
async fn launch(hodi: &Arc<Hodi>, in_flight: &mut InFlight, sweeps: &mut Sweeps, settled: &mpsc::Sender<Settled>) {
    let window = hodi.config.notify.per_customer_window.max(1);
    // An app this node has just taken over from another is read again from its oldest row: the
    // other node's unanswered notifications are still queued, behind wherever our cursor was.
    for app in hodi.delivery.take_gained() {
        sweeps.apps.remove(&app);
    }
    let apps: Vec<String> = hodi
        .sockets
        .connected_apps()
        .into_iter()
        .filter(|app| hodi.delivery.delivers(app) && !in_flight.app_full(app))
        .collect();
    let mut turns = Turns::default();
    let mut chosen: Vec<(OutboxRow, Option<AppDataValue>, Target)> = Vec::new();
    for app in apps {
        let sweep = sweeps.apps.entry(app.clone()).or_default();
        // No more rows than the app's sockets can queue now (reading more would be read again).
        let room = turns.room_of(hodi, &app);
        if room == 0 {
            continue;
        }
        let limit = BATCH.min(i64::try_from(room).unwrap_or(BATCH));
        let rows = match hodi.store.outbox_due(&app, sweep.after, limit).await {
            Ok(r) => r,
            Err(e) => return warn!(error = %e, "reading the outbox"),
        };
        let mut at_end = (rows.len() as i64) < limit;
        // The last row looked at: a look cut short resumes after it, never past rows unseen.
        let mut upto = sweep.after;
        for (row, data) in rows {
            if in_flight.len() + chosen.len() >= IN_FLIGHT || in_flight.app_full(&row.app_id) {
                at_end = false;
                break;
            }
            let seq = row.seq;
            if in_flight.seqs.contains(&seq)
                || in_flight.completing.contains(&seq)
                || sweep.skipped.contains(&row.customer_id)
            {
                upto = seq;
                continue;
            }
            if in_flight.updating(&row) {
                sweep.skipped.insert(row.customer_id.clone());
                upto = seq;
                continue;
            }
            let lane = in_flight.lane(&row);
            let Some(target) = turns.target(hodi, &row, lane) else {
                if turns.app_full(&row.app_id) || lane.is_none_or(|l| l.count == 0) {
                    // Every socket's queue is full (or there is none): resume here next look.
                    at_end = false;
                    break;
                }
                // Its customer's socket is full: it and its later ones wait for the next look.
                sweep.skipped.insert(row.customer_id.clone());
                upto = seq;
                continue;
            };
            // A subscription takes a customer's notifications one at a time (hodi-sdk has its own window).
            let limit = if matches!(target.via, Via::Stream(_)) { 1 } else { window };
            let held_back = match lane {
                None => false,
                Some(l) if l.waiting.is_empty() => l.count >= limit,
                // Only the oldest waiting for a retry may go (it takes its own place back).
                Some(l) => l.waiting.iter().min() != Some(&seq),
            };
            upto = seq;
            if held_back {
                sweep.skipped.insert(row.customer_id.clone());
                continue;
            }
            in_flight.take(&row, &target.session.connection_id);
            turns.spend(&target);
            chosen.push((row, data, target));
        }
        // At the end of the queue, rows behind the cursor need another look only if some were
        // skipped or wait for a retry; otherwise the next look goes on from here (seqs are never
        // reused, so nothing new can appear behind it).
        if at_end && (!sweep.skipped.is_empty() || in_flight.waiting_in(&app)) {
            *sweep = Sweep::default();
        } else {
            sweep.after = upto;
        }
    }
    // A socket whose queue filled up (or that closed) takes nothing more in this look, so none
    // of its customers' later notifications can overtake the one left behind.
    let mut refused: HashSet<String> = HashSet::new();
    for (row, data, target) in chosen {
        let connection_id = &target.session.connection_id;
        // Not sent: held as waiting (due at once), so the customer's later ones stay behind it.
        if refused.contains(connection_id) {
            in_flight.release(&row, Some(connection_id));
            continue;
        }
        let mut row = row;
        let Encoded { payload, reply_to, kind } = match encode(&row, data.clone()) {
            Ok(e) => e,
            Err(why) => {
                let delivery = Delivery {
                    row,
                    connection_id: connection_id.clone(),
                    sent_app_data: None,
                    reply_to: None,
                    kind: "other",
                };
                let outcome = Outcome::Failed { error: why, recorded: false };
                let _ = settled.try_send(Settled { delivery, outcome });
                continue;
            }
        };
        if row.seen {
            hodi.notify_stats.redelivered.fetch_add(1, Ordering::Relaxed);
            warn!(notification_id = %row.id, app_id = %row.app_id, customer_id = %row.customer_id,
                  attempt = row.attempts + 1, cause = row.last_error.as_deref().unwrap_or(""),
                  "notification sent again (its earlier attempt went unanswered)");
        }
        row.entry = Vec::new(); // on the wire now; no need to hold it while the answer is awaited
        let delivery = Delivery { row, connection_id: connection_id.clone(), sent_app_data: data, reply_to, kind };
        match &target.via {
            Via::Request => match target.session.requester.start_request_response(payload) {
                Ok(pending) => {
                    hodi.notify_stats.sent.fetch_add(1, Ordering::Relaxed);
                    let answer = async move {
                        match pending.await {
                            Ok(p) => Ok(decode_reply(&p)),
                            Err(e) => Err(e.to_string()),
                        }
                    };
                    spawn_wait(hodi, delivery, answer, settled);
                }
                Err(e) => {
                    if let StartError::Request(e) = &e {
                        info!(%connection_id, error = %e, "socket closed before a notification could be sent");
                    }
                    refused.insert(connection_id.clone());
                    in_flight.release(&delivery.row, Some(connection_id));
                }
            },
            Via::Stream(sub) => {
                let (hodi, sub, settled) = (hodi.clone(), sub.clone(), settled.clone());
                tokio::spawn(async move {
                    let outcome = match sub.offer(&delivery.row.id, payload, DEMAND_WAIT).await {
                        Ok(answer) => {
                            hodi.notify_stats.sent.fetch_add(1, Ordering::Relaxed);
                            let answer = async move { answer.await.map_err(|e| format!("subscription {e:?}")) };
                            wait_for_answer(&hodi, &delivery.row, answer).await
                        }
                        Err(subscription::Refused::NoDemand) => Outcome::NoDemand,
                        Err(e) => Outcome::Failed { error: format!("subscription {e:?}"), recorded: false },
                    };
                    // The loop holds the receiver until shutdown; after that nobody needs telling.
                    let _ = settled.send(Settled { delivery, outcome }).await;
                });
            }
        }
    }
}

/// A reply's payload as a `ServerToAppNotificationReply`. Delivered either way: the app saw it;
/// an unreadable reply changes nothing, but say so.
fn decode_reply(payload: &Payload) -> ServerToAppNotificationReply {
    ServerToAppNotificationReply::decode(payload.data.clone()).unwrap_or_else(|e| {
        warn!(error = %e, "notification reply is not a ServerToAppNotificationReply");
        ServerToAppNotificationReply::default()
    })
}

fn spawn_wait(
    hodi: &Arc<Hodi>,
    delivery: Delivery,
    answer: impl Future<Output = Result<ServerToAppNotificationReply, String>> + Send + 'static,
    settled: &mpsc::Sender<Settled>,
) {
    let (hodi, settled) = (hodi.clone(), settled.clone());
    tokio::spawn(async move {
        let outcome = wait_for_answer(&hodi, &delivery.row, answer).await;
        // The loop holds the receiver until shutdown; after that nobody needs telling.
        let _ = settled.send(Settled { delivery, outcome }).await;
    });
}

/// Waits for the app's answer for the reply timeout; then records the attempt as failed (a retry
/// after the backoff) and keeps waiting until just before that retry: a late answer still counts.
async fn wait_for_answer(
    hodi: &Hodi,
    row: &OutboxRow,
    answer: impl Future<Output = Result<ServerToAppNotificationReply, String>>,
) -> Outcome {
    let timeout = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    tokio::pin!(answer);
    match tokio::time::timeout(timeout, &mut answer).await {
        Ok(Ok(reply)) => return Outcome::Answered(Box::new(reply), crate::store::now_us()),
        Ok(Err(error)) => return Outcome::Failed { error, recorded: false },
        Err(_) => {}
    }
    hodi.notify_stats.unanswered.fetch_add(1, Ordering::Relaxed);
    let error = format!("no reply within {} ms", timeout.as_millis());
    let backoff = backoff_ms(row.attempts);
    let recorded = match hodi.store.outbox_failed(row.seq, &error, crate::store::now_ms() + backoff, true).await {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "recording an unanswered notification");
            false
        }
    };
    info!(notification_id = %row.id, app_id = %row.app_id, customer_id = %row.customer_id, attempts = row.attempts + 1,
          retry_in_ms = backoff, "notification unanswered; it is sent again unless its answer comes first");
    let late = Duration::from_millis(backoff.unsigned_abs()).saturating_sub(LATE_MARGIN);
    match tokio::time::timeout(late, &mut answer).await {
        Ok(Ok(reply)) => {
            hodi.notify_stats.late_answers.fetch_add(1, Ordering::Relaxed);
            info!(notification_id = %row.id, "late answer taken; the notification is not sent again");
            Outcome::Answered(Box::new(reply), crate::store::now_us())
        }
        Ok(Err(_)) | Err(_) => Outcome::Failed { error, recorded },
    }
}

/// Takes what deliveries came to: failures scheduled for retry, out-of-credit ones released as
/// they were; returns the answered ones, for [`record`].
async fn settle(
    hodi: &Arc<Hodi>,
    in_flight: &mut InFlight,
    sweeps: &mut Sweeps,
    batch: &mut Vec<Settled>,
) -> Vec<Completion> {
    let mut done = Vec::with_capacity(batch.len());
    for Settled { delivery, outcome } in batch.drain(..) {
        let Delivery { row, connection_id, sent_app_data, reply_to, kind } = delivery;
        let outcome_word = match &outcome {
            // The common case costs no allocation: this runs for every notification.
            Outcome::Answered(..) => Some(std::borrow::Cow::Borrowed("answered")),
            Outcome::Failed { error, .. } => Some(std::borrow::Cow::Owned(error.clone())),
            Outcome::NoDemand => None,
        };
        if let Some(outcome) = outcome_word {
            let seen = Seen {
                at: crate::store::now_ms(),
                app_id: row.app_id.clone(),
                customer_id: row.customer_id.clone(),
                kind,
                outcome,
                attempt: row.attempts + 1,
            };
            hodi.recent_notifications.record(&row.org_id, seen);
        }
        // Failed: it goes again before anything later of its customer. Never taken (no credit):
        // not an attempt; its customer sits out the rest of the sweep, which then starts again
        // from the oldest and finds it first.
        let retry = matches!(outcome, Outcome::Failed { .. }).then_some(connection_id.as_str());
        if matches!(outcome, Outcome::NoDemand) {
            sweeps.apps.entry(row.app_id.clone()).or_default().skipped.insert(row.customer_id.clone());
        }
        in_flight.release(&row, retry);
        match outcome {
            Outcome::Answered(reply, answered_us) => {
                let update =
                    reply.data_update.as_ref().and_then(|u| u.data.as_ref()).and_then(crate::convert::stored_app_data);
                done.push(Completion {
                    seq: row.seq,
                    notification_id: row.id,
                    org_id: row.org_id,
                    app_id: row.app_id,
                    customer_id: row.customer_id,
                    // The Elarian SDKs hand back the app data they were sent when a handler sets
                    // none; storing that echo would undo a newer update from another answer.
                    app_data: update.filter(|v| Some(v) != sent_app_data.as_ref()),
                    answered_us,
                    message: reply.message,
                    reply_to,
                });
            }
            Outcome::NoDemand => {}
            Outcome::Failed { error, recorded } => {
                if !recorded {
                    let retry = crate::store::now_ms() + backoff_ms(row.attempts);
                    info!(notification_id = %row.id, attempts = row.attempts + 1, %error, "notification not delivered; will retry");
                    if let Err(e) = hodi.store.outbox_failed(row.seq, &error, retry, false).await {
                        warn!(error = %e, "recording a failed delivery");
                    }
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, customer_id: &str) -> OutboxRow {
        OutboxRow {
            seq,
            id: format!("ntf_{seq}"),
            org_id: "org".into(),
            app_id: "app".into(),
            customer_id: customer_id.into(),
            entry: Vec::new(),
            created_at: 0,
            attempts: 0,
            purse: false,
            seen: false,
            last_error: None,
        }
    }

    #[test]
    fn retries_back_off_from_one_second_doubling_to_a_minute() {
        let waits: Vec<i64> = (-1..=8).map(backoff_ms).collect();
        assert_eq!(waits, [1000, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
        assert_eq!(backoff_ms(i64::MAX), 60_000, "no overflow however many attempts");
    }

    #[test]
    fn a_customers_lane_holds_its_socket_and_failures_until_all_are_settled() {
        let mut f = InFlight::default();
        let (a, b) = (row(1, "cst_a"), row(2, "cst_a"));
        f.take(&a, "conn-1");
        f.take(&b, "conn-2");
        // The lane keeps the socket of its first notification while any is out.
        assert_eq!(f.lane(&a).map(|l| (l.count, l.connection_id.as_str())), Some((2, "conn-1")));
        assert_eq!((f.len(), f.per_app.get("app").copied()), (2, Some(2)));

        // One fails: it waits for a retry, and the lane remembers where it failed.
        f.release(&a, Some("conn-1"));
        assert!(f.waiting_in("app"));
        assert_eq!(f.lane(&a).and_then(|l| l.failed_on.as_deref()), Some("conn-1"));
        // Releasing it again changes nothing (no double count, no underflow).
        f.release(&a, Some("conn-1"));
        assert_eq!((f.len(), f.per_app.get("app").copied()), (1, Some(1)));

        f.release(&b, None);
        assert!(f.lane(&a).is_some(), "a lane with a notification waiting for its retry stays");
        assert!(!f.app_full("app"));

        // Its retry goes out and is answered: nothing of the customer or the app is left.
        f.take(&a, "conn-2");
        assert!(!f.waiting_in("app"));
        f.release(&a, None);
        assert!(f.lane(&a).is_none() && f.per_app.is_empty() && f.waiting_apps.is_empty() && f.len() == 0);
    }

    #[test]
    fn an_expired_notification_no_longer_holds_its_customer_back() {
        let mut f = InFlight::default();
        let a = row(7, "cst_b");
        f.take(&a, "conn-1");
        f.release(&a, Some("conn-1"));
        assert!(f.waiting_in("app"));
        f.forget(&a);
        assert!(!f.waiting_in("app") && f.lane(&a).is_none());
    }

    #[test]
    fn a_customers_next_notification_waits_for_its_app_data_update_to_commit() {
        let mut f = InFlight::default();
        let a = row(3, "cst_c");
        let completion = |app_data: Option<AppDataValue>| Completion {
            seq: 3,
            notification_id: "ntf_3".into(),
            org_id: "org".into(),
            app_id: "app".into(),
            customer_id: "cst_c".into(),
            app_data,
            answered_us: 0,
            message: None,
            reply_to: None,
        };
        f.recording(&[completion(None)]);
        assert!(!f.updating(&a), "an answer without app data holds nothing back");
        f.recording(&[completion(Some(AppDataValue::Text("x".into())))]);
        assert!(f.updating(&a) && f.completing.contains(&3));
        f.recorded(vec![(3, Some(("app".into(), "cst_c".into())))]);
        assert!(!f.updating(&a) && !f.completing.contains(&3));
    }
}
