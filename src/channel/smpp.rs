//! SMS over SMPP 3.4: `binds` transceiver binds to an SMSC per provider (one by default).
//!
//! A supervisor task per bind keeps it up (connect, bind_transceiver, enquire_link, reconnect with
//! doubling delays) and reads what the SMSC sends: delivery receipts and customers' messages
//! arrive as deliver_sm, are answered at once and become [`ChannelEvent`]s; the parts of a long
//! message from a customer are put back together first ([`super::sms_parts`], shared by the
//! binds, since parts may come on any). Sending takes the next bind that is up, splits a text into
//! GSM-7 or (when it has characters GSM-7 lacks) UCS-2 parts, concatenated with a UDH when it is
//! long, and submits each part on that bind; the SMSC's message ids are the parts' ids.
//!
//! The PDU codec, the session and the encodings are the `rusmpp` / `rusmppc` crates'; this module
//! only decides what to send and what the answers mean.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rusmpp::extra::concatenation::{Concatenation, Concatenator, SubmitSmMultipartExt};
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::types::COctetString;
use rusmpp::values::{DataCoding, EsmClass, GsmFeatures, InterfaceVersion, MessageType, Npi, RegisteredDelivery, Ton};
use rusmpp::{CommandStatus, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::body;
use super::events::{self, ChannelEvent, Received};
use super::sms_parts::{split_udh, Joined, Reassembly};
use super::worker::{Refusal, Transport};
use crate::config::providers::{Secret, Smpp as Settings};
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::{MessageDeliveryStatus, MessagingChannel};

/// Longest PDU we accept from the SMSC (a deliver_sm is at most a few hundred bytes).
const MAX_COMMAND_BYTES: usize = 4_096;
/// How long connecting and binding may take before it counts as a failed attempt.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a send waits for the bind to come (back) up before it is a transient failure.
const WAIT_FOR_BIND: Duration = Duration::from_secs(5);

/// Most binds one provider keeps.
const MAX_BINDS: u32 = 16;
/// How often parts that wait too long for the rest of their message are passed on.
const PARTS_SWEEP: Duration = Duration::from_secs(5);

/// One SMPP provider: its binds (each up or not) and how to use them.
pub struct Smpp {
    name: String,
    settings: Settings,
    binds: Vec<Bind>,
    /// Where the next send starts looking for a bind that is up.
    next: AtomicUsize,
    /// The concatenation reference of the next long message (the SMSC and phone tell parts of
    /// different messages apart by it).
    reference: AtomicU8,
    /// Parts of customers' long messages, waiting for the rest.
    parts: Mutex<Reassembly<DataCoding>>,
}

/// One bind: its client while it is up, and its submits out (for [`drive`]).
struct Bind {
    bound: watch::Receiver<Option<Client>>,
    busy: Arc<Busy>,
}

impl std::fmt::Debug for Smpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smpp").field("name", &self.name).field("address", &self.settings.address).finish()
    }
}

impl Smpp {
    /// Starts keeping a bind to the SMSC up. Refuses settings it can never bind with; an SMSC that
    /// cannot be reached or refuses the bind is retried (and logged) while the server runs.
    pub fn start(
        name: &str,
        settings: Settings,
        events: events::Sender,
        shutdown: CancellationToken,
    ) -> Result<Arc<Smpp>, String> {
        if settings.address.trim().is_empty() {
            return Err("address is required (host:port of the SMSC)".into());
        }
        if settings.system_id.is_empty() || settings.system_id.len() > 15 {
            return Err("system_id is required, at most 15 characters".into());
        }
        let password = settings.password()?;
        if password.expose().len() > 8 {
            return Err("an SMPP 3.4 password is at most 8 characters".into());
        }
        if settings.binds == 0 || settings.binds > MAX_BINDS {
            return Err(format!("binds must be 1 to {MAX_BINDS}, not {}", settings.binds));
        }
        let (senders, binds): (Vec<_>, Vec<_>) = (0..settings.binds)
            .map(|_| {
                let (tx, rx) = watch::channel(None);
                (tx, Bind { bound: rx, busy: Arc::default() })
            })
            .unzip();
        let smpp = Arc::new(Smpp {
            name: name.to_string(),
            settings,
            binds,
            next: AtomicUsize::new(0),
            reference: AtomicU8::new(0),
            parts: Mutex::default(),
        });
        for (index, tx) in senders.into_iter().enumerate() {
            tokio::spawn(supervise(smpp.clone(), index, password.clone(), tx, events.clone(), shutdown.clone()));
        }
        Ok(smpp)
    }

