//! UpdateMessagingConsent: ALLOW or BLOCK messages from one channel number to a customer. BLOCK
//! makes later SendMessage on that channel number answer NO_CONSENT. Queues a
//! `messaging_consent_update` notification.

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::convert::{stored_number, wire_number};
use crate::messaging::check_channel;
use crate::socket::Session;
use crate::store::outbox::NewNotification;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    MessagingConsentUpdate, MessagingConsentUpdateNotification, MessagingConsentUpdateStatus,
    ServerToAppCustomerNotification, UpdateMessagingConsentCommand, UpdateMessagingConsentReply,
};

#[derive(Debug)]
pub struct UpdateConsent {
    command: UpdateMessagingConsentCommand,
}

impl UpdateConsent {
    pub fn from_proto(command: UpdateMessagingConsentCommand) -> Self {
        UpdateConsent { command }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let reply = |status: MessagingConsentUpdateStatus, description: String, customer_id: Option<String>| {
            Entry::UpdateMessagingConsent(UpdateMessagingConsentReply {
                status: status as i32,
                description,
                customer_id,
            })
        };
        let c = self.command;
        let number = match c.customer_number.as_ref().map(stored_number) {
            Some(Ok(n)) => n,
            Some(Err(why)) => return Ok(reply(MessagingConsentUpdateStatus::ApplicationError, why, None)),
            None => {
                return Ok(reply(
                    MessagingConsentUpdateStatus::ApplicationError,
                    "customer_number is required".into(),
                    None,
                ))
            }
        };
        let blocked = match MessagingConsentUpdate::try_from(c.update) {
            Ok(MessagingConsentUpdate::Allow) => false,
            Ok(MessagingConsentUpdate::Block) => true,
            _ => {
                return Ok(reply(
                    MessagingConsentUpdateStatus::ApplicationError,
                    "update must be ALLOW or BLOCK".into(),
                    None,
                ))
            }
        };
        let Some(channel_number) = c.channel_number else {
            return Ok(reply(
                MessagingConsentUpdateStatus::InvalidChannelNumber,
                "channel_number is required".into(),
                None,
            ));
        };
        if let Err(why) = check_channel(&hodi.store, &session.org_id, &channel_number).await.map_err(internal)? {
            return Ok(reply(MessagingConsentUpdateStatus::InvalidChannelNumber, why, None));
        }
        let (customer, _) = hodi.store.customer_by_number(&session.org_id, &number).await.map_err(internal)?;
        if customer.decommissioned {
            return Ok(reply(
                MessagingConsentUpdateStatus::DecommissionedCustomerId,
                format!("customer {} is decommissioned", customer.id),
                Some(customer.id),
            ));
        }
        hodi.store
            .set_consent(&customer.id, channel_number.channel, &channel_number.number, blocked)
            .await
            .map_err(internal)?;
        let entry = ServerToAppCustomerNotification {
            entry: Some(AppEntry::MessagingConsentUpdate(MessagingConsentUpdateNotification {
                customer_number: Some(wire_number(&number)),
                channel_number: Some(channel_number),
                update: c.update,
                status: MessagingConsentUpdateStatus::Completed as i32,
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let item = NewNotification {
            org_id: &session.org_id,
            app_id: &session.app_id,
            customer_id: &customer.id,
            entry: &entry,
        };
        hodi.store.queue_notifications(&[item]).await.map_err(internal)?;
        Ok(reply(
            MessagingConsentUpdateStatus::Completed,
            if blocked { "blocked".into() } else { "allowed".into() },
            Some(customer.id),
        ))
    }
}
