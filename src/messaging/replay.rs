//! Imported history: messages, statuses, reactions, sessions and consent that happened elsewhere
//! (another Elarian deployment, a provider's logs), stored once per provider id and without
//! notifying anyone. Replaying the same item again changes nothing and says so.
//!
//! Owns the rules of an import (which customer and channel it names, what a replayed item
//! becomes when stored); parsing the Replay* commands is [`crate::command`]'s, SQL the store's.

use prost::Message;

use crate::context::Hodi;
use crate::convert::bounds::replayed;
use crate::convert::{stored_number, timestamp, wire_number};
use crate::messaging::check_channel;
use crate::store::customers::{CustomerRecord, StoredNumber};
use crate::store::messaging::{MessageRow, SessionRow};
use crate::store::new_id;
use crate::wire::{
    channel_message, ChannelMessage, CustomerEventDirection, CustomerNumber, MessageDeliveryStatus,
    MessageReactionState, MessagingChannelNumber, MessagingConsentUpdate, ReceivedMessage,
    ReplayMessageReactionUpdateCommand, ReplayMessageStatusUpdateCommand, ReplayMessagingConsentUpdateCommand,
    ReplayMessagingSessionCommand, ReplayReceivedMessageCommand, ReplaySentMessageCommand, SentMessage,
};

/// The app an import is made for.
pub struct Importer<'a> {
    pub hodi: &'a Hodi,
    pub org_id: &'a str,
    pub app_id: &'a str,
}

/// How an import went, as the app is told: done or not, why, and the customer it named.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    pub done: bool,
    pub description: String,
    pub customer_id: Option<String>,
}

fn refused(why: impl Into<String>, customer: Option<&CustomerRecord>) -> Imported {
    Imported { done: false, description: why.into(), customer_id: customer.map(|c| c.id.clone()) }
}

fn done(description: impl Into<String>, customer: &CustomerRecord) -> Imported {
    Imported { done: true, description: description.into(), customer_id: Some(customer.id.clone()) }
}

fn stored(stored: bool, customer: &CustomerRecord) -> Imported {
    done(if stored { "imported" } else { "already imported" }, customer)
}

/// The customer and channel an import names, or why it names none that can take it.
type Target = Result<(CustomerRecord, StoredNumber, MessagingChannelNumber), String>;

