//! `hodi-simulator`: a scriptable phone that plays customers over a Hodi simulator socket.
//!
//! Not built yet: its issue adds the scripting library and the interactive CLI on top of
//! [`hodi_sdk`]. Simulator sockets are already authenticated by the server (`simulator_mode`).

pub use hodi_sdk as sdk;
