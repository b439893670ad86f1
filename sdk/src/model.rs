//! Constructors for what commands take — channels, numbers, messages, voice actions, reminders,
//! tags, money and payment parties — so an app rarely builds a wire struct by hand.
//!
//! The values are the wire types themselves ([`crate::wire`]): nothing is converted twice, and
//! anything these helpers do not cover can still be built field by field.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hodi_wire as wire;
use wire::{
    outbound_message_body, payment_counter_party, voice_call_action, CustomerNumber, CustomerNumberProvider,
    MessagingChannel, MessagingChannelNumber, OutboundMessage, OutboundMessageBody, PaymentChannel,
    PaymentChannelNumber, PaymentCounterParty, VoiceCallAction,
};

/// A customer's app data: one value, text or bytes (JSON is text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppData {
    Text(String),
    Bytes(Vec<u8>),
}

impl AppData {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AppData::Text(t) => Some(t),
            AppData::Bytes(_) => None,
        }
    }

    pub(crate) fn to_wire(&self) -> wire::DataMapValue {
        wire::DataMapValue {
            value: Some(match self {
                AppData::Text(t) => wire::data_map_value::Value::StringVal(t.clone()),
                AppData::Bytes(b) => wire::data_map_value::Value::BytesVal(b.clone()),
            }),
        }
    }

    pub(crate) fn from_wire(value: Option<wire::DataMapValue>) -> Option<AppData> {
        match value?.value? {
            wire::data_map_value::Value::StringVal(s) => Some(AppData::Text(s)),
            wire::data_map_value::Value::BytesVal(b) => Some(AppData::Bytes(b)),
        }
    }
}

impl From<&str> for AppData {
    fn from(s: &str) -> Self {
        AppData::Text(s.to_string())
    }
}

impl From<String> for AppData {
    fn from(s: String) -> Self {
        AppData::Text(s)
    }
}

/// A phone number on the cellular network.
pub fn cellular(number: impl Into<String>) -> CustomerNumber {
    customer_number(CustomerNumberProvider::Cellular, number)
}

pub fn customer_number(provider: CustomerNumberProvider, number: impl Into<String>) -> CustomerNumber {
    CustomerNumber { provider: provider as i32, number: number.into(), partition: None }
}

fn channel(channel: MessagingChannel, number: impl Into<String>) -> MessagingChannelNumber {
    MessagingChannelNumber { channel: channel as i32, number: number.into() }
}

/// Messaging channel numbers (as provisioned on the server).
pub mod channel {
    use super::*;
    pub fn sms(number: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Sms, number)
    }
    pub fn voice(number: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Voice, number)
    }
    pub fn ussd(code: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Ussd, code)
    }
    pub fn whatsapp(number: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Whatsapp, number)
    }
    pub fn telegram(name: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Telegram, name)
    }
    pub fn messenger(page: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::FbMessenger, page)
    }
    pub fn email(address: impl Into<String>) -> MessagingChannelNumber {
        channel(MessagingChannel::Email, address)
    }
    /// A mobile-money payment channel (paybill or till number).
    pub fn cellular_payments(number: impl Into<String>) -> PaymentChannelNumber {
        PaymentChannelNumber { channel: PaymentChannel::Cellular as i32, number: number.into() }
    }
}

fn with_body(entry: outbound_message_body::Entry) -> OutboundMessage {
    OutboundMessage { body: Some(OutboundMessageBody { entry: Some(entry) }), ..Default::default() }
}

/// Outbound messages.
pub mod message {
    use super::*;
    /// Plain text (SMS, chat apps).
    pub fn text(text: impl Into<String>) -> OutboundMessage {
        with_body(outbound_message_body::Entry::Text(text.into()))
    }
    /// A USSD screen; `terminal` ends the session.
    pub fn ussd(text: impl Into<String>, terminal: bool) -> OutboundMessage {
        with_body(outbound_message_body::Entry::Ussd(wire::UssdMenuMessageBody {
            text: text.into(),
            is_terminal: terminal,
        }))
    }
    /// A voice dialplan: the actions run in order on the call.
    pub fn voice(actions: Vec<VoiceCallAction>) -> OutboundMessage {
        with_body(outbound_message_body::Entry::Voice(wire::VoiceCallDialplanMessageBody { actions }))
    }
    /// An email.
    pub fn email(subject: impl Into<String>, body: impl Into<String>) -> OutboundMessage {
        with_body(outbound_message_body::Entry::Email(wire::EmailMessageBody {
            subject: subject.into(),
            body_plain: body.into(),
            ..Default::default()
        }))
    }
}