    /// The next bind that is up (round the binds), waiting up to [`WAIT_FOR_BIND`] for one to
    /// come up when none is.
    async fn client(&self) -> Option<(Client, Arc<Busy>)> {
        let n = self.binds.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let bind = &self.binds[(start + i) % n];
            let up = bind.bound.borrow().as_ref().filter(|c| c.is_active()).cloned();
            if let Some(client) = up {
                return Some((client, bind.busy.clone()));
            }
        }
        let waits = self.binds.iter().map(|bind| {
            let (mut bound, busy) = (bind.bound.clone(), bind.busy.clone());
            Box::pin(async move {
                let client = bound.wait_for(|c| c.as_ref().is_some_and(|c| c.is_active())).await.ok()?.clone()?;
                Some((client, busy))
            })
        });
        tokio::time::timeout(WAIT_FOR_BIND, futures_util::future::select_all(waits))
            .await
            .ok()
            .and_then(|(up, _, _)| up)
    }

    /// What a deliver_sm means: a receipt, a customer's message, or (a part of a long message
    /// whose other parts are still out) nothing yet.
    fn delivered(&self, d: &DeliverSm) -> Vec<ChannelEvent> {
        let bytes: &[u8] = d.short_message().as_ref();
        if matches!(d.esm_class.message_type, MessageType::ShortMessageContainsMCDeliveryReceipt) {
            return receipt(&self.name, bytes).into_iter().collect();
        }
        let udhi = matches!(d.esm_class.gsm_features, GsmFeatures::UdhiIndicator | GsmFeatures::SetUdhiAndReplyPath);
        let (place, body) = if udhi { split_udh(bytes) } else { (None, bytes) };
        let (from, to) = (d.source_addr.as_str(), d.destination_addr.as_str());
        let Some(place) = place else { return vec![self.received(from, to, d.data_coding, body)] };
        let joined = self.parts.lock().unwrap_or_else(|e| e.into_inner()).add(
            from,
            to,
            place,
            d.data_coding,
            body,
            Instant::now(),
        );
        joined.into_iter().map(|j| self.joined(j)).collect()
    }

    /// Long messages whose parts stopped coming, as far as they came.
    fn overdue(&self) -> Vec<ChannelEvent> {
        let late = self.parts.lock().unwrap_or_else(|e| e.into_inner()).expired(Instant::now());
        late.into_iter().map(|j| self.joined(j)).collect()
    }

    fn joined(&self, j: Joined<DataCoding>) -> ChannelEvent {
        if !j.complete {
            warn!(provider = %self.name, from = j.from, "a long message passed on without all its parts");
        }
        self.received(&j.from, &j.to, j.coding, &j.data)
    }

    fn received(&self, from: &str, to: &str, coding: DataCoding, body: &[u8]) -> ChannelEvent {
        ChannelEvent::Received(Received {
            provider: self.name.clone(),
            channel: MessagingChannel::Sms,
            channel_number: to.to_string(),
            customer_number: international(from),
            text: decode_text(coding, body),
            provider_message_id: None,
            email: None,
        })
    }
}

