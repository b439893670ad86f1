//! The replay commands: ReplayReceivedMessage, ReplaySentMessage, ReplayMessageStatusUpdate,
//! ReplayMessageReactionUpdate, ReplayMessagingSession and ReplayMessagingConsentUpdate. They
//! import messaging history without firing notifications (the rules: [`crate::messaging::replay`]).
//! All reply `UpdateCustomerStateReply`.

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::identity::reply;
use super::internal;
use crate::context::Hodi;
use crate::messaging::replay::{Imported, Importer};
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    ReplayMessageReactionUpdateCommand, ReplayMessageStatusUpdateCommand, ReplayMessagingConsentUpdateCommand,
    ReplayMessagingSessionCommand, ReplayReceivedMessageCommand, ReplaySentMessageCommand,
};

/// A parsed replay command.
#[derive(Debug)]
pub enum Replay {
    Received(ReplayReceivedMessageCommand),
    Sent(ReplaySentMessageCommand),
    Status(ReplayMessageStatusUpdateCommand),
    Reaction(ReplayMessageReactionUpdateCommand),
    Session(ReplayMessagingSessionCommand),
    Consent(ReplayMessagingConsentUpdateCommand),
}

impl Replay {
    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let importer = Importer { hodi, org_id: &session.org_id, app_id: &session.app_id };
        let imported = match self {
            Replay::Received(c) => importer.received(c).await,
            Replay::Sent(c) => importer.sent(c).await,
            Replay::Status(c) => importer.status(c).await,
            Replay::Reaction(c) => importer.reaction(c).await,
            Replay::Session(c) => importer.session(c).await,
            Replay::Consent(c) => importer.consent(c).await,
        };
        let Imported { done, description, customer_id } = imported.map_err(internal)?;
        Ok(reply(done, description, customer_id))
    }
}
