//! The replay commands: import messaging history from elsewhere, once per provider id, without
//! firing notifications. ReplayReceivedMessage and ReplaySentMessage store messages;
//! ReplayMessageStatusUpdate and ReplayMessageReactionUpdate change stored sent messages;
//! ReplayMessagingSession stores a completed session; ReplayMessagingConsentUpdate sets consent.
//! Replaying the same item again changes nothing and says so. All reply `UpdateCustomerStateReply`.

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::identity::reply;
use super::internal;
use crate::context::Hodi;
use crate::convert::timestamp;
use crate::convert::{stored_number, wire_number};
use crate::messaging::check_channel;
use crate::socket::Session;
use crate::store::customers::{CustomerRecord, StoredNumber};
use crate::store::messaging::{MessageRow, SessionRow};
use crate::store::new_id;
use crate::wire::app_to_server_command::Entry as Command;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    channel_message, ChannelMessage, CustomerEventDirection, CustomerNumber, MessageDeliveryStatus,
    MessageReactionState, MessagingChannelNumber, MessagingConsentUpdate, ReceivedMessage, SentMessage,
};

/// A parsed replay command.
#[derive(Debug)]
pub struct Replay(Command);

/// A replayed time in unix ms (none: now); between 1970 and 2200, else clamped to them, since
/// history imported from elsewhere is kept rather than refused for one odd timestamp.
pub(super) fn millis(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref()
        .map(|t| crate::convert::millis(t).clamp(0, super::bounds::LATEST_MS))
        .unwrap_or_else(crate::store::now_ms)
}

impl Replay {
    pub fn new(command: Command) -> Self {
        Replay(command)
    }

