//! Messaging: channels, inbound messages from the customer side (the simulator socket today),
//! outbound messages to it, sessions, consent, delivery status, and the messaging part of a
//! customer's state.
//!
//! Owns the rules of conversations. Storage is [`crate::store::messaging`]; the wire commands that
//! reach here are parsed in [`crate::command`]; notifications go through the outbox
//! ([`crate::notify`]) except the synchronous USSD and voice round trips, which cannot wait.

pub mod inbound;
pub mod outbound;
pub mod providers;
pub mod reaction;
pub mod replay;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tracing::warn;

use crate::context::Hodi;
use crate::store::outbox::NewNotification;
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    CustomerNumber, CustomerNumberProvider, MessagingChannel, MessagingChannelNumber, MessagingSessionEndReason,
    MessagingSessionEndedNotification, ServerToAppCustomerNotification,
};

/// How long a session opened on `channel` stays open without activity (config `messaging.*`).
pub fn session_window_ms(hodi: &Hodi, channel: MessagingChannel) -> i64 {
    let secs =
        if is_chat(channel) { hodi.config.messaging.chat_window_secs } else { hodi.config.messaging.live_session_secs };
    crate::store::secs_to_ms(secs)
}

/// The one check every command naming a messaging channel number makes (sends, replies by tag,
/// consent, inbound simulator messages, replays): the channel is a real one and the number is
/// provisioned for the org on it. `Ok(Err(why))` is the refusal to reply with.
pub async fn check_channel(
    store: &crate::store::Store,
    org_id: &str,
    channel_number: &MessagingChannelNumber,
) -> anyhow::Result<Result<&'static str, String>> {
    Ok(channel_route(store, org_id, channel_number).await?.map(|(name, _)| name))
}

/// [`check_channel`], and the provider the number sends through when it is bound to one.
pub async fn channel_route(
    store: &crate::store::Store,
    org_id: &str,
    channel_number: &MessagingChannelNumber,
) -> anyhow::Result<Result<(&'static str, Option<String>), String>> {
    let channel = MessagingChannel::try_from(channel_number.channel).unwrap_or(MessagingChannel::Unspecified);
    let Some(name) = channel_name(channel) else { return Ok(Err("channel_number has no channel".into())) };
    match store.channel_binding(org_id, name, &channel_number.number).await? {
        Some(provider) => Ok(Ok((name, provider))),
        None if store.channel_number_disabled(org_id, name, &channel_number.number).await? => {
            Ok(Err(format!("{name} number {:?} is disabled by the operator", channel_number.number)))
        }
        None => Ok(Err(format!("{name} number {:?} is not provisioned for this org", channel_number.number))),
    }
}

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

/// Ends sessions whose window lapsed (reason INACTIVITY), telling their app; runs until `shutdown`.
pub async fn sweep_sessions(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(hodi.config.messaging.session_sweep_ms.max(10))) => {}
        }
        let now = crate::store::now_ms();
        let lapsed = match hodi.store.lapsed_sessions(now, 500).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "reading lapsed messaging sessions");
                continue;
            }
        };
        for s in lapsed {
            let entry = ServerToAppCustomerNotification {
                entry: Some(AppEntry::MessagingSessionEnded(MessagingSessionEndedNotification {
                    customer_number: Some(CustomerNumber {
                        provider: s.provider,
                        number: s.number.clone(),
                        partition: (!s.partition.is_empty()).then(|| s.partition.clone()),
                    }),
                    channel_number: Some(MessagingChannelNumber {
                        channel: s.channel,
                        number: s.channel_number.clone(),
                    }),
                    session_id: s.id.clone(),
                    duration: Some(prost_types::Duration {
                        seconds: (s.expires_at - s.started_at).max(0) / 1000,
                        nanos: 0,
                    }),
                    reason: MessagingSessionEndReason::Inactivity as i32,
                })),
                ..Default::default()
            }
            .encode_to_vec();
            let queued =
                [NewNotification { org_id: &s.org_id, app_id: &s.app_id, customer_id: &s.customer_id, entry: &entry }];
            if let Err(e) = hodi.store.close_session(&s.id, MessagingSessionEndReason::Inactivity as i32, &queued).await
            {
                warn!(session_id = %s.id, error = %e, "ending a lapsed session");
            }
        }
    }
}
