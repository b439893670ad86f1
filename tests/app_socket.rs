//! App and simulator sockets driven by our own RSocket client over plain TCP against an in-process
//! server: setup rejections, bad input, unknown commands and socket-mode rules.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::inproc::{command, connect, dev_meta, rejected, simulator_meta, start};
use hodi::wire::*;
use hodi_rsocket::{error_code, Payload, RemoteError, RequestError, SetupParams};
use prost::Message;

/// Unknown org, unknown app and wrong key once got three different refusals, so org and app ids
/// could be enumerated. Every credential failure now reads the same; what is missing still says so.
#[tokio::test]
async fn every_credential_failure_gets_the_same_refusal() {
    let (running, _dir) = start().await;
    let good = dev_meta(&running);

    let mut refusals = Vec::new();
    for meta in [
        AppConnectionMetadata { org_id: "nope".into(), ..good.clone() },
        AppConnectionMetadata { app_id: "nope".into(), ..good.clone() },
        AppConnectionMetadata { api_key: Some("hodi_key_bad".into()), ..good.clone() },
        AppConnectionMetadata { api_key: None, auth_token: Some("hodi_tok_made_up".into()), ..good.clone() },
    ] {
        refusals.push(rejected(&running, meta).await);
    }
    for reason in &refusals {
        assert!(reason.contains("REJECTED_SETUP") && reason.contains("authentication failed"), "{reason}");
        assert!(!reason.contains("nope") && !reason.contains("hodi_"), "a refusal echoes what was sent: {reason}");
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "refusals differ: {refusals:#?}");
    let reason = rejected(&running, AppConnectionMetadata { api_key: None, ..good.clone() }).await;
    assert!(reason.contains("needs an api_key or an auth_token"), "{reason}");

    // SETUP data that is not an AppConnectionMetadata at all.
    let addr = running.bound.tcp.expect("tcp");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    let params = SetupParams { payload: Payload::new(Bytes::from_static(&[0xFF, 0xFF, 0xFF])), ..Default::default() };
    let client = hodi_rsocket::connect(io, params, Arc::new(hodi_rsocket::echo::Echo::default()), Default::default())
        .await
        .expect("sent");
    let reason = tokio::time::timeout(Duration::from_secs(5), client.closed()).await.expect("closed");
    assert!(reason.contains("not an AppConnectionMetadata"), "{reason}");
}

#[tokio::test]
async fn bad_and_empty_commands_get_a_clear_error_not_a_hang() {
    let (running, _dir) = start().await;
    let client = connect(&running, dev_meta(&running)).await;
    for (bytes, expect) in [
        (Bytes::new(), "empty command"),
        (Bytes::from_static(&[0xFA, 0x07, 0x00]), "unknown command"), // field 127: not in the schema
        (Bytes::from_static(&[0x0A, 0xFF]), "not an AppToServerCommand"),
    ] {
        let result = tokio::time::timeout(Duration::from_secs(5), client.request_response(Payload::new(bytes)))
            .await
            .expect("in time");
        match result {
            Err(RequestError::Remote(RemoteError { code, message })) => {
                assert_eq!(code, error_code::INVALID);
                assert!(message.contains(expect), "{message}");
            }
            other => panic!("expected an INVALID error, got {other:?}"),
        }
    }
    // The connection is still usable afterwards.
    let reply = command(&client, app_to_server_command::Entry::GenerateAuthToken(GenerateAuthTokenCommand {})).await;
    assert!(matches!(reply, app_to_server_command_reply::Entry::GenerateAuthToken(_)));
}

#[tokio::test]
async fn empty_payment_commands_get_their_own_reply_type_and_a_reason() {
    let (running, _dir) = start().await;
    let client = connect(&running, dev_meta(&running)).await;
    let reply =
        command(&client, app_to_server_command::Entry::InitiatePayment(InitiatePaymentCommand::default())).await;
    let app_to_server_command_reply::Entry::InitiatePayment(pay) = reply else { panic!("{reply:?}") };
    assert_eq!(pay.status, PaymentStatus::InvalidRequest as i32);
    assert!(pay.description.contains("value is required"), "{}", pay.description);
    let reply = command(&client, app_to_server_command::Entry::ReplayPayment(ReplayPaymentCommand::default())).await;
    let app_to_server_command_reply::Entry::ReplayPayment(replay) = reply else { panic!("{reply:?}") };
    assert!(!replay.status && replay.description.contains("provider_transaction_id is required"), "{replay:?}");
}

