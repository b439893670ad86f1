//! The latest notifications each org's apps were sent and how each went, for the console's
//! dashboard: kept in memory, a fixed number per org (orgs are provisioned by the operator, so
//! the whole is bounded), lost at restart. The durable record is the outbox; this is a window.
//!
//! Owns that window only; the dispatcher tells it outcomes and must not wait on it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Kept per org.
pub const PER_ORG: usize = 50;

/// One notification's attempt as the dashboard lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seen {
    /// Unix milliseconds.
    pub at: i64,
    pub app_id: String,
    pub customer_id: String,
    /// The notification's kind as the SDKs name the event (`receivedSms` is `received_message`).
    pub kind: &'static str,
    /// `answered`, or why not (`no reply within 10000 ms`, a socket error).
    pub outcome: std::borrow::Cow<'static, str>,
    pub attempt: i64,
}

#[derive(Debug, Default)]
pub struct Recent {
    by_org: Mutex<HashMap<String, VecDeque<Seen>>>,
}

impl Recent {
    pub fn record(&self, org_id: &str, seen: Seen) {
        let mut by_org = self.by_org.lock().unwrap_or_else(|p| p.into_inner());
        let list = match by_org.get_mut(org_id) {
            Some(list) => list,
            None => by_org.entry(org_id.to_string()).or_insert_with(|| VecDeque::with_capacity(PER_ORG)),
        };
        if list.len() == PER_ORG {
            list.pop_front();
        }
        list.push_back(seen);
    }

    /// The org's latest, newest first.
    pub fn of_org(&self, org_id: &str) -> Vec<Seen> {
        let by_org = self.by_org.lock().unwrap_or_else(|p| p.into_inner());
        by_org.get(org_id).map(|l| l.iter().rev().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(n: i64) -> Seen {
        Seen {
            at: n,
            app_id: "app".into(),
            customer_id: "c".into(),
            kind: "reminder",
            outcome: "answered".into(),
            attempt: 1,
        }
    }

    #[test]
    fn keeps_the_latest_per_org_newest_first_and_orgs_apart() {
        let recent = Recent::default();
        for n in 0..(PER_ORG as i64 + 7) {
            recent.record("a", seen(n));
        }
        recent.record("b", seen(1000));
        let a = recent.of_org("a");
        assert_eq!(a.len(), PER_ORG);
        assert_eq!((a[0].at, a[PER_ORG - 1].at), (PER_ORG as i64 + 6, 7));
        assert_eq!(recent.of_org("b").len(), 1);
        assert!(recent.of_org("c").is_empty());
    }
}
