//! Outbound messages: SendMessage and replies, to the customer's side.
//!
//! A channel number bound to a provider sends through it: the message is stored QUEUED with its
//! row in the provider's durable queue, and the provider's worker takes it from there (what it
//! reports comes back through [`super::providers`]). Otherwise the customer's side is every
//! simulator socket of the org: a message is stored QUEUED; handed to at least one simulator socket it is SENT; acknowledged by one it is
//! DELIVERED; refused by all it is FAILED. Each change after the reply is a `message_status`
//! notification to the sending app. Consent BLOCK on the channel stops it (NO_CONSENT); an
//! unprovisioned channel number is INVALID_CHANNEL_NUMBER; a message without a body, or a voice
//! message without actions, is INVALID_REQUEST. A voice message starts a call: SESSION_INITIATED
//! and a `make_voice_call` to the simulator.

use std::sync::Arc;

use prost::Message;
use tracing::{debug, warn};

use super::session_window_ms;
use crate::config::providers::Limits;
use crate::context::Hodi;
use crate::convert::timestamp;
use crate::convert::wire_number;
use crate::store::customers::StoredNumber;
use crate::store::messaging::{MessageRow, SessionRow};
use crate::store::outbox::NewNotification;
use crate::store::providers::QueuedSend;
use crate::store::{new_id, now_ms};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::server_to_simulator_notification::Entry as SimEntry;
use crate::wire::{
    channel_message, outbound_message_body, ChannelMessage, ChannelNumberProvider, CustomerEventDirection,
    MakeVoiceCallSimulatorNotification, MessageDeliveryStatus, MessageStatusNotification, MessagingChannel,
    MessagingChannelNumber, OutboundMessage, SendMessageSimulatorNotification, SentMessage,
    ServerToAppCustomerNotification, ServerToSimulatorNotification,
};

/// The outcome a SendMessageReply reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub status: MessageDeliveryStatus,
    pub description: String,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
}

