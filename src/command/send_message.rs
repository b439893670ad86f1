//! SendMessage: a message from the app to a customer number on one of the org's channel numbers.
//! The rules (provisioning, consent, statuses) are [`crate::messaging::outbound`]'s.

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::internal;
use crate::context::Hodi;
use crate::convert::stored_number;
use crate::messaging::outbound::{send, Outbound};
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{MessageDeliveryStatus, SendMessageCommand, SendMessageReply};

#[derive(Debug)]
pub struct SendMessage {
    command: SendMessageCommand,
}

impl SendMessage {
    pub fn from_proto(command: SendMessageCommand) -> Self {
        SendMessage { command }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let refuse = |status: MessageDeliveryStatus, description: String, customer_id: Option<String>| {
            Entry::SendMessage(SendMessageReply {
                status: status as i32,
                description,
                customer_id,
                ..Default::default()
            })
        };
        let c = self.command;
        let Some(number) = c.customer_number.as_ref() else {
            return Ok(refuse(MessageDeliveryStatus::InvalidRequest, "customer_number is required".into(), None));
        };
        let number = match stored_number(number) {
            Ok(n) => n,
            Err(why) => return Ok(refuse(MessageDeliveryStatus::InvalidRequest, why, None)),
        };
        let Some(channel_number) = c.channel_number else {
            return Ok(refuse(MessageDeliveryStatus::InvalidChannelNumber, "channel_number is required".into(), None));
        };
        let Some(message) = c.message else {
            return Ok(refuse(MessageDeliveryStatus::InvalidRequest, "message is required".into(), None));
        };
        let (customer, _) = hodi.store.customer_by_number(&session.org_id, &number).await.map_err(internal)?;
        if customer.decommissioned {
            return Ok(refuse(
                MessageDeliveryStatus::DecommissionedCustomerid,
                format!("customer {} is decommissioned", customer.id),
                Some(customer.id),
            ));
        }
        let outbound = Outbound {
            org_id: session.org_id.clone(),
            app_id: session.app_id.clone(),
            customer_id: customer.id.clone(),
            number,
            channel_number,
            message,
            session_id: None,
            in_reply_to: None,
        };
        let sent = send(hodi, outbound).await.map_err(internal)?;
        Ok(Entry::SendMessage(SendMessageReply {
            status: sent.status as i32,
            description: sent.description,
            message_id: sent.message_id,
            session_id: sent.session_id,
            customer_id: Some(customer.id),
        }))
    }
}