#[tokio::test]
async fn customer_commands_validate_input_and_scope_by_org() {
    let (running, _dir) = start().await;
    let client = connect(&running, dev_meta(&running)).await;
    let get =
        |customer| app_to_server_command::Entry::GetCustomerState(GetCustomerStateCommand { customer: Some(customer) });
    use get_customer_state_command::Customer;

    let app_to_server_command_reply::Entry::GetCustomerState(r) =
        command(&client, get(Customer::CustomerId("cst_nope".into()))).await
    else {
        panic!()
    };
    assert!(!r.status && r.description.contains("unknown customer id"), "{r:?}");

    let bad_number = CustomerNumber { provider: 0, number: "+1".into(), partition: None };
    let app_to_server_command_reply::Entry::GetCustomerState(r) =
        command(&client, get(Customer::CustomerNumber(bad_number))).await
    else {
        panic!()
    };
    assert!(!r.status && r.description.contains("provider"), "{r:?}");

    let number = CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: "+254700000009".into(),
        partition: None,
    };
    let app_to_server_command_reply::Entry::UpdateCustomerState(created) = command(
        &client,
        app_to_server_command::Entry::CreateCustomer(CreateCustomerCommand { customer_number: Some(number.clone()) }),
    )
    .await
    else {
        panic!()
    };
    let id = created.customer_id.expect("id");
    let app_to_server_command_reply::Entry::GetCustomerState(r) =
        command(&client, get(Customer::CustomerNumber(number.clone()))).await
    else {
        panic!()
    };
    assert_eq!(r.data.expect("data").customer_id, id);

    // Another org cannot see the customer, by id or by number (its number makes a new customer).
    let store = &running.hodi.store;
    let org = store.create_org(None, "Other").await.expect("org");
    let app = store.create_app(&org, None, "Other app").await.expect("app");
    let key = store.create_api_key(&org).await.expect("key");
    let other = connect(
        &running,
        AppConnectionMetadata { org_id: org, app_id: app, api_key: Some(key.key), ..Default::default() },
    )
    .await;
    let app_to_server_command_reply::Entry::GetCustomerState(r) =
        command(&other, get(Customer::CustomerId(id.clone()))).await
    else {
        panic!()
    };
    assert!(!r.status, "another org saw customer {id}");
    let app_to_server_command_reply::Entry::GetCustomerState(r) =
        command(&other, get(Customer::CustomerNumber(number))).await
    else {
        panic!()
    };
    assert_ne!(r.data.expect("data").customer_id, id);
}

#[tokio::test]
async fn socket_modes_keep_app_and_simulator_commands_apart() {
    let (running, _dir) = start().await;
    // A simulator command (ReceiveMessage, field 1 with a body) sent on an app socket.
    let app = connect(&running, dev_meta(&running)).await;
    let sim_cmd = SimulatorToServerCommand {
        entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
            customer_number: "+254700000001".into(),
            ..Default::default()
        })),
    };
    let result = app.request_response(Payload::new(sim_cmd.encode_to_vec())).await;
    assert!(matches!(&result, Err(RequestError::Remote(e)) if e.message.contains("simulator command")), "{result:?}");

    // A simulator socket answers with the simulator reply type (here: the message lacks a channel).
    let simulator = connect(&running, simulator_meta(&running)).await;
    let reply = simulator.request_response(Payload::new(sim_cmd.encode_to_vec())).await.expect("reply");
    let reply = SimulatorToServerCommandReply::decode(reply.data).expect("a SimulatorToServerCommandReply");
    assert!(!reply.status && reply.description.contains("channel_number is required"), "{reply:?}");
    // ... and never registers for app notifications.
    assert_eq!(running.hodi.sockets.connected_apps(), vec![running.dev.as_ref().expect("dev").app_id.clone()]);
}

/// A socket set up with a token could mint new tokens, so one leaked token lasted forever. Now
/// only API-key sockets mint them, and a token socket ends when its token does (plus the grace).
#[tokio::test]
async fn a_token_cannot_mint_tokens_and_its_socket_ends_with_it() {
    let (running, _dir) = common::inproc::start_with(|c| {
        c.auth.token_lifetime_secs = 2;
        c.auth.token_grace_secs = 1;
    })
    .await;
    let by_key = connect(&running, dev_meta(&running)).await;
    let app_to_server_command_reply::Entry::GenerateAuthToken(token) =
        command(&by_key, app_to_server_command::Entry::GenerateAuthToken(GenerateAuthTokenCommand {})).await
    else {
        panic!("a token for the API-key socket")
    };
    let by_token = connect(
        &running,
        AppConnectionMetadata { api_key: None, auth_token: Some(token.token.clone()), ..dev_meta(&running) },
    )
    .await;
    let mint = AppToServerCommand {
        entry: Some(app_to_server_command::Entry::GenerateAuthToken(GenerateAuthTokenCommand {})),
    };
    match by_token.request_response(Payload::new(mint.encode_to_vec())).await {
        Err(RequestError::Remote(RemoteError { code, message })) => {
            assert_eq!(code, error_code::REJECTED);
            assert!(message.contains("only a socket authenticated with an API key"), "{message}");
        }
        other => panic!("a token socket minted a token: {other:?}"),
    }
    // The socket works while the token is valid…
    let state = app_to_server_command::Entry::GetCustomerState(GetCustomerStateCommand {
        customer: Some(get_customer_state_command::Customer::CustomerNumber(CustomerNumber {
            number: "+254700000077".into(),
            provider: CustomerNumberProvider::Cellular as i32,
            partition: None,
        })),
    });
    assert!(matches!(command(&by_token, state).await, app_to_server_command_reply::Entry::GetCustomerState(_)));
    // …and is closed by the server 2 s + 1 s after the token was issued.
    let reason = tokio::time::timeout(Duration::from_secs(10), by_token.closed()).await.expect("closed in time");
    assert!(reason.contains("CONNECTION_CLOSE") && reason.contains("has expired"), "{reason}");
    assert!(!by_key.is_closed(), "the API-key socket stays");
}
