//! Hodi's RSocket 1.0 session layer, used by the server and by `hodi-sdk`.
//!
//! - [`frame`]: the codec for every frame type; decoding never panics.
//! - [`transport`]: TCP/TLS with the 3-byte length prefix, WebSocket with one frame per message.
//! - [`connection`]: the per-connection state machine (setup, streams, credits, keepalive, close).
//! - [`admission`]: connection caps in total and per source address; accept back-off.
//! - [`server`]: accept loops that give each connection its own task, TLS handshake included.
//!
//! Why our own rather than `rsocket_rust`: see `docs/architecture.md` ("The RSocket layer").

pub mod admission;
pub mod connection;
pub mod echo;
pub mod frame;
pub mod payload;
pub mod server;
pub mod transport;

pub use connection::{
    connect, serve, Acceptor, BoxFuture, BoxStream, ClientResume, Config, PendingResponse, Redial, RemoteError,
    RequestError, Requester, Responder, ResponseStream, SetupInfo, SetupParams, StartError,
};
pub use frame::{error_code, Body, Frame};
pub use payload::Payload;
