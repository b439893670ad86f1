//! What one connection's reader, writer and every [`Requester`](super::Requester) share: the
//! bounded outbound queue and its byte budget, the pending-request table (our requests awaiting
//! the peer), the inbound handlers (the peer's requests being answered), stream ids, and the close.
//!
//! Owns the close: [`Shared::shut`] fails every pending request and aborts every handler, once.
//! Must not read frames (that is the engine's) or write the transport (that is the writer's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::{Config, Fatal, RequestError};
use crate::frame::{Frame, MAX_U31};
use crate::payload::Payload;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Server,
    Client,
}

impl Role {
    /// Whether `id` is one the peer may use to start a stream.
    pub(super) fn is_peer_stream(self, id: u32) -> bool {
        match self {
            Role::Server => id % 2 == 1,
            Role::Client => id.is_multiple_of(2),
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// The writer task of the current transport: it hands the queue back when the transport is lost.
pub(super) type WriterTask = tokio::task::JoinHandle<Option<mpsc::Receiver<Outbound>>>;

pub(super) enum Outbound {
    /// A frame and its place in the byte budget (none for small control frames: CANCEL,
    /// REQUEST_N, a last ERROR), given back once the writer has taken it.
    /// Boxed: the queue allocates its slots in blocks of 32, and an unboxed frame made that block
    /// 6 KB on every connection, idle or not.
    Frame(Box<Frame>, Option<OwnedSemaphorePermit>),
    /// Flush what is queued, then close the transport.
    Close,
}

pub(super) enum Pending {
    Response(oneshot::Sender<Result<Payload, RequestError>>),
    Stream(mpsc::Sender<Result<Payload, RequestError>>),
}

#[derive(Default)]
pub(super) struct PendingTable {
    pub(super) closed: Option<String>,
    pub(super) entries: HashMap<u32, Pending>,
}

pub(super) struct InboundHandle {
    pub(super) abort: Option<AbortHandle>,
    pub(super) credits: Option<Arc<Semaphore>>,
}

pub(super) struct Shared {
    pub(super) role: Role,
    pub(super) peer: String,
    pub(super) out: mpsc::Sender<Outbound>,
    /// Bytes that may still be queued for the writer (see [`Config::max_outbound_bytes`]).
    pub(super) room: Arc<Semaphore>,
    pub(super) budget: usize,
    pub(super) pending: Mutex<PendingTable>,
    pub(super) inbound: Mutex<HashMap<u32, InboundHandle>>,
    pub(super) next_id: AtomicU32,
    pub(super) closed: CancellationToken,
    /// Set when the connection may be resumed (SETUP carried a resume token both sides accept).
    pub(super) resume: Option<Arc<super::resume::ResumeState>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a way that
    // matters more than losing the connection, so recover the guard rather than propagate poison.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Queues `frame`, waiting for room in the byte budget and the frame queue.
    pub(super) async fn send(&self, frame: Frame) -> Result<(), RequestError> {
        let cost = self.cost(&frame);
        let queued = async {
            let place = self.room.clone().acquire_many_owned(cost).await.map_err(|_| ())?;
            self.out.send(Outbound::Frame(Box::new(frame), Some(place))).await.map_err(|_| ())
        };
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => Err(self.closed_error()),
            sent = queued => sent.map_err(|_| self.closed_error()),
        }
    }

    /// Queues a small control frame if there is room in the frame queue, outside the byte budget.
    pub(super) fn control(&self, frame: Frame) {
        let _ = self.out.try_send(Outbound::Frame(Box::new(frame), None));
    }

    /// A frame's share of the byte budget: its encoded size, but never more than the whole
    /// budget, so one message larger than the budget still goes (alone).
    pub(super) fn cost(&self, frame: &Frame) -> u32 {
        frame.encoded_len().clamp(1, self.budget) as u32
    }

    /// Bytes queued for the writer now.
    pub(super) fn queued_bytes(&self) -> usize {
        self.budget.saturating_sub(self.room.available_permits())
    }

    pub(super) fn closed_error(&self) -> RequestError {
        RequestError::Closed(lock(&self.pending).closed.clone().unwrap_or_else(|| "connection closed".into()))
    }

    pub(super) fn allocate_id(&self) -> u32 {
        // Ids wrap at 2^31; a connection that issues two billion requests reuses ids of long-finished
        // streams, which the spec allows once they are no longer in use.
        let id = self.next_id.fetch_add(2, Ordering::Relaxed) & MAX_U31;
        if id == 0 {
            self.next_id.fetch_add(2, Ordering::Relaxed) & MAX_U31
        } else {
            id
        }
    }

    /// Records the close reason, fails every pending request and aborts every inbound handler.
    pub(super) fn shut(&self, reason: &str) {
        let entries = {
            let mut table = lock(&self.pending);
            if table.closed.is_none() {
                table.closed = Some(reason.to_string());
            }
            std::mem::take(&mut table.entries)
        };
        let error = RequestError::Closed(reason.to_string());
        for (_, pending) in entries {
            match pending {
                Pending::Response(tx) => {
                    let _ = tx.send(Err(error.clone()));
                }
                Pending::Stream(tx) => {
                    let _ = tx.try_send(Err(error.clone()));
                }
            }
        }
        for (_, handle) in lock(&self.inbound).drain() {
            if let Some(abort) = handle.abort {
                abort.abort();
            }
        }
        self.closed.cancel();
    }
}

pub(super) fn new_shared(
    role: Role,
    peer: String,
    config: &Config,
    resume: Option<Arc<super::resume::ResumeState>>,
) -> (Arc<Shared>, mpsc::Receiver<Outbound>) {
    let (out, rx) = mpsc::channel(config.outbound_queue.max(1));
    // A cost is a u32 of semaphore permits.
    let budget = config.max_outbound_bytes.clamp(1, (u32::MAX as usize).min(Semaphore::MAX_PERMITS));
    let shared = Arc::new(Shared {
        role,
        peer,
        out,
        room: Arc::new(Semaphore::new(budget)),
        budget,
        pending: Mutex::new(PendingTable::default()),
        inbound: Mutex::new(HashMap::new()),
        next_id: AtomicU32::new(match role {
            Role::Server => 2,
            Role::Client => 1,
        }),
        closed: CancellationToken::new(),
        resume,
    });
    (shared, rx)
}

/// Sends a last ERROR, lets the writer flush it, and closes.
pub(super) async fn close_with(shared: &Shared, writer: WriterTask, fatal: Option<Fatal>, reason: &str) {
    if let Some(f) = fatal {
        shared.control(Frame::error(0, f.code, &f.message));
    }
    let _ = shared.out.try_send(Outbound::Close);
    shared.shut(reason);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

/// Shuts a connection's shared state when dropped.
pub(super) struct ShutOnDrop(pub(super) Arc<Shared>);

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        // The server is going away (shutdown): a resumable session is told not to come back for
        // it — a restarted server knows no sessions — so its client starts afresh at once.
        if self.0.resume.is_some() && !self.0.closed.is_cancelled() {
            self.0.control(Frame::error(0, crate::frame::error_code::CONNECTION_CLOSE, "the server is shutting down"));
            let _ = self.0.out.try_send(Outbound::Close);
        }
        self.0.shut("connection dropped by the server");
    }
}
