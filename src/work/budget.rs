//! What by-tag work may use at once, process-wide (see [`Budget`]). Apart from the work itself so
//! that the shared context can hold it without importing the work's code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// What all by-tag work in the process may use at once, so that it never starves interactive
/// commands of database connections (500 by-tag sends once made a `getState` wait 12 s): pages
/// being read or acted on, across every work (`work.pages_in_flight`, each page uses one
/// connection at a time), and unfinished works per org (`work.max_unfinished_per_org`; beyond,
/// a by-tag command is refused rather than queued without bound).
pub struct Budget {
    pub(super) pages: Arc<Semaphore>,
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

    pub(super) fn admit(self: &Arc<Self>, org_id: &str) -> Result<Unfinished, String> {
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

    /// Counts resumed work without refusing it: it was admitted when it started.
    pub(super) fn admit_resumed(self: &Arc<Self>, org_id: &str) -> Unfinished {
        *self.unfinished().entry(org_id.to_string()).or_insert(0) += 1;
        Unfinished { budget: self.clone(), org_id: org_id.to_string() }
    }
}

/// One unfinished work of an org; dropping it counts the work finished.
pub(super) struct Unfinished {
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
