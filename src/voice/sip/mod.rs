//! SIP: messages and (in [`crate::voice::call`]) the transactions and dialog of each call.

pub mod dialog;
pub mod message;
pub mod transport;
