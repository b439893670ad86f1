//! Which apps' notifications this node may deliver now: the leases [`crate::cluster::node`] holds, as the
//! dispatcher sees them.
//!
//! Owns that in-memory view only (set by the node task, read by the dispatcher). A lease counts
//! here until a margin before it runs out in the database, so this node has stopped sending
//! before another may start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The apps this node delivers.
#[derive(Debug)]
pub struct Delivery {
    /// None: alone (SQLite), every app is this node's.
    held: Option<Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    /// App → until when this node may deliver it.
    until: HashMap<String, Instant>,
    /// Apps gained since the dispatcher last asked: it reads them again from the oldest.
    gained: Vec<String>,
}

impl Delivery {
    /// One node on its own store: every app is delivered here.
    pub fn alone() -> Self {
        Delivery { held: None }
    }

    /// One of several nodes: only apps whose lease this node holds.
    pub fn shared() -> Self {
        Delivery { held: Some(Mutex::new(Held::default())) }
    }

    pub fn is_shared(&self) -> bool {
        self.held.is_some()
    }

    fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
        held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node may deliver `app_id`'s notifications now.
    pub fn delivers(&self, app_id: &str) -> bool {
        match &self.held {
            None => true,
            Some(held) => Self::lock(held).until.get(app_id).is_some_and(|until| Instant::now() < *until),
        }
    }

    /// The lease on `app_id` is this node's until `until`; true when it was not a moment ago (a
    /// gain, not a renewal).
    pub fn hold(&self, app_id: &str, until: Instant) -> bool {
        let Some(held) = &self.held else { return false };
        let mut held = Self::lock(held);
        let was = held.until.insert(app_id.to_string(), until);
        let gained = was.is_none_or(|before| before <= Instant::now());
        if gained {
            held.gained.push(app_id.to_string());
        }
        gained
    }

    /// The lease on `app_id` is not (or no longer) this node's.
    pub fn lose(&self, app_id: &str) {
        if let Some(held) = &self.held {
            Self::lock(held).until.remove(app_id);
        }
    }

    /// Gives up every lease (the node is leaving).
    pub fn lose_all(&self) {
        if let Some(held) = &self.held {
            Self::lock(held).until.clear();
        }
    }

    /// Apps whose leases this node holds (expired or not).
    pub fn held(&self) -> Vec<String> {
        match &self.held {
            None => Vec::new(),
            Some(held) => Self::lock(held).until.keys().cloned().collect(),
        }
    }

    /// Apps gained since the last call: whatever was read of them before is stale.
    pub fn take_gained(&self) -> Vec<String> {
        match &self.held {
            None => Vec::new(),
            Some(held) => std::mem::take(&mut Self::lock(held).gained),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn alone_delivers_everything_and_shared_only_what_it_holds_until_the_lease_ends() {
        assert!(Delivery::alone().delivers("app_a"));
        let d = Delivery::shared();
        assert!(!d.delivers("app_a"), "nothing is held before a claim");
        assert!(d.hold("app_a", Instant::now() + Duration::from_secs(60)), "a first claim is a gain");
        assert!(d.delivers("app_a") && !d.delivers("app_b"));
        assert_eq!(d.take_gained(), ["app_a"]);
        assert!(!d.hold("app_a", Instant::now() + Duration::from_secs(60)), "a renewal is not a gain");
        assert!(d.take_gained().is_empty(), "a renewal is not a gain");
        d.hold("app_a", Instant::now());
        assert!(!d.delivers("app_a"), "a lease past its end delivers nothing");
        assert!(d.hold("app_a", Instant::now() + Duration::from_secs(60)), "held again after it ran out");
        assert_eq!(d.take_gained(), ["app_a"], "held again after it ran out: read from the oldest again");
        d.lose("app_a");
        assert!(!d.delivers("app_a"));
        d.hold("app_b", Instant::now() + Duration::from_secs(60));
        d.lose_all();
        assert!(!d.delivers("app_b") && d.held().is_empty(), "leaving gives up every lease");
        assert!(!d.delivers("app_a"));
    }
}