/// Keeps the bind up until shutdown.
async fn supervise(
    smpp: Arc<Smpp>,
    index: usize,
    password: Secret,
    bound: watch::Sender<Option<Client>>,
    events: events::Sender,
    shutdown: CancellationToken,
) {
    let s = &smpp.settings;
    let first = Duration::from_secs(s.reconnect_secs.max(1));
    let max = Duration::from_secs(s.reconnect_max_secs.max(s.reconnect_secs.max(1)));
    let mut delay = first;
    let busy = smpp.binds[index].busy.clone();
    let mut sweep = tokio::time::interval(PARTS_SWEEP);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = tokio::time::timeout(BIND_TIMEOUT, bind(s, &password, busy.clone())) => attempt,
        };
        match attempt {
            Ok(Ok((client, mut incoming))) => {
                info!(provider = %smpp.name, bind = index, address = %s.address, "bound to the SMSC as a transceiver");
                delay = first;
                bound.send_replace(Some(client.clone()));
                loop {
                    tokio::select! {
                        _ = sweep.tick() => {
                            for event in smpp.overdue() {
                                if events.send(event).await.is_err() {
                                    return;
                                }
                            }
                        }
                        _ = shutdown.cancelled() => {
                            bound.send_replace(None);
                            let _ = tokio::time::timeout(Duration::from_secs(2), client.unbind()).await;
                            let _ = client.close().await;
                            return;
                        }
                        event = incoming.next() => match event {
                            None => break,
                            Some(Event::Incoming(command)) => {
                                let sequence = command.sequence_number();
                                if let Some(Pdu::DeliverSm(deliver)) = command.pdu() {
                                    // Answered before it is handled: the SMSC must not resend it
                                    // while messaging works (the event is durable once stored).
                                    if let Err(e) = client.deliver_sm_resp(sequence, DeliverSmResp::default()).await {
                                        warn!(provider = %smpp.name, error = %e, "answering a deliver_sm");
                                    }
                                    for event in smpp.delivered(deliver) {
                                        if events.send(event).await.is_err() {
                                            return;
                                        }
                                    }
                                } else {
                                    debug!(provider = %smpp.name, command = ?command.id(), "ignored a command from the SMSC");
                                }
                            }
                            Some(Event::Error(e)) => warn!(provider = %smpp.name, error = %e, "SMPP link error"),
                        }
                    }
                }
                bound.send_replace(None);
                warn!(provider = %smpp.name, bind = index, address = %s.address, "the SMSC link closed; binding again");
            }
            Ok(Err(why)) => {
                warn!(provider = %smpp.name, bind = index, address = %s.address, why,
                    retry_in_ms = delay.as_millis() as u64, "cannot bind to the SMSC")
            }
            Err(_) => warn!(provider = %smpp.name, bind = index, address = %s.address,
                retry_in_ms = delay.as_millis() as u64, "cannot bind to the SMSC: no answer in time"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max);
    }
}

type Incoming = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// Runs rusmppc's connection, polling it again every millisecond while submits are out. Its poll
/// takes a few queued requests per wake-up and does not wake itself for the rest (rusmppc 0.4.0),
/// so with a window of requests queued it stalls until something else wakes it — its next
/// enquire_link, 30 s later (measured: a window of 10 or 100 ran at 35–200 submit_sm/s).
async fn drive(connection: impl std::future::Future<Output = ()>, busy: Arc<Busy>) {
    let mut connection = std::pin::pin!(connection);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if busy.out.load(Ordering::Relaxed) > 0 {
            tokio::select! {
                _ = &mut connection => return,
                _ = tick.tick() => {}
            }
        } else {
            tokio::select! {
                _ = &mut connection => return,
                _ = busy.started.notified() => {}
            }
        }
    }
}

/// Submits out on a bind, and a wake-up for [`drive`] when the first goes out.
#[derive(Debug, Default)]
struct Busy {
    out: std::sync::atomic::AtomicUsize,
    started: tokio::sync::Notify,
}

/// Counts one submit out until dropped.
struct Out<'a>(&'a Busy);

