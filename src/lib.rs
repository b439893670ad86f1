//! Hodi: a self-hosted customer engagement runtime that speaks the Elarian wire protocol.
//!
//! One folder per concern; each module's doc says what it owns. Start at [`server`] to see how the
//! parts are put together.

pub mod channel;
pub mod cli;
pub mod cluster;
pub mod command;
pub mod config;
pub mod console;
pub mod context;
pub mod convert;
pub mod customer;
pub mod inbox;
pub mod messaging;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod payment;
pub mod reminder;
pub mod server;
pub mod socket;
pub mod socket_session;
pub mod store;
pub mod transport;
pub mod voice;
pub mod webhooks;
pub mod wire;
pub mod work;
