//! The shared context: what every component receives as `Arc<Hodi>` (configuration, store,
//! connected sockets, signals, budgets, the channels out). Built once by [`crate::server`] at start-up.
//!
//! Owns the shape of that shared state only; it does nothing itself. Kept apart from start-up code
//! so that components depend on the context, not on how the server is started.

use std::sync::Arc;

use crate::config::Config;
use crate::notify::sockets::Sockets;
use crate::store::Store;

/// What every component shares: configuration, store, connected sockets.
pub struct Hodi {
    pub config: Arc<Config>,
    pub store: Store,
    pub sockets: Arc<Sockets>,
    /// Simulator sockets: the customer's side, per org.
    pub simulators: Arc<Sockets>,
    /// What the notification dispatcher has done (redeliveries, late answers).
    pub notify_stats: crate::notify::stats::Stats,
    /// The latest notifications per org and how each went (the console's dashboard).
    pub recent_notifications: crate::notify::recent::Recent,
    /// The apps an operator has disabled (read from the store every few seconds): their open
    /// sockets close when they appear here.
    pub disabled_apps: tokio::sync::watch::Sender<Arc<std::collections::HashSet<String>>>,
    /// Where voice messages become real calls: the voice executor, when SIP listens and a trunk
    /// is configured (else voice messages go to simulator sockets).
    pub calls: Option<Arc<dyn crate::channel::PlaceCalls>>,
    /// The configured providers (SMPP, SMTP, …) channel numbers can be bound to.
    pub providers: Arc<crate::channel::providers::Providers>,
    /// What by-tag background work may use at once.
    pub work: Arc<crate::work::budget::Budget>,
    /// Which apps' notifications this node delivers (all of them unless several nodes share the
    /// database).
    pub delivery: crate::notify::leases::Delivery,
    /// Live asks to apps whose sockets are on another node (several nodes with Redis).
    pub relay: Option<Arc<crate::notify::relay::Relay>>,
}
