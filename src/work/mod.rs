//! Background work for by-tag commands: the command replies at once with a work id; the work then
//! pages through the customers carrying the tag (at that time) and applies an action to each page.
//!
//! Owns paging, the work record and its outcome. The action (what to do per customer) belongs to
//! the command that started it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use tracing::{info, warn};

use crate::context::Hodi;

/// Customers handled per page (and per transaction, for actions that write).
pub const PAGE: i64 = 1000;
/// Pages of one work whose action runs at once. Pages are read one after another (each starts
/// after the last id of the one before), but their actions overlap: while one page waits on the
/// store, another waits on sockets. Bounded, so a tag of millions is never in memory.
pub const PAGES_IN_FLIGHT: usize = 3;

/// What all by-tag work in the process may use at once, so that it never starves interactive
/// commands of database connections (500 by-tag sends once made a `getState` wait 12 s): pages
/// being read or acted on, across every work (`work.pages_in_flight`, each page uses one
/// connection at a time), and unfinished works per org (`work.max_unfinished_per_org`; beyond,
/// a by-tag command is refused rather than queued without bound).
pub struct Budget {
    pages: Arc<Semaphore>,
    max_per_org: usize,
    unfinished: Mutex<HashMap<String, usize>>,
}

impl Budget {
    pub fn new(config: &crate::config::Work) -> Budget {
        Budget {
            pages: Arc::new(Semaphore::new(config.pages_in_flight.max(1))),
            max_per_org: config.max_unfinished_per_org.max(1),
            unfinished: Mutex::new(HashMap::new()),
        }
    }

    fn unfinished(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.unfinished.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(self: &Arc<Self>, org_id: &str) -> Result<Unfinished, String> {
        let mut unfinished = self.unfinished();
        let n = unfinished.entry(org_id.to_string()).or_insert(0);
        if *n >= self.max_per_org {
            return Err(format!(
                "this org has {} by-tag commands still running, the limit; try again when some have finished",
                self.max_per_org
            ));
        }
        *n += 1;
        Ok(Unfinished { budget: self.clone(), org_id: org_id.to_string() })
    }
}

/// One unfinished work of an org; dropping it counts the work finished.
struct Unfinished {
    budget: Arc<Budget>,
    org_id: String,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let mut unfinished = self.budget.unfinished();
        if let Some(n) = unfinished.get_mut(&self.org_id) {
            *n -= 1;
            if *n == 0 {
                unfinished.remove(&self.org_id);
            }
        }
    }
}

/// Starts work of `kind` over the customers of `org_id` tagged (key, value); returns its id, or
/// why it was refused (the org has too much work unfinished). `action` receives each page of
/// customer ids.
pub async fn start<F, Fut>(
    hodi: Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    kind: &'static str,
    tag: (String, String),
    action: F,
) -> anyhow::Result<Result<String, String>>
where
    F: Fn(Arc<Hodi>, String, Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let unfinished = match hodi.work.admit(org_id) {
        Ok(u) => u,
        Err(why) => return Ok(Err(why)),
    };
    let work_id = hodi.store.start_work(org_id, app_id, kind).await?;
    let (org_id, id) = (org_id.to_string(), work_id.clone());
    tokio::spawn(async move {
        let _unfinished = unfinished;
        let mut after = String::new();
        let mut count = 0i64;
        let outcome: anyhow::Result<()> = async {
            let mut running = FuturesUnordered::new();
            loop {
                while running.len() >= PAGES_IN_FLIGHT {
                    if let Some(done) = running.next().await {
                        done?;
                    }
                }
                // The page's place in the process budget covers reading it and acting on it. The
                // pages already running hold places, so they are driven while this one waits.
                let place = loop {
                    tokio::select! {
                        place = hodi.work.pages.clone().acquire_owned() => break place?,
                        Some(done) = running.next(), if !running.is_empty() => done?,
                    }
                };
                let page = hodi.store.customers_tagged(&org_id, &tag.0, &tag.1, &after, PAGE).await?;
                let Some(last) = page.last().cloned() else { break };
                count += page.len() as i64;
                let acting = action(hodi.clone(), id.clone(), page);
                running.push(async move {
                    let _place = place;
                    acting.await
                });
                after = last;
                // Let interactive work in between pages.
                tokio::task::yield_now().await;
            }
            while let Some(done) = running.next().await {
                done?;
            }
            Ok(())
        }
        .await;
        let error = outcome.as_ref().err().map(|e| e.to_string());
        match &error {
            None => info!(work_id = %id, kind, customers = count, "work done"),
            Some(e) => warn!(work_id = %id, kind, customers = count, error = %e, "work failed"),
        }
        if let Err(e) = hodi.store.finish_work(&id, count, error.as_deref()).await {
            warn!(work_id = %id, error = %e, "recording the end of work");
        }
    });
    Ok(Ok(work_id))
}
