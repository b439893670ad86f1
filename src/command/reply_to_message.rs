//! ReplyToMessage: answer a message the customer sent, on the channel it came in on (and in its
//! session while that is open).

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::convert::stored_number;
use crate::messaging::outbound::{send, Outbound};
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    channel_message, ChannelMessage, CustomerEventDirection, MessageDeliveryStatus, MessagingChannelNumber,
    ReplyToMessageCommand, SendMessageReply,
};

#[derive(Debug)]
pub struct ReplyToMessage {
    command: ReplyToMessageCommand,
}

impl ReplyToMessage {
    pub fn from_proto(command: ReplyToMessageCommand) -> Self {
        ReplyToMessage { command }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let refuse = |status: MessageDeliveryStatus, description: String| {
            Entry::SendMessage(SendMessageReply { status: status as i32, description, ..Default::default() })
        };
        let c = self.command;
        let Some(message) = c.message else {
            return Ok(refuse(MessageDeliveryStatus::InvalidRequest, "message is required".into()));
        };
        let customer = match hodi.store.customer(&session.org_id, &c.customer_id).await.map_err(internal)? {
            Some(customer) if !customer.decommissioned => customer,
            Some(customer) => {
                return Ok(refuse(
                    MessageDeliveryStatus::DecommissionedCustomerid,
                    format!("customer {} is decommissioned", customer.id),
                ))
            }
            None => {
                return Ok(refuse(
                    MessageDeliveryStatus::InvalidCustomerId,
                    format!("unknown customer id {:?}", c.customer_id),
                ))
            }
        };
        let original = hodi.store.message(&c.message_id).await.map_err(internal)?;
        let Some(original) = original.filter(|m| {
            m.customer_id == customer.id
                && m.org_id == session.org_id
                && m.direction == CustomerEventDirection::Inbound as i32
        }) else {
            return Ok(refuse(
                MessageDeliveryStatus::InvalidReplyToMessageId,
                format!("{:?} is not a message this customer sent", c.message_id),
            ));
        };
        let received = match ChannelMessage::decode(original.body.as_slice()).ok().and_then(|m| m.entry) {
            Some(channel_message::Entry::Received(r)) => r,
            _ => {
                return Ok(refuse(
                    MessageDeliveryStatus::InvalidReplyToMessageId,
                    "the original message is unreadable".into(),
                ))
            }
        };
        let number = match received.customer_number.as_ref().map(stored_number) {
            Some(Ok(n)) => n,
            _ => {
                return Ok(refuse(
                    MessageDeliveryStatus::InvalidReplyToMessageId,
                    "the original message has no customer number".into(),
                ))
            }
        };
        let open = match &original.session_id {
            Some(id) => hodi.store.session(id).await.map_err(internal)?.filter(|s| s.ended_at.is_none()).map(|s| s.id),
            None => None,
        };
        let sent = send(
            hodi,
            Outbound {
                org_id: session.org_id.clone(),
                app_id: session.app_id.clone(),
                customer_id: customer.id.clone(),
                number,
                channel_number: MessagingChannelNumber {
                    channel: original.channel,
                    number: original.channel_number.clone(),
                },
                message,
                session_id: open,
                in_reply_to: Some(original.id),
            },
        )
        .await
        .map_err(internal)?;
        Ok(Entry::SendMessage(SendMessageReply {
            status: sent.status as i32,
            description: sent.description,
            message_id: sent.message_id,
            session_id: sent.session_id,
            customer_id: Some(customer.id),
        }))
    }
}
