//! Reactions to sent messages: clicked, unsubscribed, complained.
//!
//! A reaction is recorded on the sent message (it shows in the customer's state) and becomes a
//! `sent_message_reaction` notification to the app that sent it, in one transaction. Each kind is
//! recorded once per message: a second click on the same message changes nothing, so a provider
//! retrying its report does not notify twice.
//!
//! Where reactions come from (providers are simulated today):
//! - a customer answering a sent message with an opt-out keyword ([`OPT_OUT_KEYWORDS`]) on the
//!   same channel number: UNSUBSCRIBED on the latest message sent there. The answer is still a
//!   received message; whether to block the channel is the app's decision (UpdateMessagingConsent);
//! - `hodi react --message <id> --reaction clicked|unsubscribed|complained`, the operator's stand-in
//!   for a provider's report (a link click, a spam complaint);
//! - ReplayMessageReactionUpdate imports history without notifying ([`super::replay`]).
//!
//! Owns the rule above; does not own how the message was sent or stored.

use prost::Message;

use crate::store::outbox::NewNotification;
use crate::store::Store;
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    channel_message, ChannelMessage, CustomerEventDirection, MessageReaction, MessageReactionState,
    MessagingChannelNumber, SentMessageReactionNotification, ServerToAppCustomerNotification,
};

/// Texts that unsubscribe the customer from the channel number they answer (case and surrounding
/// space ignored), as SMS aggregators treat them.
pub const OPT_OUT_KEYWORDS: &[&str] = &["STOP", "UNSUBSCRIBE", "STOPALL"];

/// Whether an inbound text is an opt-out.
pub fn is_opt_out(text: &str) -> bool {
    let text = text.trim();
    OPT_OUT_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(text))
}

/// What [`react`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reacted {
    /// Recorded, and the app that sent the message will be told.
    Recorded { app_id: String },
    /// The message already had this reaction: nothing changed.
    AlreadyRecorded,
    /// No message has this id.
    UnknownMessage,
    /// The message was received, not sent: only sent messages get reactions.
    NotSent,
}

/// Parses `clicked`, `unsubscribed` or `complained` (any case).
pub fn parse_reaction(name: &str) -> Option<MessageReaction> {
    match name.to_ascii_lowercase().as_str() {
        "clicked" => Some(MessageReaction::Clicked),
        "unsubscribed" => Some(MessageReaction::Unsubscribed),
        "complained" => Some(MessageReaction::Complained),
        _ => None,
    }
}

/// Records `reaction` on the sent message `message_id` and queues its notification. The commit
/// wakes this process's dispatcher; another process's (the CLI's) finds it at its next outbox poll.
pub async fn react(store: &Store, message_id: &str, reaction: MessageReaction, at_ms: i64) -> anyhow::Result<Reacted> {
    let Some(row) = store.message(message_id).await? else { return Ok(Reacted::UnknownMessage) };
    if row.direction != CustomerEventDirection::Outbound as i32 {
        return Ok(Reacted::NotSent);
    }
    let Some(channel_message::Entry::Sent(mut sent)) =
        ChannelMessage::decode(row.body.as_slice()).ok().and_then(|m| m.entry)
    else {
        return Ok(Reacted::NotSent);
    };
    if sent.reactions.iter().any(|r| r.reaction == reaction as i32) {
        return Ok(Reacted::AlreadyRecorded);
    }
    sent.reactions
        .push(MessageReactionState { created_at: Some(crate::convert::timestamp(at_ms)), reaction: reaction as i32 });
    let app_id = sent.app_id.clone().unwrap_or_default();
    let entry = ServerToAppCustomerNotification {
        entry: Some(AppEntry::SentMessageReaction(SentMessageReactionNotification {
            message_id: row.id.clone(),
            customer_number: sent.customer_number.clone(),
            channel_number: Some(
                sent.channel_number
                    .clone()
                    .unwrap_or(MessagingChannelNumber { channel: row.channel, number: row.channel_number.clone() }),
            ),
            reaction: reaction as i32,
        })),
        ..Default::default()
    }
    .encode_to_vec();
    let body = ChannelMessage { entry: Some(channel_message::Entry::Sent(sent)) }.encode_to_vec();
    let notification =
        NewNotification { org_id: &row.org_id, app_id: &app_id, customer_id: &row.customer_id, entry: &entry };
    store.record_reaction(&row.id, &body, &notification).await?;
    Ok(Reacted::Recorded { app_id })
}