impl<'a> Out<'a> {
    fn start(busy: &'a Busy) -> Out<'a> {
        if busy.out.fetch_add(1, Ordering::Relaxed) == 0 {
            busy.started.notify_one();
        }
        Out(busy)
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.0.out.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connects and binds as a transceiver.
async fn bind(s: &Settings, password: &Secret, busy: Arc<Busy>) -> Result<(Client, Incoming), String> {
    let tcp = tokio::net::TcpStream::connect(&s.address).await.map_err(|e| format!("connecting: {e}"))?;
    // Each submit_sm is a small write answered by a small read: without this, Nagle's algorithm
    // and delayed ACKs hold a window of 10 to a few dozen messages a second.
    tcp.set_nodelay(true).map_err(|e| format!("connecting: {e}"))?;
    let (client, events, connection) = ConnectionBuilder::new()
        .max_command_length(MAX_COMMAND_BYTES)
        .enquire_link_interval(Duration::from_secs(s.enquire_link_secs.max(1)))
        .enquire_link_response_timeout(Duration::from_secs(s.response_timeout_secs.max(1)))
        .response_timeout(Duration::from_secs(s.response_timeout_secs.max(1)))
        // We bind as 3.4, which the crate (an SMPP 5 client) would otherwise refuse to send.
        .disable_interface_version_check()
        .no_spawn()
        .connected(tcp);
    tokio::spawn(drive(connection, busy));
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_str(&s.system_id).map_err(|e| format!("system_id: {e}"))?)
        .password(COctetString::from_str(password.expose()).map_err(|e| format!("password: {e}"))?)
        .system_type(COctetString::from_str(&s.system_type).map_err(|e| format!("system_type: {e}"))?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build();
    match client.bind_transceiver(bind).await {
        Ok(_) => Ok((client, Box::pin(events))),
        Err(e) => {
            let _ = client.close().await;
            Err(match e {
                rusmppc::error::Error::UnexpectedResponse { response } => {
                    format!("the SMSC refused the bind: {:?}", response.status())
                }
                other => other.to_string(),
            })
        }
    }
}

impl Transport for Smpp {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let text = body::text(body::outbound(message)?, "SMS")?;
        let address = |v: &str, what: &str| {
            COctetString::from_str(v)
                .map_err(|e| Refusal::Permanent(format!("{what} {v:?} is not an SMS address: {e}")))
        };
        let registered = if self.settings.delivery_receipts {
            RegisteredDelivery::request_all()
        } else {
            RegisteredDelivery::default()
        };
        let template = SubmitSm::builder()
            .source_addr_ton(Ton::Unknown)
            .source_addr_npi(Npi::Unknown)
            .source_addr(address(&message.channel_number, "our number")?)
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(address(message.customer_number.trim_start_matches('+'), "the customer's number")?)
            .esm_class(EsmClass::default())
            .registered_delivery(registered)
            .build();
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let parts = template
            .multipart(&text)
            .reference_u8(reference)
            .fallback(Utf16)
            .build()
            .map_err(|e| Refusal::Permanent(format!("the text cannot be sent as SMS: {e}")))?;
        let Some((client, busy)) = self.client().await else {
            return Err(Refusal::Transient("not bound to the SMSC".into()));
        };
        let count = parts.len() as i64;
        let mut accepted = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            let _out = Out::start(&busy);
            match client.submit_sm(part).await {
                Ok(resp) => accepted.push(AcceptedPart {
                    provider_message_id: resp.message_id().as_str().to_string(),
                    part: i as i64 + 1,
                    parts: count,
                }),
                Err(e) => return Err(refusal(e)),
            }
        }
        Ok(accepted)
    }
}

/// Text GSM-7 cannot carry, as UTF-16 big-endian under data coding 8 ("UCS-2"), which is how
/// handsets read it: unlike strict UCS-2 it carries emoji (surrogate pairs), and a pair is
/// never split between two parts.
#[derive(Debug)]
struct Utf16;

impl Concatenator for Utf16 {
    type Error = String;

