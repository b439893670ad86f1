//! `hodi-sdk`: the reactive Rust SDK for Hodi (and Elarian-protocol servers).
//!
//! Not built yet: its issue adds `Elarian`, `Customer` and `Simulator` clients with typed replies and
//! notifications as a `Stream`. Until then it re-exports the RSocket client it will stand on, so
//! a Rust program can already connect with [`rsocket::connect`] and speak the wire protocol by hand.

pub use hodi_rsocket as rsocket;