impl Sent {
    fn refused(status: MessageDeliveryStatus, description: impl Into<String>) -> Self {
        Sent { status, description: description.into(), message_id: None, session_id: None }
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub org_id: String,
    pub app_id: String,
    pub customer_id: String,
    pub number: StoredNumber,
    pub channel_number: MessagingChannelNumber,
    pub message: OutboundMessage,
    pub session_id: Option<String>,
    pub in_reply_to: Option<String>,
}

fn sent_body(
    o: &Outbound,
    message_id: &str,
    status: MessageDeliveryStatus,
    session_id: Option<String>,
    at: i64,
) -> Vec<u8> {
    ChannelMessage {
        entry: Some(channel_message::Entry::Sent(SentMessage {
            customer_number: Some(wire_number(&o.number)),
            channel_number: Some(o.channel_number.clone()),
            message_id: message_id.to_string(),
            created_at: Some(timestamp(at)),
            session_id,
            in_reply_to: o.in_reply_to.clone(),
            provider: ChannelNumberProvider::At as i32,
            app_id: Some(o.app_id.clone()),
            updated_at: Some(timestamp(at)),
            status: status as i32,
            reactions: Vec::new(),
            message: Some(o.message.clone()),
            cost: None,
            provider_message_id: None,
        })),
    }
    .encode_to_vec()
}

fn row(o: &Outbound, id: &str, status: MessageDeliveryStatus, session_id: Option<String>, at: i64) -> MessageRow {
    MessageRow {
        id: id.to_string(),
        org_id: o.org_id.clone(),
        customer_id: o.customer_id.clone(),
        direction: CustomerEventDirection::Outbound as i32,
        channel: o.channel_number.channel,
        channel_number: o.channel_number.number.clone(),
        session_id: session_id.clone(),
        status: status as i32,
        provider_message_id: None,
        body: sent_body(o, id, status, session_id, at),
        created_at: at,
    }
}

/// A message stored QUEUED for a provider.
pub(super) fn queued_row(o: &Outbound, id: &str, at: i64) -> MessageRow {
    row(o, id, MessageDeliveryStatus::Queued, o.session_id.clone(), at)
}

/// The simulator's `send_message` for message `id`.
fn to_phone(o: &Outbound, id: &str) -> SimEntry {
    SimEntry::SendMessage(SendMessageSimulatorNotification {
        org_id: o.org_id.clone(),
        customer_id: o.customer_id.clone(),
        message_id: id.to_string(),
        customer_number: Some(wire_number(&o.number)),
        channel_number: Some(o.channel_number.clone()),
        message: Some(o.message.clone()),
    })
}

/// Records a reply given inside a live USSD or voice session; the caller returns it to the
/// customer directly. Returns its message id.
pub async fn record_live_reply(hodi: &Hodi, o: &Outbound) -> anyhow::Result<String> {
    let id = new_id("msg_");
    hodi.store.insert_message(&row(o, &id, MessageDeliveryStatus::Sent, o.session_id.clone(), now_ms())).await?;
    Ok(id)
}

/// SendMessage: validates, stores and hands the message to the customer's side.
pub async fn send(hodi: &Arc<Hodi>, o: Outbound) -> anyhow::Result<Sent> {
    let channel = MessagingChannel::try_from(o.channel_number.channel).unwrap_or(MessagingChannel::Unspecified);
    let provider = match super::channel_route(&hodi.store, &o.org_id, &o.channel_number).await? {
        Ok((_, provider)) => provider,
        Err(why) => return Ok(Sent::refused(MessageDeliveryStatus::InvalidChannelNumber, why)),
    };
    let body = o.message.body.as_ref().and_then(|b| b.entry.as_ref());
    let is_voice = channel == MessagingChannel::Voice;
    match body {
        None => return Ok(Sent::refused(MessageDeliveryStatus::InvalidRequest, "message has no body")),
        Some(outbound_message_body::Entry::Voice(v)) if is_voice && v.actions.is_empty() => {
            return Ok(Sent::refused(
                MessageDeliveryStatus::InvalidRequest,
                "a voice message needs at least one action",
            ))
        }
        Some(outbound_message_body::Entry::Voice(_)) if is_voice => {}
        Some(_) if is_voice => {
            return Ok(Sent::refused(MessageDeliveryStatus::InvalidRequest, "a voice message carries voice actions"))
        }
        Some(_) => {}
    }
    let now = now_ms();
    let id = new_id("msg_");
    if hodi.store.consent_blocked(&o.customer_id, o.channel_number.channel, &o.channel_number.number).await? {
        hodi.store.insert_message(&row(&o, &id, MessageDeliveryStatus::NoConsent, None, now)).await?;
        return Ok(Sent {
            status: MessageDeliveryStatus::NoConsent,
            description: "the customer blocked messages from this channel number".into(),
            message_id: Some(id),
            session_id: None,
        });
    }
    // A number bound to a provider sends through it (voice goes through the SIP trunk instead).
    if let (false, Some(provider)) = (is_voice, provider) {
        return queue_for_provider(hodi, &o, &provider).await;
    }
    // A voice message is a real SIP call when the voice executor has a trunk; else the simulator's.
    let via_sip = is_voice && hodi.calls.is_some();
    let simulators = !via_sip && crate::notify::simulators_anywhere(hodi, &o.org_id);
    let (status, session_id) = match (is_voice, via_sip || simulators) {
        (_, false) => (MessageDeliveryStatus::Queued, o.session_id.clone()),
        (true, true) => (MessageDeliveryStatus::SessionInitiated, Some(new_id("ses_"))),
        (false, true) => (MessageDeliveryStatus::Sent, o.session_id.clone()),
    };
    if let (true, Some(session)) = (is_voice && status == MessageDeliveryStatus::SessionInitiated, &session_id) {
        let mut conn = hodi.store.pool().acquire().await?;
        crate::store::messaging::insert_session(
            &mut conn,
            &SessionRow {
                id: session.clone(),
                org_id: o.org_id.clone(),
                customer_id: o.customer_id.clone(),
                channel: o.channel_number.channel,
                channel_number: o.channel_number.number.clone(),
                provider: o.number.provider,
                number: o.number.number.clone(),
                partition: o.number.partition.clone(),
                app_id: o.app_id.clone(),
                started_at: now,
                expires_at: now + session_window_ms(hodi, channel),
                ended_at: None,
                end_reason: None,
            },
        )
        .await?;
    }
    hodi.store.insert_message(&row(&o, &id, status, session_id.clone(), now)).await?;
    let description = match status {
        MessageDeliveryStatus::Queued => "queued: no provider (simulator socket) is connected for this org".to_string(),
        MessageDeliveryStatus::SessionInitiated => "call started".to_string(),
        _ => "sent".to_string(),
    };
    if let (Some(calls), Some(session), Some(outbound_message_body::Entry::Voice(plan))) =
        (hodi.calls.as_ref().filter(|_| via_sip), &session_id, o.message.body.as_ref().and_then(|b| b.entry.as_ref()))
    {
        calls.place(crate::channel::CallRequest {
            org_id: o.org_id.clone(),
            app_id: o.app_id.clone(),
            customer: o.number.number.clone(),
            number: o.channel_number.number.clone(),
            session_id: session.clone(),
            actions: plan.actions.clone(),
        });
    }
    if simulators {
        let notification = ServerToSimulatorNotification {
            entry: Some(if is_voice {
                SimEntry::MakeVoiceCall(MakeVoiceCallSimulatorNotification {
                    org_id: o.org_id.clone(),
                    customer_id: o.customer_id.clone(),
                    session_id: session_id.clone().unwrap_or_default(),
                    customer_number: Some(wire_number(&o.number)),
                    channel_number: Some(o.channel_number.clone()),
                })
            } else {
                to_phone(&o, &id)
            }),
        };
        let hodi = hodi.clone();
        let id = id.clone();
        tokio::spawn(async move { hand_over(&hodi, &o, &id, notification, is_voice).await });
    }
    Ok(Sent { status, description, message_id: Some(id), session_id })
}

/// Delivers to every simulator socket of the org; records DELIVERED (any acknowledged) or FAILED.
async fn hand_over(hodi: &Hodi, o: &Outbound, id: &str, notification: ServerToSimulatorNotification, is_voice: bool) {
    let acknowledged = crate::notify::offer_to_simulators(hodi, &o.org_id, &notification).await;
    // A voice call stays SESSION_INITIATED: its progress comes back as voice input from the simulator.
    if is_voice && acknowledged {
        return;
    }
    let status = if acknowledged { MessageDeliveryStatus::Delivered } else { MessageDeliveryStatus::Failed };
    if let Err(e) = set_status(hodi, &o.org_id, &o.app_id, &[(id.to_string(), o.customer_id.clone())], status).await {
        warn!(message_id = id, error = %e, "recording a delivery status");
    }
}

/// Moves sent messages to `status` and tells the sending app, one `message_status` each.
async fn set_status(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    sent: &[(String, String)],
    status: MessageDeliveryStatus,
) -> anyhow::Result<()> {
    let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    hodi.store.set_messages_status(&ids, status as i32).await?;
    let entries: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            ServerToAppCustomerNotification {
                entry: Some(AppEntry::MessageStatus(MessageStatusNotification {
                    message_id: id.clone(),
                    status: status as i32,
                })),
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    let items: Vec<NewNotification<'_>> = sent
        .iter()
        .zip(&entries)
        .map(|((_, customer_id), entry)| NewNotification { org_id, app_id, customer_id, entry })
        .collect();
    hodi.store.queue_notifications(&items).await?;
    Ok(())
}

/// Sends the outbound message an app put in its answer to a notification: on the channel the
/// notification came from, else on the customer's latest inbound channel.
pub async fn reply(hodi: &Arc<Hodi>, c: crate::store::outbox::Completion) {
    let Some(message) = c.message else { return };
    let outcome: anyhow::Result<Sent> = async {
        let (channel_number, number) = match c.reply_to {
            Some((channel, number)) => (channel, crate::convert::stored_number(&number).map_err(anyhow::Error::msg)?),
            None => {
                let (channel, number) = hodi
                    .store
                    .last_inbound_channel(&c.customer_id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the customer has never written in; no channel to reply on"))?;
                let numbers = hodi.store.customer_numbers(&c.customer_id).await?;
                let stored = numbers.into_iter().next().ok_or_else(|| anyhow::anyhow!("the customer has no number"))?;
                (MessagingChannelNumber { channel, number }, stored)
            }
        };
        send(
            hodi,
            Outbound {
                org_id: c.org_id.clone(),
                app_id: c.app_id.clone(),
                customer_id: c.customer_id.clone(),
                number,
                channel_number,
                message,
                session_id: None,
                in_reply_to: None,
            },
        )
        .await
    }
    .await;
    match outcome {
        Ok(sent) => debug!(notification_id = %c.notification_id, status = ?sent.status, "reply message sent"),
        Err(e) => warn!(notification_id = %c.notification_id, error = %e, "reply message not sent"),
    }
}

/// SendMessageTag's bulk path: one message to many customers on one provisioned channel number.
/// Per call: one consent query, multi-row inserts, hand-over to the simulators with up to
/// [`BULK_IN_FLIGHT`] requests at once, and multi-row status updates. Returns how many were
/// handed over.
pub async fn send_many(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    channel_number: &MessagingChannelNumber,
    message: &OutboundMessage,
    recipients: Vec<(String, StoredNumber)>,
) -> anyhow::Result<usize> {
    use futures_util::StreamExt;
    let ids: Vec<String> = recipients.iter().map(|(c, _)| c.clone()).collect();
    let blocked: std::collections::HashSet<String> =
        hodi.store.blocked_among(&ids, channel_number.channel, &channel_number.number).await?.into_iter().collect();
    let channel = MessagingChannel::try_from(channel_number.channel).unwrap_or(MessagingChannel::Unspecified);
    let provider = match super::channel_name(channel) {
        Some(name) => hodi.store.channel_binding(org_id, name, &channel_number.number).await?.flatten(),
        None => None,
    };
    if let Some(provider) = provider {
        let messages: Vec<Outbound> = recipients
            .into_iter()
            .filter(|(customer_id, _)| !blocked.contains(customer_id))
            .map(|(customer_id, number)| Outbound {
                org_id: org_id.to_string(),
                app_id: app_id.to_string(),
                customer_id,
                number,
                channel_number: channel_number.clone(),
                message: message.clone(),
                session_id: None,
                in_reply_to: None,
            })
            .collect();
        return queue_many_for_provider(hodi, &messages, &provider).await;
    }
    // Simulator sockets looked up once for the whole page; with several nodes, those on other
    // nodes are offered each message too (through the relay).
    let simulators = hodi.simulators.all_in_org(org_id);
    let elsewhere = hodi.relay.as_ref().is_some_and(|r| !r.simulator_nodes(org_id).is_empty());
    let now = now_ms();
    let mut rows = Vec::with_capacity(recipients.len());
    let mut to_send = Vec::with_capacity(recipients.len());
    for (customer_id, number) in recipients {
        let o = Outbound {
            org_id: org_id.to_string(),
            app_id: app_id.to_string(),
            customer_id: customer_id.clone(),
            number,
            channel_number: channel_number.clone(),
            message: message.clone(),
            session_id: None,
            in_reply_to: None,
        };
        let status = match (blocked.contains(&customer_id), simulators.is_empty() && !elsewhere) {
            (true, _) => MessageDeliveryStatus::NoConsent,
            (false, true) => MessageDeliveryStatus::Queued,
            (false, false) => MessageDeliveryStatus::Sent,
        };
        let id = new_id("msg_");
        rows.push(row(&o, &id, status, None, now));
        if status == MessageDeliveryStatus::Sent {
            to_send.push((id, o));
        }
    }
    hodi.store.insert_messages(&rows).await?;
    let results: Vec<(String, String, bool)> = futures_util::stream::iter(to_send)
        .map(|(id, o)| {
            let sockets = simulators.clone();
            async move {
                let notification = ServerToSimulatorNotification { entry: Some(to_phone(&o, &id)) };
                let acknowledged = if elsewhere {
                    crate::notify::offer_to_simulators(hodi, &o.org_id, &notification).await
                } else {
                    crate::notify::offer_to(hodi, &sockets, &notification).await
                };
                (id, o.customer_id, acknowledged)
            }
        })
        .buffer_unordered(BULK_IN_FLIGHT)
        .collect()
        .await;
    let (delivered, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, _, ok)| *ok);
    let pairs = |v: Vec<(String, String, bool)>| v.into_iter().map(|(id, c, _)| (id, c)).collect::<Vec<_>>();
    let handed = delivered.len();
    if !delivered.is_empty() {
        set_status(hodi, org_id, app_id, &pairs(delivered), MessageDeliveryStatus::Delivered).await?;
    }
    if !failed.is_empty() {
        set_status(hodi, org_id, app_id, &pairs(failed), MessageDeliveryStatus::Failed).await?;
    }
    Ok(handed)
}

/// Hand-overs of one bulk send awaiting acknowledgement at once.
pub const BULK_IN_FLIGHT: usize = 256;

/// How long a message may wait for `provider` before it EXPIREs.
fn expiry_ms(hodi: &Hodi, provider: &str) -> i64 {
    let secs = hodi.config.providers.get(provider).map_or(Limits::default().expire_secs, |p| p.limits().expire_secs);
    (secs as i64).saturating_mul(1000)
}

fn queued_send(hodi: &Hodi, o: &Outbound, id: &str, provider: &str, now: i64) -> QueuedSend {
    QueuedSend {
        message_id: id.to_string(),
        provider: provider.to_string(),
        org_id: o.org_id.clone(),
        app_id: o.app_id.clone(),
        customer_id: o.customer_id.clone(),
        channel: o.channel_number.channel,
        channel_number: o.channel_number.number.clone(),
        customer_number: o.number.number.clone(),
        message: o.message.encode_to_vec(),
        attempts: 0,
        expires_at: now.saturating_add(expiry_ms(hodi, provider)),
    }
}

/// Stores `o` QUEUED for `provider` and wakes its worker.
pub async fn queue_for_provider(hodi: &Hodi, o: &Outbound, provider: &str) -> anyhow::Result<Sent> {
    let now = now_ms();
    let id = new_id("msg_");
    hodi.store.queue_for_provider(&queued_row(o, &id, now), &queued_send(hodi, o, &id, provider, now)).await?;
    hodi.providers.wake(provider);
    let description = match hodi.providers.broken(provider) {
        None => format!("queued for provider {provider}"),
        Some(_) => format!("queued for provider {provider}, which is not running (see the server's log)"),
    };
    Ok(Sent {
        status: MessageDeliveryStatus::Queued,
        description,
        message_id: Some(id),
        session_id: o.session_id.clone(),
    })
}

/// The bulk form of [`queue_for_provider`] (send-by-tag): one transaction for all of them.
pub async fn queue_many_for_provider(hodi: &Hodi, messages: &[Outbound], provider: &str) -> anyhow::Result<usize> {
    let now = now_ms();
    let rows: Vec<_> = messages
        .iter()
        .map(|o| {
            let id = new_id("msg_");
            (queued_row(o, &id, now), queued_send(hodi, o, &id, provider, now))
        })
        .collect();
    hodi.store.queue_many_for_provider(&rows).await?;
    hodi.providers.wake(provider);
    Ok(rows.len())
}
