//! Our protobuf types against the official SDK's generated classes (npm elarian@0.2.25): bytes the
//! SDK encodes decode with ours to the expected values, and ours decode in the SDK.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use hodi::wire::*;
use prost::Message;
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sdk_encodings() -> HashMap<String, Vec<u8>> {
    let out = Command::new("node")
        .arg("wire_compat.js")
        .arg("encode")
        .current_dir(common::peers_dir())
        .output()
        .expect("node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let map: HashMap<String, String> = serde_json::from_slice(&out.stdout).expect("json");
    map.into_iter().map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.decode(v).expect("base64"))).collect()
}

fn command(bytes: &[u8]) -> app_to_server_command::Entry {
    AppToServerCommand::decode(bytes).expect("decodes as AppToServerCommand").entry.expect("has an entry")
}

fn cellular(number: &str, partition: Option<&str>) -> CustomerNumber {
    CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: number.into(),
        partition: partition.map(Into::into),
    }
}

#[test]
fn sdk_encodings_decode_with_our_types() {
    let enc = sdk_encodings();

    let setup = AppConnectionMetadata::decode(&enc["setup"][..]).expect("setup");
    assert_eq!(
        setup,
        AppConnectionMetadata {
            org_id: "org-1".into(),
            app_id: "app-1".into(),
            api_key: Some("key-1".into()),
            auth_token: None,
            simplex_mode: true,
            simulator_mode: false
        }
    );

    let app_to_server_command::Entry::GetCustomerState(get) = command(&enc["get_state"]) else { panic!("get_state") };
    assert_eq!(
        get.customer,
        Some(get_customer_state_command::Customer::CustomerNumber(cellular("+254700000001", Some("p1"))))
    );

    let app_to_server_command::Entry::AddCustomerReminder(add) = command(&enc["add_reminder"]) else {
        panic!("add_reminder")
    };
    assert_eq!(add.customer, Some(add_customer_reminder_command::Customer::CustomerId("cst-9".into())));
    let reminder = add.reminder.expect("reminder");
    assert_eq!(reminder.key, "rk");
    assert_eq!(reminder.remind_at, Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }));
    assert_eq!(reminder.interval, Some(prost_types::Duration { seconds: 60, nanos: 0 }));
    assert_eq!(reminder.payload.as_deref(), Some("pl"));

    let app_to_server_command::Entry::UpdateCustomerTag(tag) = command(&enc["update_tag"]) else {
        panic!("update_tag")
    };
    assert_eq!(tag.updates.len(), 1);
    let mapping = tag.updates[0].mapping.as_ref().expect("mapping");
    assert_eq!((mapping.key.as_str(), mapping.value.as_deref()), ("tier", Some("gold")));
    assert_eq!(tag.updates[0].expires_at.as_ref().map(|t| t.seconds), Some(1_800_000_000));

    let app_to_server_command::Entry::UpdateCustomerMetadata(meta) = command(&enc["update_metadata"]) else {
        panic!("metadata")
    };
    assert_eq!(meta.updates["name"].value, Some(data_map_value::Value::StringVal("Ada".into())));
    assert_eq!(meta.updates["blob"].value, Some(data_map_value::Value::BytesVal(vec![1, 2, 3])));

    let app_to_server_command::Entry::SendMessage(send) = command(&enc["send_ussd_menu"]) else { panic!("send") };
    assert_eq!(
        send.channel_number,
        Some(MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "21356".into() })
    );
    let body = send.message.and_then(|m| m.body).and_then(|b| b.entry).expect("body");
    assert_eq!(
        body,
        outbound_message_body::Entry::Ussd(UssdMenuMessageBody { text: "1. Pay\n2. Exit".into(), is_terminal: false })
    );

    let app_to_server_command::Entry::InitiatePayment(pay) = command(&enc["initiate_payment"]) else {
        panic!("payment")
    };
    assert_eq!(pay.value, Some(Cash { currency_code: "KES".into(), amount: 1234.56 }));
    assert_eq!(
        pay.debit_party.and_then(|p| p.party),
        Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty { purse_id: "prs-1".into() }))
    );
    assert_eq!(
        pay.credit_party.and_then(|p| p.party),
        Some(payment_counter_party::Party::Wallet(PaymentWalletCounterParty {
            customer_id: "cst-9".into(),
            wallet_id: "w1".into()
        }))
    );

    let app_to_server_command::Entry::CustomerActivity(act) = command(&enc["customer_activity"]) else {
        panic!("activity")
    };
    assert_eq!((act.source.as_str(), act.session_id.as_str(), act.key.as_str()), ("web", "s1", "login"));
    assert_eq!(act.properties["ip"], "127.0.0.1");

    let sim = SimulatorToServerCommand::decode(&enc["sim_receive"][..]).expect("simulator command");
    let Some(simulator_to_server_command::Entry::ReceiveMessage(rx)) = sim.entry else { panic!("receive") };
    assert_eq!(rx.customer_number, "+254700000004");
    assert_eq!(rx.session_id.as_deref(), Some("sess-1"));
    assert_eq!(
        rx.parts[0].entry,
        Some(inbound_message_body::Entry::Ussd(UssdInputMessageBody {
            status: UssdSessionStatus::Active as i32,
            text: Some("1".into())
        }))
    );
}

