//! Every kind of write command, 64 in flight at once over several sockets, on customers they
//! share: none may fail. A deferred SQLite transaction that reads and then writes once failed
//! with "database is locked" when another writer got in between (updateCustomerSecondaryId: 560
//! of 1,000 failed at 64 in flight).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::inproc::{connect, dev_meta, start};
use futures_util::stream::{self, StreamExt};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester};
use prost::Message;

const IN_FLIGHT: usize = 64;
const PER_KIND: usize = 320;
/// Few customers, so that concurrent commands touch the same rows.
const CUSTOMERS: usize = 16;

fn number(i: usize) -> CustomerNumber {
    CustomerNumber {
        number: format!("+2547009{:05}", i % CUSTOMERS),
        provider: CustomerNumberProvider::Cellular as i32,
        partition: None,
    }
}

fn index(key: &str, value: String) -> CustomerIndex {
    CustomerIndex { mapping: Some(IndexMapping { key: key.into(), value: Some(value) }), expires_at: None }
}

fn text(value: &str) -> DataMapValue {
    DataMapValue { value: Some(data_map_value::Value::StringVal(value.into())) }
}

fn sms() -> MessagingChannelNumber {
    MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "21356".into() }
}

fn in_a_day() -> Option<prost_types::Timestamp> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    Some(prost_types::Timestamp { seconds: now + 86_400, nanos: 0 })
}

/// The `i`-th command of each write kind.
fn commands(i: usize) -> Vec<(&'static str, Cmd)> {
    use update_customer_tag_command::Customer as Tag;
    let n = number(i);
    vec![
        ("CreateCustomer", Cmd::CreateCustomer(CreateCustomerCommand { customer_number: Some(number(i + 7)) })),
        (
            "UpdateCustomerTag",
            Cmd::UpdateCustomerTag(UpdateCustomerTagCommand {
                customer: Some(Tag::CustomerNumber(n.clone())),
                updates: vec![index("tier", format!("t{}", i % 3)), index(&format!("k{}", i % 5), "v".into())],
            }),
        ),
        (
            "DeleteCustomerTag",
            Cmd::DeleteCustomerTag(DeleteCustomerTagCommand {
                customer: Some(delete_customer_tag_command::Customer::CustomerNumber(n.clone())),
                deletions: vec![format!("k{}", (i + 1) % 5)],
            }),
        ),
        (
            "UpdateCustomerSecondaryId",
            Cmd::UpdateCustomerSecondaryId(UpdateCustomerSecondaryIdCommand {
                customer: Some(update_customer_secondary_id_command::Customer::CustomerNumber(n.clone())),
                updates: vec![index("account", format!("acct-{}", i % CUSTOMERS))],
            }),
        ),
        (
            "DeleteCustomerSecondaryId",
            Cmd::DeleteCustomerSecondaryId(DeleteCustomerSecondaryIdCommand {
                customer: Some(delete_customer_secondary_id_command::Customer::CustomerNumber(n.clone())),
                deletions: vec![IndexMapping { key: "other".into(), value: Some(format!("o-{i}")) }],
            }),
        ),
        (
            "UpdateCustomerMetadata",
            Cmd::UpdateCustomerMetadata(UpdateCustomerMetadataCommand {
                customer: Some(update_customer_metadata_command::Customer::CustomerNumber(n.clone())),
                updates: HashMap::from([("name".to_string(), text(&format!("n{i}")))]),
            }),
        ),
        (
            "DeleteCustomerMetadata",
            Cmd::DeleteCustomerMetadata(DeleteCustomerMetadataCommand {
                customer: Some(delete_customer_metadata_command::Customer::CustomerNumber(n.clone())),
                deletions: vec!["gone".into()],
            }),
        ),
        (
            "UpdateCustomerAppData",
            Cmd::UpdateCustomerAppData(UpdateCustomerAppDataCommand {
                customer: Some(update_customer_app_data_command::Customer::CustomerNumber(n.clone())),
                update: Some(text(&format!("state {i}"))),
            }),
        ),
        (
            "DeleteCustomerAppData",
            Cmd::DeleteCustomerAppData(DeleteCustomerAppDataCommand {
                customer: Some(delete_customer_app_data_command::Customer::CustomerNumber(number(i + 3))),
            }),
        ),
        (
            "AddCustomerReminder",
            Cmd::AddCustomerReminder(AddCustomerReminderCommand {
                customer: Some(add_customer_reminder_command::Customer::CustomerNumber(n.clone())),
                reminder: Some(CustomerReminder {
                    key: format!("r{}", i % 4),
                    remind_at: in_a_day(),
                    interval: None,
                    payload: Some("p".into()),
                }),
            }),
        ),
        (
            "CancelCustomerReminder",
            Cmd::CancelCustomerReminder(CancelCustomerReminderCommand {
                customer: Some(cancel_customer_reminder_command::Customer::CustomerNumber(n.clone())),
                key: format!("r{}", (i + 2) % 4),
            }),
        ),
        (
            "CustomerActivity",
            Cmd::CustomerActivity(CustomerActivityCommand {
                customer_number: Some(n.clone()),
                source: "web".into(),
                session_id: format!("s{}", i % 8),
                key: "visit".into(),
                properties: HashMap::from([("page".to_string(), format!("/p{i}"))]),
            }),
        ),
        (
            "UpdateMessagingConsent",
            Cmd::UpdateMessagingConsent(UpdateMessagingConsentCommand {
                customer_number: Some(number(i + 5)),
                channel_number: Some(sms()),
                update: if i.is_multiple_of(2) { MessagingConsentUpdate::Allow } else { MessagingConsentUpdate::Block }
                    as i32,
            }),
        ),
        (
            "SendMessage",
            Cmd::SendMessage(SendMessageCommand {
                customer_number: Some(n.clone()),
                channel_number: Some(sms()),
                message: Some(OutboundMessage {
                    body: Some(OutboundMessageBody {
                        entry: Some(outbound_message_body::Entry::Text(format!("hello {i}"))),
                    }),
                    ..Default::default()
                }),
            }),
        ),
        (
            "ReplayReceivedMessage",
            Cmd::ReplayReceivedMessage(ReplayReceivedMessageCommand {
                provider_message_id: format!("prov-{}", i % 100),
                received_at: Some(prost_types::Timestamp { seconds: 1_600_000_000 + i as i64, nanos: 0 }),
                customer_number: Some(n),
                channel_number: Some(sms()),
                parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Text("old".into())) }],
                ..Default::default()
            }),
        ),
    ]
}

