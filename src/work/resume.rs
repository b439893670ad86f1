//! Resuming by-tag work whose node is gone: after a restart on one node, or when a node of a
//! cluster stops heartbeating (`cluster_nodes`), another node claims its running work and carries
//! on from the last page it finished in order.
//!
//! Owns the resume task ([`start`]). The action is rebuilt by a [`Rebuild`] the server hands in
//! (the command module knows each kind of work); work it cannot rebuild (unknown kind, or started
//! before work kept its command) is marked failed rather than left running for ever.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Action, Progress};
use crate::context::Hodi;
use crate::store::work::{Orphans, ResumableWork};

/// Rebuilds the action of a work from its order, or says why it cannot.
pub type Rebuild = Arc<dyn Fn(&crate::store::work::WorkOrder) -> Result<Action, String> + Send + Sync>;

/// Works taken over per look.
const CLAIM_AT_ONCE: i64 = 16;

/// Claims and resumes orphaned work: once now (to be called before the listeners open, so none
/// of this node's own new work can be mistaken for a previous run's), then, unless `alone` (this
/// process owns the database), every `every` in the background until `shutdown`, as nodes die.
pub async fn start(hodi: Arc<Hodi>, rebuild: Rebuild, alone: bool, every: Duration, shutdown: CancellationToken) {
    // At start on a shared database its own work too: a node restarted under the same name.
    claim_all(&hodi, &rebuild, if alone { Orphans::All } else { Orphans::DeadOrMine }).await;
    if alone {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            claim_all(&hodi, &rebuild, Orphans::Dead).await;
        }
    });
}

/// Claims and resumes every orphan of `orphans`, a few at a time.
async fn claim_all(hodi: &Arc<Hodi>, rebuild: &Rebuild, orphans: Orphans) {
    loop {
        match hodi.store.claim_orphan_work(orphans, CLAIM_AT_ONCE).await {
            Ok(taken) => {
                let more = taken.len() as i64 == CLAIM_AT_ONCE;
                for work in taken {
                    resume(hodi, rebuild, work).await;
                }
                if !more {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "looking for work to resume");
                return;
            }
        }
    }
}

async fn resume(hodi: &Arc<Hodi>, rebuild: &Rebuild, work: ResumableWork) {
    let ResumableWork { id, order, after_customer, customers } = work;
    let rebuilt = if order.command.is_empty() {
        Err("it was started before work kept its command".to_string())
    } else {
        rebuild(&order)
    };
    let action = match rebuilt {
        Ok(action) => action,
        Err(why) => {
            warn!(work_id = %id, kind = %order.kind, why, "work cannot be resumed");
            let error = format!("interrupted and cannot be resumed: {why}");
            if let Err(e) = hodi.store.finish_work(&id, customers, Some(&error)).await {
                warn!(work_id = %id, error = %e, "recording the end of work");
            }
            return;
        }
    };
    info!(work_id = %id, kind = %order.kind, customers, "resuming work");
    let unfinished = hodi.work.admit_resumed(&order.org_id);
    let progress = Progress { work_id: id, after: after_customer, customers };
    tokio::spawn(super::run(hodi.clone(), order, progress, action, unfinished));
}
