//! Messages through real providers: queueing them for a channel number's provider, and what the
//! providers report back.
//!
//! A message for a number bound to a provider is stored QUEUED with its queue row (the provider's
//! worker sends it, even after a restart). Reports arrive as [`ChannelEvent`]s: accepted → SENT,
//! ended → FAILED or EXPIRED, a delivery receipt → DELIVERED / FAILED / EXPIRED / REJECTED, each
//! change a `message_status` to the sending app queued in the same transaction; a customer's
//! message → `received_message`, as from the simulator.

use std::sync::Arc;

use prost::Message;
use tracing::{debug, info, warn};

use super::outbound::{queued_row, Outbound, Sent};
use crate::channel::events::{ChannelEvent, Received, Receiver};
use crate::context::Hodi;
use crate::store::outbox::NewNotification;
use crate::store::providers::QueuedSend;
use crate::store::{new_id, now_ms};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    inbound_message_body, InboundMessageBody, MessageDeliveryStatus, MessageStatusNotification, MessagingChannelNumber,
    ReceiveMessageSimulatorCommand, ServerToAppCustomerNotification,
};

/// A `message_status` notification.
fn status_entry(message_id: &str, status: i32) -> Vec<u8> {
    ServerToAppCustomerNotification {
        entry: Some(AppEntry::MessageStatus(MessageStatusNotification { message_id: message_id.to_string(), status })),
        ..Default::default()
    }
    .encode_to_vec()
}

/// How long a message may wait for `provider` before it EXPIREs.
fn expiry_ms(hodi: &Hodi, provider: &str) -> i64 {
    let secs = hodi.config.providers.get(provider).map(|p| p.limits().expire_secs).unwrap_or(24 * 3600);
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
pub async fn queue(hodi: &Hodi, o: &Outbound, provider: &str) -> anyhow::Result<Sent> {
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

/// The bulk form of [`queue`] (send-by-tag): one transaction for all of them.
pub async fn queue_many(hodi: &Hodi, messages: &[Outbound], provider: &str) -> anyhow::Result<usize> {
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

/// Applies what providers report, until they are all gone (shutdown).
pub async fn run(hodi: Arc<Hodi>, mut reports: Receiver) {
    while let Some(event) = reports.recv().await {
        if let Err(e) = apply(&hodi, event).await {
            warn!(error = %e, "applying a provider's report");
        }
    }
}

async fn apply(hodi: &Arc<Hodi>, event: ChannelEvent) -> anyhow::Result<()> {
    match event {
        ChannelEvent::Accepted { provider, message_id, parts } => {
            let sent = MessageDeliveryStatus::Sent as i32;
            finish(hodi, &provider, &message_id, &parts, sent).await
        }
        ChannelEvent::Ended { provider, message_id, status, reason } => {
            info!(provider, message_id, status = ?status, reason, "message not sent");
            finish(hodi, &provider, &message_id, &[], status as i32).await
        }
        ChannelEvent::Receipt { provider, provider_message_id, status, reason } => {
            let outcome =
                hodi.store.provider_receipt(&provider, &provider_message_id, status as i32, status_entry).await?;
            match outcome {
                Some(o) => debug!(provider, provider_message_id, message_id = o.message_id, state = reason,
                    changed_to = ?o.changed_to, "delivery receipt"),
                None => debug!(provider, provider_message_id, "a receipt for no message we know (or too late)"),
            }
            Ok(())
        }
        ChannelEvent::Received(r) => receive(hodi, r).await,
    }
}

/// Ends a queued message (SENT with its parts, or FAILED/EXPIRED) and tells the app.
async fn finish(
    hodi: &Hodi,
    provider: &str,
    message_id: &str,
    parts: &[crate::store::providers::AcceptedPart],
    status: i32,
) -> anyhow::Result<()> {
    let Some(sender) = hodi.store.provider_queued(message_id).await? else {
        debug!(provider, message_id, "already settled");
        return Ok(());
    };
    let entry = status_entry(message_id, status);
    let note = NewNotification {
        org_id: &sender.org_id,
        app_id: &sender.app_id,
        customer_id: &sender.customer_id,
        entry: &entry,
    };
    hodi.store.provider_send_done(message_id, provider, &sender.app_id, parts, status, &[note]).await?;
    Ok(())
}

/// A customer's message through a provider, handed to the org that owns the number.
async fn receive(hodi: &Arc<Hodi>, r: Received) -> anyhow::Result<()> {
    let Some(channel) = super::channel_name(r.channel) else { return Ok(()) };
    let Some((org_id, app_id)) = hodi.store.provider_number_owner(&r.provider, channel, &r.channel_number).await?
    else {
        warn!(
            provider = r.provider,
            number = r.channel_number,
            "a message to a number no org has bound to this provider"
        );
        return Ok(());
    };
    let cmd = ReceiveMessageSimulatorCommand {
        customer_number: r.customer_number.clone(),
        channel_number: Some(MessagingChannelNumber { channel: r.channel as i32, number: r.channel_number.clone() }),
        parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Text(r.text)) }],
        ..Default::default()
    };
    let reply = super::inbound::receive(hodi, &org_id, &app_id, cmd).await?;
    if !reply.status {
        warn!(provider = r.provider, number = r.channel_number, why = reply.description, "an inbound message refused");
    }
    Ok(())
}
