//! `hodi-sdk`: the reactive Rust SDK for Hodi (and servers speaking the Elarian protocol).
//!
//! - [`Elarian`]: an app's connection — commands about many customers (by tag), payments, auth
//!   tokens, and the notification stream ([`Elarian::notifications`]) or handlers ([`Elarian::on`]).
//! - [`Customer`]: every command about one customer (state, tags, secondary ids, metadata, app
//!   data with leases, reminders, messages, consent, activity).
//! - [`Simulator`]: the customer's side (messages and payments from customers; what apps send them).
//! - [`model`]: constructors for channels, messages, voice actions, reminders, tags, money.
//!
//! Every command is an `async fn` returning a typed reply or an [`Error`]. Connections are kept
//! open: lost ones are re-established with backoff ([`ConnectionEvent`]s tell the app), and a
//! command issued meanwhile waits up to `command_timeout`, then fails with
//! [`Error::NotConnected`]; one in flight when the connection drops fails with
//! [`Error::Interrupted`] (it may have been applied, so it is not re-sent behind your back) —
//! unless the session resumes ([`Options::resume_window`]): then it is answered as if nothing
//! happened, because both sides send again exactly what the other missed.
//!
//! Endpoints ([`Endpoint`]): plain TCP, WebSocket, and over TLS (`tls://`, `wss://`) checked
//! against the public roots or the certificates [`Options::trust`] names ([`Trust`]).
//!
//! Notifications use Hodi's subscription (a REQUEST_STREAM with REQUEST_N credit): the server
//! sends only as fast as the app reads, and what the app has not read waits in the server's
//! durable outbox, not in memory.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use hodi_sdk::{model::{channel, message}, Elarian, Event, Options, Reply};
//!
//! # async fn run() -> Result<(), hodi_sdk::Error> {
//! let client = Elarian::connect(Options::from_env()?);
//! let mut notifications = client.notifications()?;
//! while let Some(n) = notifications.next().await {
//!     if let Event::ReceivedMessage(m) = &n.event {
//!         let text = m.text().unwrap_or_default().to_string();
//!         n.reply(Reply::message(message::text(format!("You said: {text}")))).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod connection;
mod customer;
mod error;
mod handlers;
pub mod model;
pub mod notification;
mod options;
mod simulator;

pub use client::{AuthToken, Elarian, MessageReply, PaymentReply, WorkReply};
pub use connection::ConnectionEvent;
pub use customer::{Customer, CustomerRef, CustomerState};
pub use error::{Error, Result};
pub use hodi_rsocket as rsocket;
pub use hodi_wire as wire;
pub use notification::{Event, Notification, Notifications, ReceivedMessage, Reply};
pub use options::{local_endpoint, Backoff, Credentials, Endpoint, Options, Trust};
pub use simulator::{Simulator, SimulatorEvent, SimulatorReply, EVENT_BUFFER};
