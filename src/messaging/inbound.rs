//! Inbound messages from the customer's side: the simulator's ReceiveMessage.
//!
//! The message is stored with its session changes and queued notifications in one transaction.
//! On SMS, email and chat channels the app hears of it through the outbox (`received_message`,
//! and `messaging_session_started`/`renewed` for chat windows). USSD and voice are live: the app is
//! asked at once and its reply (a menu, voice actions) goes back in the simulator's reply, as a
//! phone would see it; with no app to answer, the session fails fast instead of waiting.

use std::sync::Arc;

use prost::Message;
use tracing::warn;

use super::outbound::{record_live_reply, Outbound};
use super::{customer_provider, is_chat, is_live, session_window_ms};
use crate::context::Hodi;
use crate::convert::timestamp;
use crate::convert::wire_number;
use crate::store::customers::StoredNumber;
use crate::store::messaging::{MessageRow, SessionRow};
use crate::store::outbox::NewNotification;
use crate::store::{new_id, now_ms};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    channel_message, inbound_message_body, outbound_message_body, ChannelMessage, ChannelNumberProvider,
    CustomerEventDirection, MessageDeliveryStatus, MessagingChannel, MessagingSessionEndReason,
    MessagingSessionEndedNotification, MessagingSessionRenewedNotification, MessagingSessionStartedNotification,
    ReceiveMessageSimulatorCommand, ReceivedMessage, ReceivedMessageNotification, ServerToAppCustomerNotification,
    SimulatorToServerCommandReply, UssdSessionStatus, VoiceCallStatus,
};

fn reply(status: bool, description: impl Into<String>) -> SimulatorToServerCommandReply {
    SimulatorToServerCommandReply { status, description: description.into(), message: None }
}

fn entry(e: AppEntry) -> Vec<u8> {
    ServerToAppCustomerNotification { entry: Some(e), ..Default::default() }.encode_to_vec()
}

/// A customer's message to `app_id` of `org_id`: the simulator's ReceiveMessage, or what the voice
/// executor hears on a real call (it speaks the same command).
pub async fn receive(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    cmd: ReceiveMessageSimulatorCommand,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    receive_from_provider(hodi, org_id, app_id, cmd, None).await
}

/// [`receive`] for a message a provider handed over under its own id: a provider that sends the
/// same message again (after a timeout, or our 500) finds it received once, and the app hears of
/// it once.
pub async fn receive_from_provider(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    cmd: ReceiveMessageSimulatorCommand,
    provider_message_id: Option<String>,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    receive_inner(hodi, org_id, app_id, cmd, provider_message_id, None).await
}

/// [`receive`] from a customer known by a number of `provider` rather than the channel's usual
/// kind: a phone registered with Hodi's SIP registrar calls as `user@domain`, an app identity.
pub async fn receive_as(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    cmd: ReceiveMessageSimulatorCommand,
    provider: crate::wire::CustomerNumberProvider,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    receive_inner(hodi, org_id, app_id, cmd, None, Some(provider)).await
}

