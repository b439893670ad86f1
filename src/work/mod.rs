//! Background work for by-tag commands: the command replies at once with a work id; the work then
//! pages through the customers carrying the tag (at that time) and applies an action to each page.
//!
//! Owns paging, the work record, its progress and its outcome, and resuming work whose node died
//! ([`resume`]). The action (what to do per customer) belongs to the command that started it: the
//! command hands it in at start, and on resume the command module rebuilds it from the encoded
//! command kept with the work (a [`resume::Rebuild`] given at start-up), so this module never
//! imports the commands.
//!
//! Progress is recorded as the last customer id of the pages finished in order: pages act
//! concurrently, so after a crash the pages beyond that point may run again (at least once, never
//! skipped). Reminders by tag are idempotent; a message by tag may reach a customer twice.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use tracing::{info, warn};

pub mod budget;
pub mod resume;

use crate::context::Hodi;
pub use crate::store::work::WorkOrder;

/// Customers handled per page (and per transaction, for actions that write).
pub const PAGE: i64 = 1000;
/// Pages of one work whose action runs at once. Pages are read one after another (each starts
/// after the last id of the one before), but their actions overlap: while one page waits on the
/// store, another waits on sockets. Bounded, so a tag of millions is never in memory.
pub const PAGES_IN_FLIGHT: usize = 3;

/// What a by-tag command does to one page of customers: given the context, the work id and the
/// page's customer ids.
pub type Action = Arc<
    dyn Fn(Arc<Hodi>, String, Vec<String>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync,
>;

/// Makes an [`Action`] from a closure returning a future.
pub fn action<F, Fut>(f: F) -> Action
where
    F: Fn(Arc<Hodi>, String, Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move |hodi, work_id, page| Box::pin(f(hodi, work_id, page)))
}

/// Starts work over the customers of the order's org tagged with its tag; returns its id, or why
/// it was refused (the org has too much work unfinished).
pub async fn start(hodi: Arc<Hodi>, order: WorkOrder, action: Action) -> anyhow::Result<Result<String, String>> {
    let unfinished = match hodi.work.admit(&order.org_id) {
        Ok(u) => u,
        Err(why) => return Ok(Err(why)),
    };
    let work_id = hodi.store.start_work(&order).await?;
    let progress = Progress { work_id: work_id.clone(), after: String::new(), customers: 0 };
    tokio::spawn(run(hodi, order, progress, action, unfinished));
    Ok(Ok(work_id))
}

/// How far a work has got: every customer up to `after` (in id order) is handled.
struct Progress {
    work_id: String,
    after: String,
    customers: i64,
}

/// Why a work stopped before the end.
enum Stopped {
    Failed(anyhow::Error),
    /// Another node took it over (this one was thought dead): it carries on there.
    TakenOver,
}

impl<E: Into<anyhow::Error>> From<E> for Stopped {
    fn from(e: E) -> Self {
        Stopped::Failed(e.into())
    }
}

/// One page whose action runs: its place in order, its last customer and size.
struct Page {
    last: String,
    len: i64,
    done: bool,
}

async fn run(
    hodi: Arc<Hodi>,
    order: WorkOrder,
    mut progress: Progress,
    action: Action,
    unfinished: budget::Unfinished,
) {
    let _unfinished = unfinished;
    let kind = order.kind.clone();
    let id = progress.work_id.clone();
    let outcome = pages(&hodi, &order, &mut progress, &action).await;
    let error = match outcome {
        Ok(()) => None,
        Err(Stopped::TakenOver) => {
            info!(work_id = %id, kind, customers = progress.customers, "work taken over by another node");
            return;
        }
        Err(Stopped::Failed(e)) => Some(e.to_string()),
    };
    match &error {
        None => info!(work_id = %id, kind, customers = progress.customers, "work done"),
        Some(e) => warn!(work_id = %id, kind, customers = progress.customers, error = %e, "work failed"),
    }
    match hodi.store.finish_work(&id, progress.customers, error.as_deref()).await {
        Ok(true) => {}
        Ok(false) => info!(work_id = %id, kind, "work was taken over by another node before it ended here"),
        Err(e) => warn!(work_id = %id, error = %e, "recording the end of work"),
    }
}

/// Pages through the tag from `progress`, acting on up to [`PAGES_IN_FLIGHT`] pages at once and
/// recording progress as pages finish in order.
async fn pages(hodi: &Arc<Hodi>, order: &WorkOrder, progress: &mut Progress, action: &Action) -> Result<(), Stopped> {
    let mut running = FuturesUnordered::new();
    // Pages started and not yet folded into `progress`, oldest first; a page's place is
    // `first + index`.
    let mut window: VecDeque<Page> = VecDeque::with_capacity(PAGES_IN_FLIGHT);
    let mut first = 0u64;
    let mut after = progress.after.clone();
    for next in 0u64.. {
        while running.len() >= PAGES_IN_FLIGHT {
            if let Some(done) = running.next().await {
                finished(hodi, progress, &mut window, &mut first, done).await?;
            }
        }
        // The page's place in the process budget covers reading it and acting on it. The pages
        // already running hold places, so they are driven while this one waits.
        let place = loop {
            tokio::select! {
                place = hodi.work.pages.clone().acquire_owned() => break place?,
                Some(done) = running.next(), if !running.is_empty() => {
                    finished(hodi, progress, &mut window, &mut first, done).await?;
                }
            }
        };
        let (tag_key, tag_value) = &order.tag;
        let page = hodi.store.customers_tagged(&order.org_id, tag_key, tag_value, &after, PAGE).await?;
        let Some(last) = page.last().cloned() else { break };
        window.push_back(Page { last: last.clone(), len: page.len() as i64, done: false });
        let acting = action(hodi.clone(), progress.work_id.clone(), page);
        running.push(async move {
            let _place = place;
            (next, acting.await)
        });
        after = last;
        // Let interactive work in between pages.
        tokio::task::yield_now().await;
    }
    while let Some(done) = running.next().await {
        finished(hodi, progress, &mut window, &mut first, done).await?;
    }
    Ok(())
}

/// A page's action ended: on success, fold the pages finished in order into `progress` and
/// record it.
async fn finished(
    hodi: &Hodi,
    progress: &mut Progress,
    window: &mut VecDeque<Page>,
    first: &mut u64,
    (place, outcome): (u64, anyhow::Result<()>),
) -> Result<(), Stopped> {
    outcome?;
    let index = usize::try_from(place - *first).unwrap_or(usize::MAX);
    if let Some(page) = window.get_mut(index) {
        page.done = true;
    }
    let mut advanced = false;
    while window.front().is_some_and(|p| p.done) {
        if let Some(page) = window.pop_front() {
            progress.after = page.last;
            progress.customers += page.len;
            *first += 1;
            advanced = true;
        }
    }
    if advanced && !hodi.store.advance_work(&progress.work_id, &progress.after, progress.customers).await? {
        return Err(Stopped::TakenOver);
    }
    Ok(())
}