impl Importer<'_> {
    async fn target(
        &self,
        number: &Option<CustomerNumber>,
        channel: &Option<MessagingChannelNumber>,
    ) -> anyhow::Result<Target> {
        let number = match number.as_ref().map(stored_number) {
            Some(Ok(n)) => n,
            Some(Err(why)) => return Ok(Err(why)),
            None => return Ok(Err("customer_number is required".into())),
        };
        let Some(channel) = channel.clone() else { return Ok(Err("channel_number is required".into())) };
        if let Err(why) = check_channel(&self.hodi.store, self.org_id, &channel).await? {
            return Ok(Err(why));
        }
        let (customer, _) = self.hodi.store.customer_by_number(self.org_id, &number).await?;
        if customer.decommissioned {
            return Ok(Err(format!("customer {} is decommissioned", customer.id)));
        }
        Ok(Ok((customer, number, channel)))
    }

    /// The target of an imported message, which must name its provider id (what makes a
    /// replay happen once).
    async fn message_target(
        &self,
        provider_message_id: &str,
        number: &Option<CustomerNumber>,
        channel: &Option<MessagingChannelNumber>,
    ) -> anyhow::Result<Result<(CustomerRecord, StoredNumber, MessagingChannelNumber), Imported>> {
        if provider_message_id.is_empty() {
            return Ok(Err(refused("provider_message_id is required", None)));
        }
        Ok(self.target(number, channel).await?.map_err(|why| refused(why, None)))
    }

    pub async fn received(&self, c: ReplayReceivedMessageCommand) -> anyhow::Result<Imported> {
        let (customer, number, channel) =
            match self.message_target(&c.provider_message_id, &c.customer_number, &c.channel_number).await? {
                Ok(t) => t,
                Err(refusal) => return Ok(refusal),
            };
        let id = new_id("msg_");
        let at = replayed(&c.received_at);
        let body = ChannelMessage {
            entry: Some(channel_message::Entry::Received(ReceivedMessage {
                customer_number: Some(wire_number(&number)),
                channel_number: Some(channel.clone()),
                message_id: id.clone(),
                created_at: Some(timestamp(at)),
                session_id: c.provider_session_id.clone(),
                in_reply_to: c.in_reply_to,
                provider: c.provider,
                app_id: Some(self.app_id.to_string()),
                parts: c.parts,
                cost: c.cost,
                provider_message_id: Some(c.provider_message_id.clone()),
            })),
        };
        let row = MessageRow {
            direction: CustomerEventDirection::Inbound as i32,
            status: MessageDeliveryStatus::Received as i32,
            session_id: c.provider_session_id,
            provider_message_id: Some(c.provider_message_id),
            body: body.encode_to_vec(),
            ..self.row(&customer, &channel, id, at)
        };
        Ok(stored(self.hodi.store.insert_message(&row).await?, &customer))
    }

    pub async fn sent(&self, c: ReplaySentMessageCommand) -> anyhow::Result<Imported> {
        let (customer, number, channel) =
            match self.message_target(&c.provider_message_id, &c.customer_number, &c.channel_number).await? {
                Ok(t) => t,
                Err(refusal) => return Ok(refusal),
            };
        let id = new_id("msg_");
        let at = replayed(&c.sent_at);
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
                app_id: Some(self.app_id.to_string()),
                updated_at: Some(timestamp(at)),
                status: status as i32,
                reactions: Vec::new(),
                message: c.message,
                cost: c.cost,
                provider_message_id: Some(c.provider_message_id.clone()),
            })),
        };
        let row = MessageRow {
            direction: CustomerEventDirection::Outbound as i32,
            status: status as i32,
            session_id: c.provider_session_id,
            provider_message_id: Some(c.provider_message_id),
            body: body.encode_to_vec(),
            ..self.row(&customer, &channel, id, at)
        };
        Ok(stored(self.hodi.store.insert_message(&row).await?, &customer))
    }

    pub async fn status(&self, c: ReplayMessageStatusUpdateCommand) -> anyhow::Result<Imported> {
        let customer = match self.target(&c.customer_number, &c.channel_number).await? {
            Ok((customer, ..)) => customer,
            Err(why) => return Ok(refused(why, None)),
        };
        let status = MessageDeliveryStatus::try_from(c.status).unwrap_or(MessageDeliveryStatus::Unspecified);
        if status == MessageDeliveryStatus::Unspecified {
            return Ok(refused("status is required", Some(&customer)));
        }
        self.update_sent(&customer, &c.provider_message_id, |sent| {
            sent.status = status as i32;
            sent.updated_at = Some(timestamp(replayed(&c.updated_at)));
            if c.cost.is_some() {
                sent.cost = c.cost.clone();
            }
            Some(status as i32)
        })
        .await
    }

    pub async fn reaction(&self, c: ReplayMessageReactionUpdateCommand) -> anyhow::Result<Imported> {
        let customer = match self.target(&c.customer_number, &c.channel_number).await? {
            Ok((customer, ..)) => customer,
            Err(why) => return Ok(refused(why, None)),
        };
        let at = timestamp(replayed(&c.updated_at));
        self.update_sent(&customer, &c.provider_message_id, |sent| {
            let reaction = MessageReactionState { created_at: Some(at), reaction: c.reaction };
            if !sent.reactions.contains(&reaction) {
                sent.reactions.push(reaction);
            }
            None
        })
        .await
    }

    /// A completed session: stored ended, so it neither opens a chat window nor expires.
    pub async fn session(&self, c: ReplayMessagingSessionCommand) -> anyhow::Result<Imported> {
        if c.provider_session_id.is_empty() {
            return Ok(refused("provider_session_id is required", None));
        }
        let (customer, number, channel) = match self.target(&c.customer_number, &c.channel_number).await? {
            Ok(t) => t,
            Err(why) => return Ok(refused(why, None)),
        };
        let started = replayed(&c.started_at);
        let duration = c.duration.map(|d| d.seconds.saturating_mul(1000)).unwrap_or(0).max(0);
        let row = SessionRow {
            id: c.provider_session_id,
            org_id: self.org_id.to_string(),
            customer_id: customer.id.clone(),
            channel: channel.channel,
            channel_number: channel.number,
            provider: number.provider,
            number: number.number,
            partition: number.partition,
            app_id: self.app_id.to_string(),
            started_at: started,
            expires_at: started.saturating_add(duration),
            ended_at: Some(started.saturating_add(duration)),
            end_reason: Some(c.end_reason),
        };
        Ok(stored(self.hodi.store.insert_session_once(&row).await?, &customer))
    }

    pub async fn consent(&self, c: ReplayMessagingConsentUpdateCommand) -> anyhow::Result<Imported> {
        let (customer, _, channel) = match self.target(&c.customer_number, &c.channel_number).await? {
            Ok(t) => t,
            Err(why) => return Ok(refused(why, None)),
        };
        let blocked = match MessagingConsentUpdate::try_from(c.update) {
            Ok(MessagingConsentUpdate::Allow) => false,
            Ok(MessagingConsentUpdate::Block) => true,
            _ => return Ok(refused("update must be ALLOW or BLOCK", Some(&customer))),
        };
        self.hodi.store.set_consent(&customer.id, channel.channel, &channel.number, blocked).await?;
        Ok(done(if blocked { "blocked" } else { "allowed" }, &customer))
    }

    /// The columns every imported message shares; the caller fills in what it is.
    fn row(&self, customer: &CustomerRecord, channel: &MessagingChannelNumber, id: String, at: i64) -> MessageRow {
        MessageRow {
            id,
            org_id: self.org_id.to_string(),
            customer_id: customer.id.clone(),
            direction: 0,
            channel: channel.channel,
            channel_number: channel.number.clone(),
            session_id: None,
            status: 0,
            provider_message_id: None,
            body: Vec::new(),
            created_at: at,
        }
    }

    /// Changes a stored sent message found by provider id; `change` returns the new status column value.
    async fn update_sent(
        &self,
        customer: &CustomerRecord,
        provider_message_id: &str,
        change: impl FnOnce(&mut SentMessage) -> Option<i32>,
    ) -> anyhow::Result<Imported> {
        let row = self.hodi.store.message_by_provider_id(self.org_id, provider_message_id).await?;
        let Some(row) = row.filter(|r| r.customer_id == customer.id) else {
            return Ok(refused(
                format!("no message of this customer has provider id {provider_message_id:?}"),
                Some(customer),
            ));
        };
        let Some(channel_message::Entry::Sent(mut sent)) =
            ChannelMessage::decode(row.body.as_slice()).ok().and_then(|m| m.entry)
        else {
            return Ok(refused("only sent messages have statuses and reactions", Some(customer)));
        };
        let status = change(&mut sent).unwrap_or(row.status);
        let body = ChannelMessage { entry: Some(channel_message::Entry::Sent(sent)) }.encode_to_vec();
        self.hodi.store.set_message_body(&row.id, status, &body).await?;
        Ok(done("updated", customer))
    }
}