async fn receive_inner(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    cmd: ReceiveMessageSimulatorCommand,
    provider_message_id: Option<String>,
    provider: Option<crate::wire::CustomerNumberProvider>,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    let Some(channel_number) = cmd.channel_number.clone() else {
        return Ok(reply(false, "channel_number is required"));
    };
    let channel = MessagingChannel::try_from(channel_number.channel).unwrap_or(MessagingChannel::Unspecified);
    if cmd.customer_number.trim().is_empty() {
        return Ok(reply(false, "customer_number is required"));
    }
    if cmd.parts.is_empty() {
        return Ok(reply(false, "a message needs at least one part"));
    }
    let name = match super::check_channel(&hodi.store, org_id, &channel_number).await? {
        Ok(name) => name,
        Err(why) => return Ok(reply(false, why)),
    };
    let number = StoredNumber {
        provider: provider.unwrap_or_else(|| customer_provider(channel)) as i32,
        number: cmd.customer_number.clone(),
        partition: String::new(),
    };
    if let Err(why) = crate::convert::number::check(number.provider, &number.number) {
        return Ok(reply(false, why));
    }
    let (customer, _) = hodi.store.customer_by_number(org_id, &number).await?;
    let now = now_ms();
    let wire_customer = wire_number(&number);

    // Sessions: live channels use the simulator's session id; chat channels open or renew a window.
    let mut notifications: Vec<Vec<u8>> = Vec::new();
    let mut new_session = None;
    let mut renew = None;
    // When the session this message belongs to began (for the duration of a session-ended notice).
    let mut session_started = now;
    let session_id = if is_live(channel) || is_chat(channel) {
        let existing = match (&cmd.session_id, is_chat(channel)) {
            (_, true) => hodi.store.open_session(&customer.id, channel_number.channel, &channel_number.number).await?,
            (Some(id), false) => hodi.store.session(id).await?.filter(|s| s.ended_at.is_none()),
            (None, false) => None,
        };
        let window = session_window_ms(hodi, channel);
        match existing {
            Some(s) => {
                session_started = s.started_at;
                renew = Some((s.id.clone(), now + window));
                if is_chat(channel) {
                    notifications.push(entry(AppEntry::MessagingSessionRenewed(MessagingSessionRenewedNotification {
                        customer_number: Some(wire_customer.clone()),
                        channel_number: Some(channel_number.clone()),
                        session_id: s.id.clone(),
                        expires_at: Some(timestamp(now + window)),
                    })));
                }
                Some(s.id)
            }
            None => {
                let id = cmd.session_id.clone().filter(|_| is_live(channel)).unwrap_or_else(|| new_id("ses_"));
                new_session = Some(SessionRow {
                    id: id.clone(),
                    org_id: org_id.to_string(),
                    customer_id: customer.id.clone(),
                    channel: channel_number.channel,
                    channel_number: channel_number.number.clone(),
                    provider: number.provider,
                    number: number.number.clone(),
                    partition: String::new(),
                    app_id: app_id.to_string(),
                    started_at: now,
                    expires_at: now + window,
                    ended_at: None,
                    end_reason: None,
                });
                notifications.push(entry(AppEntry::MessagingSessionStarted(MessagingSessionStartedNotification {
                    customer_number: Some(wire_customer.clone()),
                    channel_number: Some(channel_number.clone()),
                    session_id: id.clone(),
                    expires_at: Some(timestamp(now + window)),
                })));
                Some(id)
            }
        }
    } else {
        cmd.session_id.clone()
    };
    // A USSD part no longer ACTIVE, or a voice part with a final status or a hang-up cause, means
    // the customer left: the session ends with this message.
    let hung_up = cmd.parts.iter().any(|p| match &p.entry {
        Some(inbound_message_body::Entry::Ussd(u)) => u.status != UssdSessionStatus::Active as i32 && u.status != 0,
        Some(inbound_message_body::Entry::Voice(v)) => {
            v.status >= VoiceCallStatus::Completed as i32 || v.hangup_cause != 0
        }
        _ => false,
    });

    let message_id = new_id("msg_");
    let received = ReceivedMessage {
        customer_number: Some(wire_customer.clone()),
        channel_number: Some(channel_number.clone()),
        message_id: message_id.clone(),
        created_at: Some(timestamp(now)),
        session_id: session_id.clone(),
        in_reply_to: None,
        provider: ChannelNumberProvider::At as i32,
        app_id: Some(app_id.to_string()),
        parts: cmd.parts.clone(),
        cost: cmd.cost.clone(),
        provider_message_id: provider_message_id.clone(),
    };
    let row = MessageRow {
        id: message_id.clone(),
        org_id: org_id.to_string(),
        customer_id: customer.id.clone(),
        direction: CustomerEventDirection::Inbound as i32,
        channel: channel_number.channel,
        channel_number: channel_number.number.clone(),
        session_id: session_id.clone(),
        status: MessageDeliveryStatus::Received as i32,
        provider_message_id,
        body: ChannelMessage { entry: Some(channel_message::Entry::Received(received)) }.encode_to_vec(),
        created_at: now,
    };
    let received_notification = ReceivedMessageNotification {
        message_id: message_id.clone(),
        customer_number: Some(wire_customer.clone()),
        channel_number: Some(channel_number.clone()),
        parts: cmd.parts.clone(),
        session_id: session_id.clone(),
        in_reply_to: None,
    };
    // Live sessions ask the app synchronously, except the last message of one (a hang-up): nobody
    // is waiting for an answer then, so it goes through the outbox like any other.
    let live = is_live(channel) && !hung_up;
    if !live {
        notifications.push(entry(AppEntry::ReceivedMessage(received_notification.clone())));
    }
    let end = match (&session_id, hung_up) {
        (Some(id), true) => {
            notifications.push(ended(
                &wire_customer,
                &channel_number,
                id,
                session_started,
                MessagingSessionEndReason::NormalClearing,
            ));
            Some((id.as_str(), MessagingSessionEndReason::NormalClearing as i32))
        }
        _ => None,
    };
    let queued: Vec<NewNotification<'_>> =
        notifications.iter().map(|e| NewNotification { org_id, app_id, customer_id: &customer.id, entry: e }).collect();
    let stored = hodi
        .store
        .record_inbound(&row, new_session.as_ref(), renew.as_ref().map(|(id, at)| (id.as_str(), *at)), end, &queued)
        .await?;
    if !stored {
        return Ok(reply(true, "already received"));
    }
    if !live && cmd.parts.iter().any(opts_out) {
        unsubscribe(hodi, &customer.id, &channel_number, now).await;
    }
    if !live {
        return Ok(reply(true, "received"));
    }

    // Live: ask the app now; its reply is what the customer sees.
    let notification = ServerToAppCustomerNotification {
        entry: Some(AppEntry::ReceivedMessage(received_notification)),
        ..Default::default()
    };
    let answer = crate::notify::deliver_now(hodi, org_id, app_id, &customer.id, &message_id, notification).await;
    let session_id = session_id.unwrap_or_default();
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let end = ended(
                &wire_customer,
                &channel_number,
                &session_id,
                session_started,
                MessagingSessionEndReason::Failure,
            );
            close(hodi, org_id, app_id, &customer.id, &session_id, MessagingSessionEndReason::Failure, &end).await;
            return Ok(reply(false, format!("no app answered this {name} session: {e}")));
        }
    };
    let Some(message) = answer.message else { return Ok(reply(true, "the app sent no reply")) };
    let outbound = Outbound {
        org_id: org_id.to_string(),
        app_id: app_id.to_string(),
        customer_id: customer.id.clone(),
        number,
        channel_number: channel_number.clone(),
        message: message.clone(),
        session_id: Some(session_id.clone()),
        in_reply_to: Some(message_id),
    };
    record_live_reply(hodi, &outbound).await?;
    let terminal = matches!(
        message.body.as_ref().and_then(|b| b.entry.as_ref()),
        Some(outbound_message_body::Entry::Ussd(menu)) if menu.is_terminal
    );
    if terminal {
        let end = ended(
            &wire_customer,
            &channel_number,
            &session_id,
            session_started,
            MessagingSessionEndReason::NormalClearing,
        );
        close(hodi, org_id, app_id, &customer.id, &session_id, MessagingSessionEndReason::NormalClearing, &end).await;
    }
    Ok(SimulatorToServerCommandReply { status: true, description: String::new(), message: Some(message) })
}

