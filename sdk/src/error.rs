//! The SDK's one error type: every command and connection failure is one of these.

use std::time::Duration;

/// Why a command or connection did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The server could not be reached or the transport failed (retried automatically).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server refused the SETUP: wrong org, app, API key or auth token. Not retried.
    #[error("connection rejected by the server: {0}")]
    Rejected(String),
    /// No connection within the command timeout (the client is still reconnecting): where it
    /// tried, and why the latest attempt failed.
    #[error("not connected to {endpoint} after waiting {waited:?} ({why}); the client keeps reconnecting")]
    NotConnected { waited: Duration, endpoint: String, why: String },
    /// The client was disconnected with [`crate::Elarian::disconnect`] (or never will connect again).
    #[error("client is closed: {0}")]
    Closed(String),
    /// The connection dropped while the command was in flight: it may or may not have been applied.
    #[error("connection lost while waiting for the reply (the command may have been applied): {0}")]
    Interrupted(String),
    /// The server answered with an RSocket ERROR (malformed or unknown command, oversize payload…).
    #[error("server error {code}: {message}")]
    Server { code: u32, message: String },
    /// The command was carried out and refused: a status such as `INSUFFICIENT_FUNDS`, with why.
    #[error("{status}: {description}")]
    Status { status: String, description: String },
    /// The server's reply could not be understood.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// An argument was refused before anything was sent.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// A `false` status of the bool-status replies.
    pub(crate) fn refused(description: impl Into<String>) -> Self {
        Error::Status { status: "FAILED".into(), description: description.into() }
    }

    /// True for failures worth retrying later (nothing was refused on its merits).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::NotConnected { .. } | Error::Interrupted(_))
    }
}

impl From<hodi_rsocket::RequestError> for Error {
    /// A request that was sent: a close means it may have been applied.
    fn from(e: hodi_rsocket::RequestError) -> Self {
        match e {
            hodi_rsocket::RequestError::Closed(why) => Error::Interrupted(why),
            hodi_rsocket::RequestError::Remote(r) => Error::Server { code: r.code, message: r.message },
            hodi_rsocket::RequestError::Encode(why) => Error::Invalid(why),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