    fn concatenate(&self, message: &str, max: usize, header: usize) -> Result<(Concatenation, DataCoding), String> {
        let units: Vec<u16> = message.encode_utf16().collect();
        if units.len() * 2 <= max {
            return Ok((Concatenation::Single(be_bytes(&units)), DataCoding::Ucs2));
        }
        let per_part = max.saturating_sub(header) / 2;
        if per_part < 2 {
            return Err("no room for text in a part".into());
        }
        let mut parts = Vec::new();
        let mut rest = units.as_slice();
        while !rest.is_empty() {
            let mut take = per_part.min(rest.len());
            // A high surrogate at the cut stays with its low half in the next part.
            if take < rest.len() && (0xD800..0xDC00).contains(&rest[take - 1]) {
                take -= 1;
            }
            parts.push(be_bytes(&rest[..take]));
            rest = &rest[take..];
        }
        Ok((Concatenation::Concatenated(parts), DataCoding::Ucs2))
    }
}

fn be_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

/// What a failed submit_sm means for the message.
fn refusal(e: rusmppc::error::Error) -> Refusal {
    use rusmppc::error::Error;
    match e {
        Error::UnexpectedResponse { response } => {
            let status = response.status();
            let why = format!("the SMSC answered {status:?}");
            match status {
                CommandStatus::EsmeRthrottled => Refusal::Throttled(why),
                CommandStatus::EsmeRmsgqful | CommandStatus::EsmeRsyserr | CommandStatus::EsmeRsubmitfail => {
                    Refusal::Transient(why)
                }
                _ => Refusal::Permanent(why),
            }
        }
        other => Refusal::Transient(other.to_string()),
    }
}

/// A delivery receipt's event, if the text is one with an outcome.
fn receipt(provider: &str, bytes: &[u8]) -> Option<ChannelEvent> {
    let text = String::from_utf8_lossy(bytes);
    let receipt = parse_receipt(&text)?;
    Some(ChannelEvent::Receipt {
        provider: provider.to_string(),
        provider_message_id: receipt.id,
        status: receipt.status,
        reason: receipt.state,
    })
}

/// A number as the customer is known by: `+` and digits when the SMSC gives bare digits.
fn international(number: &str) -> String {
    if !number.starts_with('+') && number.len() > 7 && number.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{number}")
    } else {
        number.to_string()
    }
}

/// A delivery receipt's text (SMPP 3.4 Appendix B): `id:… sub:… dlvrd:… submit date:… done
/// date:… stat:DELIVRD err:… text:…`.
#[derive(Debug, PartialEq, Eq)]
struct Receipt {
    id: String,
    state: String,
    status: MessageDeliveryStatus,
}

fn parse_receipt(text: &str) -> Option<Receipt> {
    let field = |name: &str| {
        let start = text.find(&format!("{name}:"))? + name.len() + 1;
        let rest = &text[start..];
        Some(rest.split_whitespace().next().unwrap_or_default().to_string())
    };
    let id = field("id")?;
    let state = field("stat")?.to_ascii_uppercase();
    let status = match state.as_str() {
        "DELIVRD" => MessageDeliveryStatus::Delivered,
        "EXPIRED" => MessageDeliveryStatus::Expired,
        "REJECTD" => MessageDeliveryStatus::Rejected,
        "ACCEPTD" | "ENROUTE" => return None,
        // UNDELIV, DELETED, UNKNOWN and anything else: not delivered.
        _ => MessageDeliveryStatus::Failed,
    };
    Some(Receipt { id, state, status })
}