/// A text or email answering with an opt-out keyword ([`super::reaction::is_opt_out`]).
fn opts_out(part: &crate::wire::InboundMessageBody) -> bool {
    match &part.entry {
        Some(inbound_message_body::Entry::Text(t)) => super::reaction::is_opt_out(t),
        Some(inbound_message_body::Entry::Email(e)) => {
            super::reaction::is_opt_out(&e.subject) || super::reaction::is_opt_out(&e.body_plain)
        }
        _ => false,
    }
}

/// Marks the latest message sent to the customer on this channel number UNSUBSCRIBED.
async fn unsubscribe(hodi: &Hodi, customer_id: &str, channel: &crate::wire::MessagingChannelNumber, at: i64) {
    let outcome = async {
        let Some(last) = hodi.store.last_sent_message(customer_id, channel.channel, &channel.number).await? else {
            return Ok(None);
        };
        let reacted =
            super::reaction::react(&hodi.store, &last.id, crate::wire::MessageReaction::Unsubscribed, at).await?;
        anyhow::Ok(Some(reacted))
    }
    .await;
    if let Err(e) = outcome {
        warn!(customer_id, error = %e, "recording an opt-out reaction");
    }
}

fn ended(
    customer: &crate::wire::CustomerNumber,
    channel: &crate::wire::MessagingChannelNumber,
    session_id: &str,
    started: i64,
    reason: MessagingSessionEndReason,
) -> Vec<u8> {
    entry(AppEntry::MessagingSessionEnded(MessagingSessionEndedNotification {
        customer_number: Some(customer.clone()),
        channel_number: Some(channel.clone()),
        session_id: session_id.to_string(),
        duration: Some(prost_types::Duration { seconds: (now_ms() - started).max(0) / 1000, nanos: 0 }),
        reason: reason as i32,
    }))
}

async fn close(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    customer_id: &str,
    session_id: &str,
    reason: MessagingSessionEndReason,
    notification: &[u8],
) {
    let queued = [NewNotification { org_id, app_id, customer_id, entry: notification }];
    if let Err(e) = hodi.store.close_session(session_id, reason as i32, &queued).await {
        warn!(session_id, error = %e, "ending a messaging session");
    }
}
