//! Several Hodi nodes on one PostgreSQL database: who is up, and which node delivers each app's
//! notifications.
//!
//! PostgreSQL is the truth: each node registers itself (`cluster_nodes`: id, listeners, the apps
//! it holds sockets for) and renews it every heartbeat; one node at a time delivers an app's
//! notifications, under a lease it renews while it holds sockets of that app
//! (`delivery_leases`). A node that dies stops renewing: its leases run out and a node holding
//! sockets of the same apps takes them, starting again from the oldest queued notification (the
//! dead node's unanswered ones are still queued: at least once). One deliverer per app keeps
//! per-customer order and the window exactly as on one node.
//!
//! Redis, when configured, is the fast path ([`bus`]): a commit on one node wakes the others'
//! dispatchers at once. Without it (or while it is down) nodes find each other's notifications by
//! polling; nothing is kept in Redis that the nodes do not rebuild by themselves.
//!
//! On SQLite (one process owns the file) there is no cluster: [`crate::notify::leases::Delivery::alone`]
//! delivers every app and nothing here runs.
//!
//! Owns membership and delivery leases. Must not read or send notifications: that is
//! [`crate::notify`], which asks [`crate::notify::leases::Delivery`] which apps are its own.

pub mod bus;
pub mod node;
