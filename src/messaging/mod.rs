//! Messaging: channels, inbound messages from the customer side (the simulator socket today),
//! outbound messages to it, sessions, consent, delivery status, and the messaging part of a
//! customer's state.
//!
//! Owns the rules of conversations. Storage is [`crate::store::messaging`]; the wire commands that
//! reach here are parsed in [`crate::command`]; notifications go through the outbox
//! ([`crate::notify`]) except the synchronous USSD and voice round trips, which cannot wait.

pub mod inbound;
pub mod outbound;
pub mod state;

use crate::wire::{CustomerNumberProvider, MessagingChannel};

/// How long a chat channel's session window stays open after an inbound message.
pub const CHAT_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// How long a USSD or voice session may last without activity.
pub const LIVE_SESSION_MS: i64 = 180 * 1000;

/// The channel's name as provisioned (`hodi provision channel --channel …`) and as the SDKs write it.
pub fn channel_name(channel: MessagingChannel) -> Option<&'static str> {
    Some(match channel {
        MessagingChannel::Sms => "sms",
        MessagingChannel::Voice => "voice",
        MessagingChannel::Ussd => "ussd",
        MessagingChannel::FbMessenger => "fb_messenger",
        MessagingChannel::Telegram => "telegram",
        MessagingChannel::Whatsapp => "whatsapp",
        MessagingChannel::Email => "email",
        MessagingChannel::Unspecified => return None,
    })
}

/// The kind of customer number a channel reaches.
pub fn customer_provider(channel: MessagingChannel) -> CustomerNumberProvider {
    match channel {
        MessagingChannel::Telegram => CustomerNumberProvider::Telegram,
        MessagingChannel::FbMessenger => CustomerNumberProvider::Facebook,
        MessagingChannel::Email => CustomerNumberProvider::Email,
        _ => CustomerNumberProvider::Cellular,
    }
}

/// USSD and voice: a live session whose app replies go straight back to the customer.
pub fn is_live(channel: MessagingChannel) -> bool {
    matches!(channel, MessagingChannel::Ussd | MessagingChannel::Voice)
}

/// Chat channels open a session window on an inbound message.
pub fn is_chat(channel: MessagingChannel) -> bool {
    matches!(channel, MessagingChannel::Whatsapp | MessagingChannel::Telegram | MessagingChannel::FbMessenger)
}