/// A short message's text in its data coding: GSM-7 (unpacked, one septet a byte), Latin-1,
/// UCS-2; anything else is read as UTF-8, replacing what is not.
fn decode_text(coding: DataCoding, bytes: &[u8]) -> String {
    match coding {
        DataCoding::Ucs2 => {
            let units = bytes.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
        }
        DataCoding::Latin1 => bytes.iter().map(|&b| b as char).collect(),
        DataCoding::McSpecific => decode_gsm7(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// GSM-7 septets (the default alphabet and its extension table after ESC) to text. The table is
/// the inverse of `rusmpp`'s encoder, built once, so both directions share one alphabet.
fn decode_gsm7(bytes: &[u8]) -> String {
    static TABLE: OnceLock<HashMap<Vec<u8>, char>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let encoder = Gsm7BitUnpacked::new();
        let candidates = (0u32..0x400).chain([0x20AC]).filter_map(char::from_u32);
        candidates.filter_map(|c| encoder.encode_to_vec(&c.to_string()).ok().map(|code| (code, c))).collect()
    });
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let width = if bytes[i] == 0x1B && i + 1 < bytes.len() { 2 } else { 1 };
        out.push(table.get(&bytes[i..i + width]).copied().unwrap_or(char::REPLACEMENT_CHARACTER));
        i += width;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_read_the_standard_text_form() {
        let r = parse_receipt(
            "id:0A1B2C sub:001 dlvrd:001 submit date:2612061200 done date:2612061201 stat:DELIVRD err:000 text:hello",
        )
        .expect("a receipt");
        assert_eq!(
            r,
            Receipt { id: "0A1B2C".into(), state: "DELIVRD".into(), status: MessageDeliveryStatus::Delivered }
        );
        let failed = parse_receipt("id:7 sub:001 dlvrd:000 stat:UNDELIV err:001").expect("a receipt");
        assert_eq!(failed.status, MessageDeliveryStatus::Failed);
        assert_eq!(parse_receipt("id:7 stat:EXPIRED").map(|r| r.status), Some(MessageDeliveryStatus::Expired));
        assert_eq!(parse_receipt("id:7 stat:ENROUTE"), None, "an intermediate state is not an outcome");
        assert_eq!(parse_receipt("no fields here"), None);
        assert_eq!(parse_receipt("id:"), None);
    }

    #[test]
    fn gsm7_ucs2_and_latin1_decode_and_gsm7_round_trips_the_encoder() {
        let text = "Hello {world} €5 @ £3 ÄÖÑ";
        let septets = Gsm7BitUnpacked::new().encode_to_vec(text).expect("encodes");
        assert_eq!(decode_text(DataCoding::McSpecific, &septets), text);
        let ucs2: Vec<u8> = "Habari 你好 😀".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(decode_text(DataCoding::Ucs2, &ucs2), "Habari 你好 😀");
        assert_eq!(decode_text(DataCoding::Latin1, &[0x63, 0x61, 0x66, 0xE9]), "café");
        assert_eq!(decode_text(DataCoding::McSpecific, &[0x1B]), "\u{FFFD}", "a lone escape at the end");
    }

    #[test]
    fn utf16_parts_carry_emoji_and_never_split_a_pair() {
        let (single, coding) = Utf16.concatenate("Habari 😀", 140, 6).expect("encodes");
        assert_eq!(coding, DataCoding::Ucs2);
        let Concatenation::Single(bytes) = single else { panic!("one part") };
        assert_eq!(decode_text(DataCoding::Ucs2, &bytes), "Habari 😀");
        // 67 units a part (134 bytes after a 6-byte UDH): after 66 letters an emoji straddles the cut.
        let text = format!("{}😀{}", "a".repeat(66), "b".repeat(80));
        let (parts, _) = Utf16.concatenate(&text, 140, 6).expect("encodes");
        let Concatenation::Concatenated(parts) = parts else { panic!("several parts") };
        assert_eq!(parts[0].len(), 132, "the pair moved to the next part");
        let joined: Vec<u8> = parts.concat();
        assert_eq!(decode_text(DataCoding::Ucs2, &joined), text);
        assert!(parts
            .iter()
            .all(|p| decode_text(DataCoding::Ucs2, p).chars().all(|c| c != char::REPLACEMENT_CHARACTER)));
    }

    #[test]
    fn bare_digits_become_international_numbers() {
        assert_eq!(international("254700000001"), "+254700000001");
        assert_eq!(international("+254700000001"), "+254700000001");
        assert_eq!(international("SAFARICOM"), "SAFARICOM");
        assert_eq!(international("21356"), "21356");
    }
}
