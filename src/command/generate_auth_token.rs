//! GenerateAuthToken: a short-lived token a browser or mobile client uses in SETUP instead of the
//! API key. Only sockets authenticated with the app's API key can ask for one: a token cannot
//! mint its successor, so a leaked token is good for its lifetime and no longer.

use bytes::Bytes;
use hodi_rsocket::RemoteError;
use prost_types::Duration;

use super::internal;
use crate::context::Hodi;
use crate::socket::{Credential, Session};
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::GenerateAuthTokenReply;

#[derive(Debug)]
pub struct GenerateAuthToken;

impl GenerateAuthToken {
    /// The command has no fields. Protobuf cannot tell message types apart, so a simulator command
    /// sent to an app socket decodes as this one (both are field 1); extra bytes give it away.
    pub fn from_proto(raw: &Bytes) -> Result<Self, RemoteError> {
        // `0x0a 0x00` is field 1 with an empty body: exactly what the SDK sends.
        if raw.len() > 2 {
            return Err(RemoteError::invalid(
                "GenerateAuthToken takes no fields; this looks like a simulator command, which app sockets may not send",
            ));
        }
        Ok(GenerateAuthToken)
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        if session.credential != Credential::ApiKey {
            return Err(RemoteError::rejected(
                "only a socket authenticated with an API key may generate auth tokens; this one used a token",
            ));
        }
        let lifetime = hodi.config.auth.token_lifetime_secs;
        let token = hodi.store.issue_auth_token(&session.org_id, &session.app_id, lifetime).await.map_err(internal)?;
        Ok(Entry::GenerateAuthToken(GenerateAuthTokenReply {
            token,
            lifetime: Some(Duration { seconds: i64::try_from(lifetime).unwrap_or(i64::MAX), nanos: 0 }),
        }))
    }
}
