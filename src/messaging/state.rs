//! The messaging part of GetCustomerState: channel states, recent messages, completed sessions.

use prost::Message;

use crate::convert::timestamp;
use crate::store::customer_state::StateMessage;
use crate::store::messaging::{ConsentRow, SessionRow};
use crate::store::now_ms;
use crate::wire::{
    channel_message, messaging_channel_state, ActiveMessagingChannelState, BlockedMessagingChannelState,
    ChannelMessage, CompleteMessagingSession, CustomerNumber, InSessionMessagingChannelState, MessagingChannelNumber,
    MessagingChannelState, MessagingState,
};

/// The messaging state from the customer's stored rows (latest messages, sessions, consents);
/// `number` is the customer number the channel states name.
pub fn state(
    number: Option<CustomerNumber>,
    messages: &[StateMessage],
    sessions: &[SessionRow],
    consents: &[ConsentRow],
) -> MessagingState {
    let now = now_ms();

    // Every (channel, number) the customer has a message, session or consent on.
    let mut channels: Vec<(i32, String)> = messages
        .iter()
        .map(|m| (m.channel, m.channel_number.clone()))
        .chain(sessions.iter().map(|s| (s.channel, s.channel_number.clone())))
        .chain(consents.iter().map(|c| (c.channel, c.channel_number.clone())))
        .collect();
    channels.sort();
    channels.dedup();
    let channel_states = channels
        .into_iter()
        .map(|(channel, channel_number)| {
            let channel_number = MessagingChannelNumber { channel, number: channel_number };
            let consent = consents.iter().find(|c| c.channel == channel && c.channel_number == channel_number.number);
            let open = sessions.iter().rev().find(|s| {
                s.channel == channel
                    && s.channel_number == channel_number.number
                    && s.ended_at.is_none()
                    && s.expires_at > now
            });
            let state = match (consent, open) {
                (Some(c), _) if c.blocked => messaging_channel_state::State::Blocked(BlockedMessagingChannelState {
                    customer_number: number.clone(),
                    channel_number: Some(channel_number),
                    reply_token: None,
                    blocked_at: Some(timestamp(c.updated_at)),
                }),
                (_, Some(s)) => messaging_channel_state::State::InSession(InSessionMessagingChannelState {
                    customer_number: number.clone(),
                    channel_number: Some(channel_number),
                    reply_token: None,
                    allowed_at: consent.map(|c| timestamp(c.updated_at)),
                    session_id: s.id.clone(),
                    started_at: Some(timestamp(s.started_at)),
                    expires_at: Some(timestamp(s.expires_at)),
                    app_ids: vec![s.app_id.clone()],
                    provider_session_id: None,
                }),
                _ => messaging_channel_state::State::Active(ActiveMessagingChannelState {
                    customer_number: number.clone(),
                    channel_number: Some(channel_number),
                    reply_token: None,
                    allowed_at: consent.map(|c| timestamp(c.updated_at)),
                }),
            };
            MessagingChannelState { state: Some(state) }
        })
        .collect();

    MessagingState {
        channels: channel_states,
        messages: messages
            .iter()
            .filter_map(|m| {
                let mut message = ChannelMessage::decode(m.body.as_slice()).ok()?;
                // The status column is the truth; the body keeps what was sent.
                if let Some(channel_message::Entry::Sent(sent)) = message.entry.as_mut() {
                    sent.status = m.status;
                }
                Some(message)
            })
            .collect(),
        sessions: sessions
            .iter()
            .filter(|s| s.ended_at.is_some())
            .map(|s| CompleteMessagingSession {
                customer_number: Some(CustomerNumber {
                    provider: s.provider,
                    number: s.number.clone(),
                    partition: (!s.partition.is_empty()).then(|| s.partition.clone()),
                }),
                channel_number: Some(MessagingChannelNumber { channel: s.channel, number: s.channel_number.clone() }),
                session_id: s.id.clone(),
                started_at: Some(timestamp(s.started_at)),
                duration: s
                    .ended_at
                    .map(|e| prost_types::Duration { seconds: (e - s.started_at).max(0) / 1000, nanos: 0 }),
                app_ids: vec![s.app_id.clone()],
                end_reason: s.end_reason.unwrap_or_default(),
                cost: None,
                provider_session_id: None,
            })
            .collect(),
    }
}
