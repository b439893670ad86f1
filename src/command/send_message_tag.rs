//! SendMessageTag: the same message to every customer carrying a tag at the time, as background
//! work; the reply carries the work id at once. Each customer gets it on its first number that the
//! channel reaches; consent applies per customer (NO_CONSENT), as for SendMessage.

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::messaging::outbound::send_many;
use crate::messaging::{check_channel, customer_provider};
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{MessagingChannel, MessagingChannelNumber, OutboundMessage, SendMessageTagCommand, TagCommandReply};
use crate::work::{Action, WorkOrder};

fn reply(status: bool, description: impl Into<String>, work_id: Option<String>) -> Entry {
    Entry::TagCommand(TagCommandReply { status, description: description.into(), work_id })
}

/// The kind of work this command starts.
pub const KIND: &str = "send_message_by_tag";

/// Sends `message` from `channel_number` to each page of customers of the order's org.
fn action(order: &WorkOrder, channel_number: MessagingChannelNumber, message: OutboundMessage) -> Action {
    let channel = MessagingChannel::try_from(channel_number.channel).unwrap_or(MessagingChannel::Unspecified);
    let provider = customer_provider(channel) as i32;
    let (org_id, app_id) = (order.org_id.clone(), order.app_id.clone());
    crate::work::action(move |hodi, _work_id, customers| {
        let (org_id, app_id, channel_number, message) =
            (org_id.clone(), app_id.clone(), channel_number.clone(), message.clone());
        async move {
            let recipients = hodi.store.numbers_by_provider(&customers, provider).await?;
            send_many(&hodi, &org_id, &app_id, &channel_number, &message, recipients).await?;
            Ok(())
        }
    })
}

/// The action of a work this command started, from its order (resuming it on another node).
pub fn resume(order: &WorkOrder) -> Result<Action, String> {
    let command = SendMessageTagCommand::decode(order.command.as_slice()).map_err(|e| e.to_string())?;
    match (command.channel_number, command.message) {
        (Some(channel_number), Some(message)) => Ok(action(order, channel_number, message)),
        _ => Err("the command kept with the work has no channel number or message".into()),
    }
}

#[derive(Debug)]
pub struct SendMessageTag {
    command: SendMessageTagCommand,
}

impl SendMessageTag {
    pub fn from_proto(command: SendMessageTagCommand) -> Self {
        SendMessageTag { command }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let c = self.command;
        let Some(tag) = c.tag.filter(|t| !t.key.is_empty()) else { return Ok(reply(false, "tag is required", None)) };
        let Some(channel_number) = c.channel_number else {
            return Ok(reply(false, "channel_number is required", None));
        };
        let Some(message) = c.message.filter(|m| m.body.is_some()) else {
            return Ok(reply(false, "message needs a body", None));
        };
        if let Err(why) = check_channel(&hodi.store, &session.org_id, &channel_number).await.map_err(internal)? {
            return Ok(reply(false, why, None));
        }
        let order = WorkOrder {
            org_id: session.org_id.clone(),
            app_id: session.app_id.clone(),
            kind: KIND.into(),
            tag: (tag.key.clone(), tag.value.clone().unwrap_or_default()),
            command: SendMessageTagCommand {
                tag: Some(tag),
                channel_number: Some(channel_number.clone()),
                message: Some(message.clone()),
            }
            .encode_to_vec(),
        };
        let action = action(&order, channel_number, message);
        let work = crate::work::start(hodi.clone(), order, action).await.map_err(internal)?;
        match work {
            Ok(work) => Ok(reply(true, "work started", Some(work))),
            Err(why) => Ok(reply(false, why, None)),
        }
    }
}
