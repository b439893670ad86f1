//! Background work for by-tag commands: the command replies at once with a work id; the work then
//! pages through the customers carrying the tag (at that time) and applies an action to each page.
//!
//! Owns paging, the work record and its outcome. The action (what to do per customer) belongs to
//! the command that started it.

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use tracing::{info, warn};

pub mod budget;

use crate::context::Hodi;

/// Customers handled per page (and per transaction, for actions that write).
pub const PAGE: i64 = 1000;
/// Pages of one work whose action runs at once. Pages are read one after another (each starts
/// after the last id of the one before), but their actions overlap: while one page waits on the
/// store, another waits on sockets. Bounded, so a tag of millions is never in memory.
pub const PAGES_IN_FLIGHT: usize = 3;

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
