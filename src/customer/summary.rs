//! A customer's state as a person reads it: the numbers, tags, metadata, the latest messages in
//! words, wallets and payments. Shown by `hodi customer` and the console's customer page, built
//! from the very state GetCustomerState returns ([`super::state`]) so that both show what an app
//! would see.
//!
//! Owns the reading of that state into plain values (serialisable for `--json`); must not read the
//! store itself or decide anything about the customer.

use serde::Serialize;

use crate::convert::millis;
use crate::wire::{
    channel_message, data_map_value, inbound_message_body, outbound_message_body, payment_counter_party,
    voice_call_action, CustomerNumber, CustomerStateReplyData, InboundMessageBody, OutboundMessage,
};
use crate::wire::{label, MessageDeliveryStatus, MessagingChannel, PaymentStatus};

/// How much of a message's text a line shows.
const TEXT_CHARS: usize = 160;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub customer_id: String,
    pub numbers: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub secondary_ids: Vec<(String, String)>,
    pub metadata: Vec<(String, String)>,
    /// The latest messages, oldest first.
    pub messages: Vec<MessageLine>,
    pub wallets: Vec<WalletLine>,
    /// The latest payments, oldest first.
    pub payments: Vec<PaymentLine>,
    pub activity_sessions: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageLine {
    /// Unix milliseconds.
    pub at: i64,
    /// "in" (from the customer) or "out".
    pub direction: &'static str,
    pub channel: String,
    /// The app's number (short code, USSD code, voice number…).
    pub channel_number: String,
    pub text: String,
    /// Delivery status of an outbound message.
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WalletLine {
    pub wallet_id: String,
    pub currency: String,
    pub available: f64,
    pub actual: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PaymentLine {
    pub at: i64,
    pub transaction_id: String,
    pub from: String,
    pub to: String,
    pub currency: String,
    pub amount: f64,
    pub status: String,
}

/// Reads `state` into a [`Summary`].
pub fn summarise(state: &CustomerStateReplyData) -> Summary {
    let identity = state.identity_state.clone().unwrap_or_default();
    let pair = |i: &crate::wire::CustomerIndex| {
        let m = i.mapping.clone().unwrap_or_default();
        (m.key, m.value.unwrap_or_default())
    };
    let mut metadata: Vec<(String, String)> = identity
        .metadata
        .iter()
        .map(|(k, v)| {
            let shown = match &v.value {
                Some(data_map_value::Value::StringVal(t)) => t.clone(),
                Some(data_map_value::Value::BytesVal(b)) => format!("({} bytes)", b.len()),
                None => String::new(),
            };
            (k.clone(), shown)
        })
        .collect();
    metadata.sort();
    let numbers =
        state.activity_state.as_ref().map(|a| a.customer_numbers.iter().map(number).collect()).unwrap_or_default();
    let messages = state
        .messaging_state
        .as_ref()
        .map(|m| m.messages.iter().filter_map(|c| c.entry.as_ref()).map(message_line).collect())
        .unwrap_or_default();
    let payment = state.payment_state.clone().unwrap_or_default();
    let mut wallets: Vec<WalletLine> = payment
        .wallets
        .iter()
        .map(|(id, b)| WalletLine {
            wallet_id: id.clone(),
            currency: b.currency_code.clone(),
            available: b.available.as_ref().map_or(0.0, |c| c.amount),
            actual: b.actual.as_ref().map_or(0.0, |c| c.amount),
        })
        .collect();
    wallets.sort_by(|a, b| (&a.wallet_id, &a.currency).cmp(&(&b.wallet_id, &b.currency)));
    let payments = payment
        .transaction_log
        .iter()
        .map(|t| PaymentLine {
            at: t.created_at.as_ref().map_or(0, millis),
            transaction_id: t.transaction_id.clone(),
            from: party(t.debit_party.as_ref()),
            to: party(t.credit_party.as_ref()),
            currency: t.value.as_ref().map(|v| v.currency_code.clone()).unwrap_or_default(),
            amount: t.value.as_ref().map_or(0.0, |v| v.amount),
            status: label(PaymentStatus::try_from(t.status).ok().map(|s| s.as_str_name()), "PAYMENT_STATUS_"),
        })
        .collect();
    Summary {
        customer_id: state.customer_id.clone(),
        numbers,
        tags: identity.tags.iter().map(pair).collect(),
        secondary_ids: identity.secondary_ids.iter().map(pair).collect(),
        metadata,
        messages,
        wallets,
        payments,
        activity_sessions: state.activity_state.as_ref().map_or(0, |a| a.sessions.len()),
    }
}

fn number(n: &CustomerNumber) -> String {
    match &n.partition {
        Some(p) if !p.is_empty() => format!("{} ({p})", n.number),
        _ => n.number.clone(),
    }
}

fn channel_name(channel: i32) -> String {
    label(MessagingChannel::try_from(channel).ok().map(|c| c.as_str_name()), "MESSAGING_CHANNEL_")
}

fn message_line(entry: &channel_message::Entry) -> MessageLine {
    match entry {
        channel_message::Entry::Received(m) => MessageLine {
            at: m.created_at.as_ref().map_or(0, millis),
            direction: "in",
            channel: channel_name(m.channel_number.as_ref().map_or(0, |c| c.channel)),
            channel_number: m.channel_number.as_ref().map(|c| c.number.clone()).unwrap_or_default(),
            text: shorten(m.parts.iter().map(inbound_text).collect::<Vec<_>>().join(" ")),
            status: None,
        },
        channel_message::Entry::Sent(m) => MessageLine {
            at: m.created_at.as_ref().map_or(0, millis),
            direction: "out",
            channel: channel_name(m.channel_number.as_ref().map_or(0, |c| c.channel)),
            channel_number: m.channel_number.as_ref().map(|c| c.number.clone()).unwrap_or_default(),
            text: shorten(m.message.as_ref().map(outbound_text).unwrap_or_default()),
            status: Some(label(
                MessageDeliveryStatus::try_from(m.status).ok().map(|s| s.as_str_name()),
                "MESSAGE_DELIVERY_STATUS_",
            )),
        },
    }
}

/// What a customer sent, in words.
pub fn inbound_text(part: &InboundMessageBody) -> String {
    match &part.entry {
        Some(inbound_message_body::Entry::Text(t)) => t.clone(),
        Some(inbound_message_body::Entry::Ussd(u)) => format!("[USSD] {}", u.text.clone().unwrap_or_default()),
        Some(inbound_message_body::Entry::Voice(v)) => match &v.dtmf_digits {
            Some(d) => format!("[call] pressed {d}"),
            None => "[call]".into(),
        },
        Some(inbound_message_body::Entry::Email(e)) => format!("[email] {}", e.subject),
        Some(inbound_message_body::Entry::Media(m)) => format!("[media] {}", m.url),
        Some(inbound_message_body::Entry::Location(l)) => format!("[location] {}, {}", l.latitude, l.longitude),
        None => String::new(),
    }
}

/// What an app sent, in words: a voice plan shows what it says.
pub fn outbound_text(message: &OutboundMessage) -> String {
    match message.body.as_ref().and_then(|b| b.entry.as_ref()) {
        Some(outbound_message_body::Entry::Text(t)) => t.clone(),
        Some(outbound_message_body::Entry::Ussd(u)) => u.text.clone(),
        Some(outbound_message_body::Entry::Voice(plan)) => {
            let said: Vec<String> = plan
                .actions
                .iter()
                .filter_map(|a| match &a.entry {
                    Some(voice_call_action::Entry::Say(s)) => Some(s.text.clone()),
                    Some(voice_call_action::Entry::GetDigits(g)) => match &g.prompt {
                        Some(crate::wire::get_digits_call_action::Prompt::Say(s)) => Some(s.text.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            format!("[voice] {}", said.join(" "))
        }
        Some(outbound_message_body::Entry::Email(e)) => format!("[email] {}", e.subject),
        Some(outbound_message_body::Entry::Template(t)) => format!("[template] {}", t.id),
        Some(outbound_message_body::Entry::Media(m)) => format!("[media] {}", m.url),
        Some(outbound_message_body::Entry::Url(u)) => u.clone(),
        Some(outbound_message_body::Entry::Location(l)) => format!("[location] {}, {}", l.latitude, l.longitude),
        None => String::new(),
    }
}

fn shorten(text: String) -> String {
    if text.chars().count() <= TEXT_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(TEXT_CHARS).collect();
    cut.push('…');
    cut
}

fn party(p: Option<&crate::wire::PaymentCounterParty>) -> String {
    match p.and_then(|p| p.party.as_ref()) {
        Some(payment_counter_party::Party::Purse(x)) => format!("purse {}", x.purse_id),
        Some(payment_counter_party::Party::Wallet(x)) => format!("wallet {}", x.wallet_id),
        Some(payment_counter_party::Party::Customer(x)) => {
            format!("customer {}", x.customer_number.as_ref().map(number).unwrap_or_default())
        }
        Some(payment_counter_party::Party::Channel(x)) => {
            format!("channel {} -> {}", x.source, x.destination)
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(TEXT_CHARS + 5);
        let cut = shorten(long);
        assert_eq!(cut.chars().count(), TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(shorten("short".into()), "short");
    }
}
