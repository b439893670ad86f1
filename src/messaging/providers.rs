//! What real providers report back (a message for a number bound to a provider is queued for it by
//! [`super::outbound`]).
//!
//! Reports arrive as [`ChannelEvent`]s: accepted → SENT,
//! ended → FAILED or EXPIRED, a delivery receipt → DELIVERED / FAILED / EXPIRED / REJECTED, each
//! change a `message_status` to the sending app queued in the same transaction; a customer's
//! message → `received_message`, as from the simulator.

use std::sync::Arc;

use prost::Message;
use tracing::{debug, info, warn};

use crate::channel::events::{ChannelEvent, Received, Receiver};
use crate::context::Hodi;
use crate::store::providers::{Receipt, Settlement};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    inbound_message_body, EmailMessageBody, InboundMessageBody, MessageDeliveryStatus, MessageStatusNotification,
    MessagingChannelNumber, ReceiveMessageSimulatorCommand, ServerToAppCustomerNotification,
};

/// A `message_status` notification.
fn status_entry(message_id: &str, status: i32) -> Vec<u8> {
    ServerToAppCustomerNotification {
        entry: Some(AppEntry::MessageStatus(MessageStatusNotification { message_id: message_id.to_string(), status })),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Reports applied in one transaction at most: a provider at thousands of messages a second
/// costs one commit per batch instead of one per message.
const BATCH: usize = 512;

/// Applies what providers report, until they are all gone (shutdown). Whatever has arrived is
/// applied together (see [`apply`]).
pub async fn run(hodi: Arc<Hodi>, mut reports: Receiver) {
    let mut batch = Vec::with_capacity(BATCH);
    while reports.recv_many(&mut batch, BATCH).await > 0 {
        let events = std::mem::take(&mut batch);
        let flushes: Vec<_> = events
            .iter()
            .filter_map(|e| if let ChannelEvent::Flush(ack) = e { Some(ack.clone()) } else { None })
            .collect();
        let applied = apply(&hodi, events).await;
        if let Err(e) = &applied {
            warn!(error = %e, "applying providers' reports");
        }
        for ack in flushes {
            ack.send(applied.is_ok());
        }
    }
}

/// Applies reports: outcomes in one transaction, receipts in another, then inbound messages
/// (webhooks call it directly, to answer only once a report is stored).
pub async fn apply(hodi: &Arc<Hodi>, events: Vec<ChannelEvent>) -> anyhow::Result<()> {
    let mut settled = Vec::new();
    let mut receipts = Vec::new();
    let mut received = Vec::new();
    for event in events {
        match event {
            ChannelEvent::Accepted { provider, message_id, parts } => {
                settled.push(Settlement { message_id, provider, parts, status: MessageDeliveryStatus::Sent as i32 })
            }
            ChannelEvent::Ended { provider, message_id, status, reason } => {
                info!(provider, message_id, status = ?status, reason, "message not sent");
                settled.push(Settlement { message_id, provider, parts: Vec::new(), status: status as i32 });
            }
            ChannelEvent::Receipt { provider, provider_message_id, status, reason } => {
                debug!(provider, provider_message_id, state = reason, "delivery receipt");
                receipts.push(Receipt { provider, provider_message_id, status: status as i32 });
            }
            ChannelEvent::Received(r) => received.push(r),
            // Answered by `run`, once the batch it came in is applied.
            ChannelEvent::Flush(_) => {}
        }
    }
    if !settled.is_empty() {
        let done = hodi.store.settle_provider_sends(&settled, status_entry).await?;
        if done < settled.len() {
            debug!(skipped = settled.len() - done, "outcomes for messages already settled");
        }
    }
    if !receipts.is_empty() {
        let outcomes = hodi.store.provider_receipts(&receipts, status_entry).await?;
        for (r, o) in receipts.iter().zip(outcomes) {
            match o {
                Some(o) => debug!(provider = r.provider, provider_message_id = r.provider_message_id,
                    message_id = o.message_id, changed_to = ?o.changed_to, "receipt applied"),
                None => debug!(
                    provider = r.provider,
                    provider_message_id = r.provider_message_id,
                    "a receipt for no message we know (or too late)"
                ),
            }
        }
    }
    for r in received {
        receive(hodi, r).await?;
    }
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
        parts: vec![InboundMessageBody {
            entry: Some(match r.email {
                Some(email) => inbound_message_body::Entry::Email(EmailMessageBody {
                    subject: email.subject,
                    body_plain: r.text,
                    body_html: email.body_html,
                    cc_list: Vec::new(),
                    bcc_list: Vec::new(),
                }),
                None => inbound_message_body::Entry::Text(r.text),
            }),
        }],
        ..Default::default()
    };
    let reply = super::inbound::receive_from_provider(hodi, &org_id, &app_id, cmd, r.provider_message_id).await?;
    if !reply.status {
        warn!(provider = r.provider, number = r.channel_number, why = reply.description, "an inbound message refused");
    }
    Ok(())
}
