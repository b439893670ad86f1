//! One connected socket: who is on the other end (org, app, modes, what it authenticated with)
//! and its handle for server-initiated requests. Fixed at SETUP by [`crate::socket_session`].
//!
//! Owns the type only, so that everything below the socket session (commands, domains, the
//! notification registry) can name a socket without importing the SETUP handshake.

use hodi_rsocket::Requester;

/// Who is on the other end of one socket, fixed at SETUP.
#[derive(Debug, Clone)]
pub struct Session {
    pub connection_id: String,
    pub org_id: String,
    pub app_id: String,
    /// Plays the customer: sends simulator commands, receives what the app sends to customers.
    pub simulator: bool,
    /// Never receives app notifications.
    pub simplex: bool,
    pub peer: String,
    pub requester: Requester,
    /// What the socket authenticated with: only API-key sockets may generate tokens.
    pub credential: Credential,
}

/// What a socket authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    ApiKey,
    /// A token from GenerateAuthToken, valid until this time (unix ms).
    Token {
        expires_at: i64,
    },
}