/// Why a reply is a failure, if it is one: an RSocket error, or a reply whose status says so.
fn failure(reply: &Reply) -> Option<String> {
    // Refusals the race makes legitimately (cancelling a reminder another command has not added
    // yet, sending to a customer another command just blocked) are answers, not failures.
    let failed = match reply {
        Reply::UpdateCustomerState(r) => !r.status,
        Reply::UpdateCustomerAppData(r) => !r.status && !r.description.starts_with("no reminder with key"),
        Reply::CustomerActivity(r) => !r.status,
        Reply::UpdateMessagingConsent(r) => r.status != MessagingConsentUpdateStatus::Completed as i32,
        Reply::SendMessage(r) => {
            ![MessageDeliveryStatus::Sent, MessageDeliveryStatus::Queued, MessageDeliveryStatus::NoConsent]
                .map(|s| s as i32)
                .contains(&r.status)
        }
        _ => false,
    };
    failed.then(|| format!("{reply:?}"))
}

async fn send(client: &Requester, cmd: Cmd) -> Result<Reply, String> {
    let bytes = AppToServerCommand { entry: Some(cmd) }.encode_to_vec();
    let reply = tokio::time::timeout(Duration::from_secs(30), client.request_response(Payload::new(bytes)))
        .await
        .map_err(|_| "no answer in 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    let reply = AppToServerCommandReply::decode(reply.data).map_err(|e| e.to_string())?;
    reply.entry.ok_or_else(|| "a reply with no entry".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_command_kind_at_64_in_flight_never_fails() {
    let (running, _dir) = start().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await);
    }
    let clients = Arc::new(clients);
    let kinds = commands(0).len();
    let mut failures: HashMap<&'static str, Vec<String>> = HashMap::new();
    // All kinds interleaved, so that different write paths race each other too.
    let work: Vec<(usize, usize)> = (0..PER_KIND).flat_map(|i| (0..kinds).map(move |k| (i, k))).collect();
    let results: Vec<(&'static str, Result<Reply, String>)> = stream::iter(work)
        .map(|(i, k)| {
            let clients = clients.clone();
            async move {
                let (kind, cmd) = commands(i).swap_remove(k);
                (kind, send(&clients[(i * kinds + k) % clients.len()], cmd).await)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (kind, result) in &results {
        let why = match result {
            Err(e) => Some(e.clone()),
            Ok(reply) => failure(reply),
        };
        if let Some(why) = why {
            failures.entry(kind).or_default().push(why);
        }
    }
    let summary: Vec<String> =
        failures.iter().map(|(kind, whys)| format!("{kind}: {} failed, e.g. {}", whys.len(), whys[0])).collect();
    assert!(
        summary.is_empty(),
        "{} of {} commands failed:\n{}",
        failures.values().map(Vec::len).sum::<usize>(),
        results.len(),
        summary.join("\n")
    );
    assert_eq!(results.len(), PER_KIND * kinds);
}