/// Voice actions for [`message::voice`].
pub mod voice {
    use super::*;
    fn action(entry: voice_call_action::Entry) -> VoiceCallAction {
        VoiceCallAction { entry: Some(entry) }
    }
    fn say_body(text: impl Into<String>) -> wire::SayCallAction {
        wire::SayCallAction { text: text.into(), voice: wire::TextToSpeechVoice::Female as i32, play_beep: false }
    }
    pub fn say(text: impl Into<String>) -> VoiceCallAction {
        action(voice_call_action::Entry::Say(say_body(text)))
    }
    pub fn play(url: impl Into<String>) -> VoiceCallAction {
        action(voice_call_action::Entry::Play(wire::PlayCallAction { url: url.into() }))
    }
    /// Says `prompt`, then collects up to `num_digits` keys (or until `#`) within `timeout`.
    pub fn get_digits(prompt: impl Into<String>, num_digits: i32, timeout: Duration) -> VoiceCallAction {
        action(voice_call_action::Entry::GetDigits(wire::GetDigitsCallAction {
            timeout: Some(duration(timeout)),
            finish_on_key: Some("#".into()),
            num_digits: Some(num_digits),
            prompt: Some(wire::get_digits_call_action::Prompt::Say(say_body(prompt))),
        }))
    }
    pub fn reject() -> VoiceCallAction {
        action(voice_call_action::Entry::Reject(wire::RejectCallAction {}))
    }
}

pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// Milliseconds since the epoch of a wire timestamp.
pub fn millis(t: &prost_types::Timestamp) -> i64 {
    t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000))
}

/// A reminder: `key` identifies it per customer; a new one with the same key replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub key: String,
    pub remind_at: SystemTime,
    /// Repeats every `interval` after the first time.
    pub interval: Option<Duration>,
    pub payload: Option<String>,
}

impl Reminder {
    /// A one-off reminder `after` from now.
    pub fn after(key: impl Into<String>, after: Duration, payload: impl Into<String>) -> Reminder {
        Reminder {
            key: key.into(),
            remind_at: SystemTime::now() + after,
            interval: None,
            payload: Some(payload.into()),
        }
    }

    pub(crate) fn to_wire(&self) -> wire::CustomerReminder {
        wire::CustomerReminder {
            key: self.key.clone(),
            remind_at: Some(timestamp(self.remind_at)),
            interval: self.interval.map(duration),
            payload: self.payload.clone(),
        }
    }
}

/// A tag or secondary id: `key` → `value`, optionally expiring.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
    pub expires_at: Option<SystemTime>,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag { key: key.into(), value: value.into(), expires_at: None }
    }

    pub(crate) fn mapping(&self) -> wire::IndexMapping {
        wire::IndexMapping { key: self.key.clone(), value: Some(self.value.clone()) }
    }

    pub(crate) fn to_wire(&self) -> wire::CustomerIndex {
        wire::CustomerIndex { mapping: Some(self.mapping()), expires_at: self.expires_at.map(timestamp) }
    }
}

/// An amount in a currency (ISO 4217 code), e.g. `cash("KES", 150.0)`.
pub fn cash(currency: impl Into<String>, amount: f64) -> wire::Cash {
    wire::Cash { currency_code: currency.into(), amount }
}

/// Payment parties for [`crate::Elarian::initiate_payment`].
pub mod party {
    use super::*;
    fn party(p: payment_counter_party::Party) -> PaymentCounterParty {
        PaymentCounterParty { party: Some(p) }
    }
    pub fn purse(purse_id: impl Into<String>) -> PaymentCounterParty {
        party(payment_counter_party::Party::Purse(wire::PaymentPurseCounterParty { purse_id: purse_id.into() }))
    }
    pub fn wallet(customer_id: impl Into<String>, wallet_id: impl Into<String>) -> PaymentCounterParty {
        party(payment_counter_party::Party::Wallet(wire::PaymentWalletCounterParty {
            customer_id: customer_id.into(),
            wallet_id: wallet_id.into(),
        }))
    }
    /// A customer's mobile-money account, reached through a payment channel.
    pub fn customer(number: CustomerNumber, channel: PaymentChannelNumber) -> PaymentCounterParty {
        party(payment_counter_party::Party::Customer(wire::PaymentCustomerCounterParty {
            customer_number: Some(number),
            channel_number: Some(channel),
        }))
    }
}

/// The enum's protobuf name without its type prefix: `PAYMENT_STATUS_SUCCESS` → `SUCCESS`.
pub(crate) fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_string()
}
