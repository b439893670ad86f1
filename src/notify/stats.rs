//! Counters of what the notification dispatcher has done, for logs, tests and benchmarks.

use std::sync::atomic::AtomicU64;

/// What the dispatcher has done since start: how often notifications went unanswered, were
/// answered late, or were sent again (a redelivery: the app may see a duplicate).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub unanswered: AtomicU64,
    pub late_answers: AtomicU64,
    pub redelivered: AtomicU64,
    /// Left the outbox undelivered when their time to live ran out.
    pub expired: AtomicU64,
}