    /// The customer and channel a replay names, validated.
    async fn target(
        hodi: &Hodi,
        session: &Session,
        number: &Option<CustomerNumber>,
        channel: &Option<MessagingChannelNumber>,
    ) -> Result<Result<(CustomerRecord, StoredNumber, MessagingChannelNumber), String>, RemoteError> {
        let number = match number.as_ref().map(stored_number) {
            Some(Ok(n)) => n,
            Some(Err(why)) => return Ok(Err(why)),
            None => return Ok(Err("customer_number is required".into())),
        };
        let Some(channel) = channel.clone() else { return Ok(Err("channel_number is required".into())) };
        if let Err(why) = check_channel(&hodi.store, &session.org_id, &channel).await.map_err(internal)? {
            return Ok(Err(why));
        }
        let (customer, _) = hodi.store.customer_by_number(&session.org_id, &number).await.map_err(internal)?;
        if customer.decommissioned {
            return Ok(Err(format!("customer {} is decommissioned", customer.id)));
        }
        Ok(Ok((customer, number, channel)))
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let store = &hodi.store;
        macro_rules! target {
            ($number:expr, $channel:expr) => {
                match Self::target(hodi, session, $number, $channel).await? {
                    Ok(t) => t,
                    Err(why) => return Ok(reply(false, why, None)),
                }
            };
        }
        match self.0 {
            Command::ReplayReceivedMessage(c) => {
                if c.provider_message_id.is_empty() {
                    return Ok(reply(false, "provider_message_id is required", None));
                }
                let (customer, number, channel) = target!(&c.customer_number, &c.channel_number);
                let id = new_id("msg_");
                let at = millis(&c.received_at);
                let body = ChannelMessage {
                    entry: Some(channel_message::Entry::Received(ReceivedMessage {
                        customer_number: Some(wire_number(&number)),
                        channel_number: Some(channel.clone()),
                        message_id: id.clone(),
                        created_at: Some(timestamp(at)),
                        session_id: c.provider_session_id.clone(),
                        in_reply_to: c.in_reply_to,
                        provider: c.provider,
                        app_id: Some(session.app_id.clone()),
                        parts: c.parts,
                        cost: c.cost,
                        provider_message_id: Some(c.provider_message_id.clone()),
                    })),
                };
                let row = message_row(
                    session,
                    &customer,
                    &channel,
                    id,
                    CustomerEventDirection::Inbound,
                    MessageDeliveryStatus::Received,
                    c.provider_session_id,
                    c.provider_message_id,
                    body,
                    at,
                );
                let stored = store.insert_message(&row).await.map_err(internal)?;
                Ok(reply(true, if stored { "imported" } else { "already imported" }, Some(customer.id)))
            }
            Command::ReplaySentMessage(c) => {
                if c.provider_message_id.is_empty() {
                    return Ok(reply(false, "provider_message_id is required", None));
                }
                let (customer, number, channel) = target!(&c.customer_number, &c.channel_number);
                let id = new_id("msg_");
                let at = millis(&c.sent_at);
                let status = MessageDeliveryStatus::try_from(c.status).unwrap_or(MessageDeliveryStatus::Sent);
                let body = ChannelMessage {
                    entry: Some(channel_message::Entry::Sent(SentMessage {
                        customer_number: Some(wire_number(&number)),
                        channel_number: Some(channel.clone()),
                        message_id: id.clone(),
                        created_at: Some(timestamp(at)),
                        session_id: c.provider_session_id.clone(),
                        in_reply_to: c.in_reply_to,
                        provider: c.provider,
                        app_id: Some(session.app_id.clone()),
                        updated_at: Some(timestamp(at)),
                        status: status as i32,
                        reactions: Vec::new(),
                        message: c.message,
                        cost: c.cost,
                        provider_message_id: Some(c.provider_message_id.clone()),
                    })),
                };
                let row = message_row(
                    session,
                    &customer,
                    &channel,
                    id,
                    CustomerEventDirection::Outbound,
                    status,
                    c.provider_session_id,
                    c.provider_message_id,
                    body,
                    at,
                );
                let stored = store.insert_message(&row).await.map_err(internal)?;
                Ok(reply(true, if stored { "imported" } else { "already imported" }, Some(customer.id)))
            }
            Command::ReplayMessageStatusUpdate(c) => {
                let (customer, ..) = target!(&c.customer_number, &c.channel_number);
                let status = MessageDeliveryStatus::try_from(c.status).unwrap_or(MessageDeliveryStatus::Unspecified);
                if status == MessageDeliveryStatus::Unspecified {
                    return Ok(reply(false, "status is required", Some(customer.id)));
                }
                update_sent(hodi, session, &customer, &c.provider_message_id, |sent| {
                    sent.status = status as i32;
                    sent.updated_at = Some(timestamp(millis(&c.updated_at)));
                    if c.cost.is_some() {
                        sent.cost = c.cost.clone();
                    }
                    Some(status as i32)
                })
                .await
            }
            Command::ReplayMessageReactionUpdate(c) => {
                let (customer, ..) = target!(&c.customer_number, &c.channel_number);
                let at = timestamp(millis(&c.updated_at));
                update_sent(hodi, session, &customer, &c.provider_message_id, |sent| {
                    let reaction = MessageReactionState { created_at: Some(at), reaction: c.reaction };
                    if !sent.reactions.contains(&reaction) {
                        sent.reactions.push(reaction);
                    }
                    None
                })
                .await
            }
            Command::ReplayMessagingSession(c) => {
                if c.provider_session_id.is_empty() {
                    return Ok(reply(false, "provider_session_id is required", None));
                }
                let (customer, number, channel) = target!(&c.customer_number, &c.channel_number);
                let started = millis(&c.started_at);
                let duration = c.duration.map(|d| d.seconds.saturating_mul(1000)).unwrap_or(0).max(0);
                let stored = store
                    .insert_session_once(&SessionRow {
                        id: c.provider_session_id,
                        org_id: session.org_id.clone(),
                        customer_id: customer.id.clone(),
                        channel: channel.channel,
                        channel_number: channel.number,
                        provider: number.provider,
                        number: number.number,
                        partition: number.partition,
                        app_id: session.app_id.clone(),
                        started_at: started,
                        expires_at: started + duration,
                        ended_at: Some(started + duration),
                        end_reason: Some(c.end_reason),
                    })
                    .await
                    .map_err(internal)?;
                Ok(reply(true, if stored { "imported" } else { "already imported" }, Some(customer.id)))
            }
            Command::ReplayMessagingConsentUpdate(c) => {
                let (customer, _, channel) = target!(&c.customer_number, &c.channel_number);
                let blocked = match MessagingConsentUpdate::try_from(c.update) {
                    Ok(MessagingConsentUpdate::Allow) => false,
                    Ok(MessagingConsentUpdate::Block) => true,
                    _ => return Ok(reply(false, "update must be ALLOW or BLOCK", Some(customer.id))),
                };
                store.set_consent(&customer.id, channel.channel, &channel.number, blocked).await.map_err(internal)?;
                Ok(reply(true, if blocked { "blocked" } else { "allowed" }, Some(customer.id)))
            }
            other => Err(RemoteError::application(format!("not a replay command: {other:?}"))),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn message_row(
    session: &Session,
    customer: &CustomerRecord,
    channel: &MessagingChannelNumber,
    id: String,
    direction: CustomerEventDirection,
    status: MessageDeliveryStatus,
    session_id: Option<String>,
    provider_message_id: String,
    body: ChannelMessage,
    at: i64,
) -> MessageRow {
    MessageRow {
        id,
        org_id: session.org_id.clone(),
        customer_id: customer.id.clone(),
        direction: direction as i32,
        channel: channel.channel,
        channel_number: channel.number.clone(),
        session_id,
        status: status as i32,
        provider_message_id: Some(provider_message_id),
        body: body.encode_to_vec(),
        created_at: at,
    }
}

/// Changes a stored sent message found by provider id; `change` returns the new status column value.
async fn update_sent(
    hodi: &Hodi,
    session: &Session,
    customer: &CustomerRecord,
    provider_message_id: &str,
    change: impl FnOnce(&mut SentMessage) -> Option<i32>,
) -> Result<Entry, RemoteError> {
    let row = hodi.store.message_by_provider_id(&session.org_id, provider_message_id).await.map_err(internal)?;
    let Some(row) = row.filter(|r| r.customer_id == customer.id) else {
        return Ok(reply(
            false,
            format!("no message of this customer has provider id {provider_message_id:?}"),
            Some(customer.id.clone()),
        ));
    };
    let Some(channel_message::Entry::Sent(mut sent)) =
        ChannelMessage::decode(row.body.as_slice()).ok().and_then(|m| m.entry)
    else {
        return Ok(reply(false, "only sent messages have statuses and reactions", Some(customer.id.clone())));
    };
    let status = change(&mut sent).unwrap_or(row.status);
    let body = ChannelMessage { entry: Some(channel_message::Entry::Sent(sent)) }.encode_to_vec();
    hodi.store.set_message_body(&row.id, status, &body).await.map_err(internal)?;
    Ok(reply(true, "updated", Some(customer.id.clone())))
}