#[test]
fn our_encodings_decode_in_the_sdk() {
    let reply = AppToServerCommandReply {
        entry: Some(app_to_server_command_reply::Entry::GetCustomerState(GetCustomerStateReply {
            status: true,
            description: "ok".into(),
            data: Some(CustomerStateReplyData {
                customer_id: "cst-1".into(),
                identity_state: Some(IdentityState {
                    tags: vec![CustomerIndex {
                        mapping: Some(IndexMapping { key: "tier".into(), value: Some("gold".into()) }),
                        expires_at: Some(prost_types::Timestamp { seconds: 42, nanos: 0 }),
                    }],
                    metadata: [(
                        "name".to_string(),
                        DataMapValue { value: Some(data_map_value::Value::StringVal("Ada".into())) },
                    )]
                    .into(),
                    secondary_ids: vec![],
                }),
                messaging_state: None,
                payment_state: None,
                activity_state: Some(ActivityState {
                    sessions: vec![],
                    customer_numbers: vec![cellular("+254700000001", None)],
                }),
            }),
        })),
    };
    let notification = ServerToAppNotification {
        entry: Some(server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
            org_id: "org-1".into(),
            app_id: "app-1".into(),
            customer_id: "cst-1".into(),
            app_data: Some(DataMapValue { value: Some(data_map_value::Value::StringVal("{\"n\":1}".into())) }),
            created_at: Some(prost_types::Timestamp { seconds: 100, nanos: 0 }),
            entry: Some(server_to_app_customer_notification::Entry::Reminder(ReminderNotification {
                reminder: Some(CustomerReminder {
                    key: "rk".into(),
                    remind_at: Some(prost_types::Timestamp { seconds: 99, nanos: 0 }),
                    interval: None,
                    payload: Some("pl".into()),
                }),
                tag: None,
                work_id: Some("work-1".into()),
            })),
        })),
    };
    let to_simulator = ServerToSimulatorNotification {
        entry: Some(server_to_simulator_notification::Entry::SendMessage(SendMessageSimulatorNotification {
            org_id: "org-1".into(),
            customer_id: "cst-1".into(),
            message_id: "msg-1".into(),
            customer_number: Some(cellular("+254700000001", None)),
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Sms as i32,
                number: "21356".into(),
            }),
            message: Some(OutboundMessage {
                body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text("hello".into())) }),
                ..Default::default()
            }),
        })),
    };
    let input = json!({
        "reply": {"type": "AppToServerCommandReply", "base64": b64(&reply.encode_to_vec())},
        "notification": {"type": "ServerToAppNotification", "base64": b64(&notification.encode_to_vec())},
        "to_simulator": {"type": "ServerToSimulatorNotification", "base64": b64(&to_simulator.encode_to_vec())},
    });
    let mut child = Command::new("node")
        .arg("wire_compat.js")
        .arg("decode")
        .current_dir(common::peers_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success());
    let decoded: Value = serde_json::from_slice(&out.stdout).expect("json");

    let state = &decoded["reply"]["getCustomerState"];
    assert_eq!(state["status"], true);
    assert_eq!(state["data"]["customerId"], "cst-1");
    assert_eq!(state["data"]["identityState"]["tagsList"][0]["mapping"]["value"]["value"], "gold");
    assert_eq!(state["data"]["identityState"]["tagsList"][0]["expiresAt"]["seconds"], 42);
    assert_eq!(state["data"]["identityState"]["metadataMap"][0][0], "name");
    assert_eq!(state["data"]["identityState"]["metadataMap"][0][1]["stringVal"], "Ada");
    assert_eq!(state["data"]["activityState"]["customerNumbersList"][0]["number"], "+254700000001");
    assert_eq!(state["data"]["activityState"]["customerNumbersList"][0]["provider"], 2);

    let customer = &decoded["notification"]["customer"];
    assert_eq!(customer["customerId"], "cst-1");
    assert_eq!(customer["appData"]["stringVal"], "{\"n\":1}");
    assert_eq!(customer["reminder"]["reminder"]["key"], "rk");
    assert_eq!(customer["reminder"]["reminder"]["payload"]["value"], "pl");
    assert_eq!(customer["reminder"]["workId"]["value"], "work-1");

    let sent = &decoded["to_simulator"]["sendMessage"];
    assert_eq!(sent["messageId"], "msg-1");
    assert_eq!(sent["channelNumber"]["channel"], 1);
    assert_eq!(sent["message"]["body"]["text"], "hello");
}
