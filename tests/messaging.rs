//! Messaging through real sockets on an in-process server: a voice call driven by app replies
//! (answer → getDigits → digits → hang-up), and inbound messages on every chat channel.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::inproc::{command, connect_phone, connect_with, dev_meta, simulator_meta, start, Phone};
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::server_to_app_customer_notification::Entry as Notification;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Requester, Responder};
use prost::Message;
use tokio::sync::mpsc;

/// The app: records every customer notification; answers voice input like a small IVR.
struct Ivr(mpsc::Sender<Notification>);
impl Responder for Ivr {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let tx = self.0.clone();
        Box::pin(async move {
            let n = ServerToAppNotification::decode(payload.data).expect("notification");
            let Some(server_to_app_notification::Entry::Customer(c)) = n.entry else { panic!("customer notification") };
            let entry = c.entry.expect("entry");
            let voice = match &entry {
                Notification::ReceivedMessage(m) => m.parts.iter().find_map(|p| match &p.entry {
                    Some(inbound_message_body::Entry::Voice(v)) => Some(v.clone()),
                    _ => None,
                }),
                _ => None,
            };
            let _ = tx.send(entry).await;
            let say = |text: &str| VoiceCallAction {
                entry: Some(voice_call_action::Entry::Say(SayCallAction {
                    text: text.into(),
                    voice: 0,
                    play_beep: false,
                })),
            };
            let actions = match voice {
                Some(v) if v.status == VoiceCallStatus::Answered as i32 => vec![
                    say("Welcome"),
                    VoiceCallAction {
                        entry: Some(voice_call_action::Entry::GetDigits(GetDigitsCallAction {
                            timeout: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
                            finish_on_key: Some("#".into()),
                            num_digits: Some(1),
                            prompt: Some(get_digits_call_action::Prompt::Say(SayCallAction {
                                text: "Press 1 to pay".into(),
                                voice: 0,
                                play_beep: false,
                            })),
                        })),
                    },
                ],
                Some(v) if v.dtmf_digits.is_some() => {
                    vec![say(&format!("You pressed {}", v.dtmf_digits.unwrap_or_default()))]
                }
                _ => Vec::new(),
            };
            let reply = ServerToAppNotificationReply {
                data_update: None,
                message: (!actions.is_empty()).then(|| OutboundMessage {
                    body: Some(OutboundMessageBody {
                        entry: Some(outbound_message_body::Entry::Voice(VoiceCallDialplanMessageBody { actions })),
                    }),
                    ..Default::default()
                }),
            };
            Ok(Payload::new(reply.encode_to_vec()))
        })
    }
}

async fn receive(
    phone: &Requester,
    number: &str,
    channel: MessagingChannel,
    channel_number: &str,
    session: Option<&str>,
    part: inbound_message_body::Entry,
) -> SimulatorToServerCommandReply {
    let cmd = SimulatorToServerCommand {
        entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
            customer_number: number.into(),
            channel_number: Some(MessagingChannelNumber { channel: channel as i32, number: channel_number.into() }),
            parts: vec![InboundMessageBody { entry: Some(part) }],
            session_id: session.map(Into::into),
            ..Default::default()
        })),
    };
    let reply =
        tokio::time::timeout(Duration::from_secs(10), phone.request_response(Payload::new(cmd.encode_to_vec())))
            .await
            .expect("in time")
            .expect("reply");
    SimulatorToServerCommandReply::decode(reply.data).expect("reply")
}

fn voice(status: VoiceCallStatus, digits: Option<&str>, hangup: VoiceCallHangupCause) -> inbound_message_body::Entry {
    inbound_message_body::Entry::Voice(VoiceCallInputMessageBody {
        direction: CustomerEventDirection::Outbound as i32,
        status: status as i32,
        dtmf_digits: digits.map(Into::into),
        hangup_cause: hangup as i32,
        ..Default::default()
    })
}

fn actions(reply: &SimulatorToServerCommandReply) -> Vec<voice_call_action::Entry> {
    match reply.message.as_ref().and_then(|m| m.body.as_ref()).and_then(|b| b.entry.as_ref()) {
        Some(outbound_message_body::Entry::Voice(v)) => v.actions.iter().filter_map(|a| a.entry.clone()).collect(),
        other => panic!("expected voice actions, got {other:?}"),
    }
}

async fn next_matching<T>(rx: &mut mpsc::Receiver<T>, what: &str, pick: impl Fn(&T) -> bool) -> T {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waiting for {what}"))
            .expect("open");
        if pick(&item) {
            return item;
        }
    }
}

#[tokio::test]
async fn a_voice_call_is_driven_by_the_apps_replies_through_get_digits_to_hang_up() {
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let (phone, mut phone_rx) = connect_phone(&running).await;
    let customer = CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: "+254733100200".into(),
        partition: None,
    };
    let voice_channel =
        MessagingChannelNumber { channel: MessagingChannel::Voice as i32, number: "+254711082000".into() };

    // The app calls the customer.
    let call = Cmd::SendMessage(SendMessageCommand {
        customer_number: Some(customer.clone()),
        channel_number: Some(voice_channel.clone()),
        message: Some(OutboundMessage {
            body: Some(OutboundMessageBody {
                entry: Some(outbound_message_body::Entry::Voice(VoiceCallDialplanMessageBody {
                    actions: vec![VoiceCallAction {
                        entry: Some(voice_call_action::Entry::Say(SayCallAction {
                            text: "Hello".into(),
                            voice: 0,
                            play_beep: false,
                        })),
                    }],
                })),
            }),
            ..Default::default()
        }),
    });
    let Reply::SendMessage(sent) = command(&app, call).await else { panic!() };
    assert_eq!(sent.status, MessageDeliveryStatus::SessionInitiated as i32, "{sent:?}");
    let session = sent.session_id.expect("session id");
    let ring = next_matching(&mut phone_rx, "make_voice_call", |_| true).await;
    let Some(server_to_simulator_notification::Entry::MakeVoiceCall(ring)) = ring.entry else { panic!("{ring:?}") };
    assert_eq!(ring.session_id, session);
    assert_eq!(ring.customer_number.as_ref().map(|n| n.number.as_str()), Some("+254733100200"));

    // Answered: the app's reply (say + getDigits) is what the phone plays.
    let answered = receive(
        &phone,
        "+254733100200",
        MessagingChannel::Voice,
        "+254711082000",
        Some(&session),
        voice(VoiceCallStatus::Answered, None, VoiceCallHangupCause::Unspecified),
    )
    .await;
    assert!(answered.status, "{answered:?}");
    let steps = actions(&answered);
    assert!(matches!(&steps[0], voice_call_action::Entry::Say(s) if s.text == "Welcome"));
    assert!(matches!(&steps[1], voice_call_action::Entry::GetDigits(g) if g.num_digits == Some(1)));

    // Digits: the app's next actions.
    let pressed = receive(
        &phone,
        "+254733100200",
        MessagingChannel::Voice,
        "+254711082000",
        Some(&session),
        voice(VoiceCallStatus::Active, Some("1"), VoiceCallHangupCause::Unspecified),
    )
    .await;
    assert!(matches!(&actions(&pressed)[0], voice_call_action::Entry::Say(s) if s.text == "You pressed 1"));

    // Hang-up: nobody waits for an answer; the app hears of it, and the session ends (its duration
    // counted from when the call started, over a second ago).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hung_up = receive(
        &phone,
        "+254733100200",
        MessagingChannel::Voice,
        "+254711082000",
        Some(&session),
        voice(VoiceCallStatus::Completed, None, VoiceCallHangupCause::NormalClearing),
    )
    .await;
    assert!(hung_up.status && hung_up.message.is_none(), "{hung_up:?}");
    let ended =
        next_matching(&mut app_rx, "messaging_session_ended", |n| matches!(n, Notification::MessagingSessionEnded(_)))
            .await;
    let Notification::MessagingSessionEnded(ended) = ended else { unreachable!() };
    assert_eq!(ended.session_id, session);
    assert_eq!(ended.reason, MessagingSessionEndReason::NormalClearing as i32);
    assert!(ended.duration.map(|d| d.seconds).unwrap_or(0) >= 1, "{:?}", ended.duration);
    let stored = running.hodi.store.session(&session).await.expect("store").expect("session");
    assert!(stored.ended_at.is_some());
}

#[tokio::test]
async fn inbound_messages_on_every_chat_channel_reach_the_app_and_open_a_session_window() {
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let _app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let (phone, _phone_rx) = connect_phone(&running).await;
    let cases = [
        (MessagingChannel::Whatsapp, "+254711082001", "+254733100300", true),
        (MessagingChannel::Telegram, "hodi_bot", "@ada", true),
        (MessagingChannel::FbMessenger, "hodi_page", "ada.fb", true),
        (MessagingChannel::Email, "hodi@localhost", "ada@example.com", false),
        (MessagingChannel::Sms, "21356", "+254733100301", false),
    ];
    for (channel, channel_number, from, opens_session) in cases {
        let text = format!("hello on {channel:?}");
        let reply =
            receive(&phone, from, channel, channel_number, None, inbound_message_body::Entry::Text(text.clone())).await;
        assert!(reply.status, "{channel:?}: {reply:?}");
        if opens_session {
            let started = next_matching(&mut app_rx, "session started", |n| {
                matches!(n, Notification::MessagingSessionStarted(_))
            })
            .await;
            let Notification::MessagingSessionStarted(s) = started else { unreachable!() };
            assert_eq!(s.channel_number.as_ref().map(|c| c.channel), Some(channel as i32));
        }
        let got =
            next_matching(&mut app_rx, "received message", |n| matches!(n, Notification::ReceivedMessage(_))).await;
        let Notification::ReceivedMessage(m) = got else { unreachable!() };
        assert_eq!(m.customer_number.as_ref().map(|n| n.number.as_str()), Some(from));
        assert_eq!(m.channel_number.as_ref().map(|c| c.channel), Some(channel as i32));
        assert_eq!(m.parts[0].entry, Some(inbound_message_body::Entry::Text(text)));
        assert_eq!(m.session_id.is_some(), opens_session, "{channel:?}");
    }
    // Unprovisioned channel numbers are refused, saying so.
    let refused = receive(
        &phone,
        "+254733100302",
        MessagingChannel::Sms,
        "00000",
        None,
        inbound_message_body::Entry::Text("x".into()),
    )
    .await;
    assert!(!refused.status && refused.description.contains("not provisioned"), "{refused:?}");
}

#[tokio::test]
async fn reply_to_message_and_send_by_tag_reach_the_phone() {
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(2000);
    let app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let (phone_tx, mut phone_rx) = mpsc::channel(20_000);
    let phone = connect_with(&running, simulator_meta(&running), Arc::new(Phone(phone_tx))).await;
    let reply = receive(
        &phone,
        "+254733100400",
        MessagingChannel::Sms,
        "21356",
        None,
        inbound_message_body::Entry::Text("question".into()),
    )
    .await;
    assert!(reply.status);
    let got = next_matching(&mut app_rx, "received message", |n| matches!(n, Notification::ReceivedMessage(_))).await;
    let Notification::ReceivedMessage(m) = got else { unreachable!() };
    let text = |t: &str| OutboundMessage {
        body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text(t.into())) }),
        ..Default::default()
    };
    let customer_id = running
        .hodi
        .store
        .customer_by_number(
            &running.dev.as_ref().expect("dev").org_id,
            &hodi::store::customers::StoredNumber {
                provider: 2,
                number: "+254733100400".into(),
                partition: String::new(),
            },
        )
        .await
        .expect("customer")
        .0
        .id;
    let Reply::SendMessage(r) = command(
        &app,
        Cmd::ReplyToMessage(ReplyToMessageCommand {
            customer_id: customer_id.clone(),
            message_id: m.message_id.clone(),
            message: Some(text("answer")),
        }),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(r.status, MessageDeliveryStatus::Sent as i32, "{r:?}");
    let sent = next_matching(&mut phone_rx, "the answer", |_| true).await;
    let Some(server_to_simulator_notification::Entry::SendMessage(s)) = sent.entry else { panic!() };
    assert_eq!(s.channel_number.map(|c| c.number), Some("21356".into()));
    let Reply::SendMessage(r) = command(
        &app,
        Cmd::ReplyToMessage(ReplyToMessageCommand {
            customer_id,
            message_id: "msg_nope".into(),
            message: Some(text("x")),
        }),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(r.status, MessageDeliveryStatus::InvalidReplyToMessageId as i32);

    // By tag: 1,000 tagged customers (and 100 others) — each tagged one gets exactly one SMS.
    let store = &running.hodi.store;
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    for i in 0..1100 {
        let n = hodi::store::customers::StoredNumber {
            provider: 2,
            number: format!("+25474{i:07}"),
            partition: String::new(),
        };
        let (c, _) = store.customer_by_number(&org, &n).await.expect("customer");
        let value = if i < 1000 { "yes" } else { "no" };
        store
            .upsert_tags(
                &org,
                &c.id,
                &[hodi::store::identity::Index { key: "promo".into(), value: value.into(), expires_at: None }],
            )
            .await
            .expect("tag");
    }
    let Reply::TagCommand(r) = command(
        &app,
        Cmd::SendMessageTag(SendMessageTagCommand {
            tag: Some(IndexMapping { key: "promo".into(), value: Some("yes".into()) }),
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Sms as i32,
                number: "21356".into(),
            }),
            message: Some(text("sale")),
        }),
    )
    .await
    else {
        panic!()
    };
    assert!(r.status, "{r:?}");
    let mut recipients = std::collections::HashSet::new();
    while recipients.len() < 1000 {
        let n = next_matching(&mut phone_rx, "by-tag SMS", |_| true).await;
        if let Some(server_to_simulator_notification::Entry::SendMessage(s)) = n.entry {
            assert_eq!(
                s.message.and_then(|m| m.body).and_then(|b| b.entry),
                Some(outbound_message_body::Entry::Text("sale".into()))
            );
            assert!(recipients.insert(s.customer_number.expect("number").number), "a customer got it twice");
        }
    }
    let tagged: std::collections::HashSet<String> = (0..1000).map(|i| format!("+25474{i:07}")).collect();
    assert_eq!(recipients, tagged, "exactly the tagged customers");
}

#[tokio::test]
async fn replays_import_history_once_and_read_back_through_state() {
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let number = CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: "+254733100500".into(),
        partition: None,
    };
    let sms = MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "21356".into() };
    let at = |s: i64| Some(prost_types::Timestamp { seconds: s, nanos: 0 });
    let text = |t: &str| OutboundMessage {
        body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text(t.into())) }),
        ..Default::default()
    };
    let replays = [
        Cmd::ReplayReceivedMessage(ReplayReceivedMessageCommand {
            provider_message_id: "p-in-1".into(),
            received_at: at(1_600_000_000),
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Text("old question".into())) }],
            ..Default::default()
        }),
        Cmd::ReplaySentMessage(ReplaySentMessageCommand {
            provider_message_id: "p-out-1".into(),
            sent_at: at(1_600_000_060),
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            message: Some(text("old answer")),
            status: MessageDeliveryStatus::Sent as i32,
            ..Default::default()
        }),
        Cmd::ReplayMessageStatusUpdate(ReplayMessageStatusUpdateCommand {
            provider_message_id: "p-out-1".into(),
            updated_at: at(1_600_000_070),
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            status: MessageDeliveryStatus::Delivered as i32,
            cost: None,
        }),
        Cmd::ReplayMessageReactionUpdate(ReplayMessageReactionUpdateCommand {
            provider_message_id: "p-out-1".into(),
            updated_at: at(1_600_000_080),
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            reaction: MessageReaction::Clicked as i32,
        }),
        Cmd::ReplayMessagingSession(ReplayMessagingSessionCommand {
            provider_session_id: "p-ses-1".into(),
            customer_number: Some(number.clone()),
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Ussd as i32,
                number: "*384#".into(),
            }),
            started_at: at(1_600_000_100),
            duration: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
            end_reason: MessagingSessionEndReason::NormalClearing as i32,
            cost: None,
        }),
        Cmd::ReplayMessagingConsentUpdate(ReplayMessagingConsentUpdateCommand {
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            updated_at: at(1_600_000_200),
            update: MessagingConsentUpdate::Block as i32,
        }),
    ];
    // Twice: the second pass changes nothing.
    for pass in 0..2 {
        for r in &replays {
            let Reply::UpdateCustomerState(reply) = command(&app, r.clone()).await else { panic!() };
            assert!(reply.status, "pass {pass}: {reply:?}");
        }
    }
    let Reply::GetCustomerState(state) = command(
        &app,
        Cmd::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerNumber(number.clone())),
        }),
    )
    .await
    else {
        panic!()
    };
    let messaging = state.data.expect("data").messaging_state.expect("messaging");
    assert_eq!(messaging.messages.len(), 2, "imported once each");
    let sent = messaging
        .messages
        .iter()
        .find_map(|m| match &m.entry {
            Some(channel_message::Entry::Sent(s)) => Some(s.clone()),
            _ => None,
        })
        .expect("the sent message");
    assert_eq!(sent.status, MessageDeliveryStatus::Delivered as i32);
    assert_eq!(sent.reactions.len(), 1, "the reaction once");
    assert_eq!(sent.provider_message_id.as_deref(), Some("p-out-1"));
    assert_eq!(messaging.sessions.len(), 1);
    assert_eq!(messaging.sessions[0].session_id, "p-ses-1");
    assert!(messaging.channels.iter().any(|c| matches!(c.state, Some(messaging_channel_state::State::Blocked(_)))));
    // Replays fire no notifications.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), app_rx.recv()).await.is_err(),
        "a replay fired a notification"
    );
    // A status update for an unknown provider id is refused.
    let Reply::UpdateCustomerState(r) = command(
        &app,
        Cmd::ReplayMessageStatusUpdate(ReplayMessageStatusUpdateCommand {
            provider_message_id: "nope".into(),
            customer_number: Some(number),
            channel_number: Some(sms),
            status: MessageDeliveryStatus::Failed as i32,
            ..Default::default()
        }),
    )
    .await
    else {
        panic!()
    };
    assert!(!r.status && r.description.contains("provider id"), "{r:?}");
    // Replays once skipped the channel-number check every other command makes: a number the org
    // was never given is refused for each of them.
    let foreign = MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "99999".into() };
    for mut r in replays {
        match &mut r {
            Cmd::ReplayReceivedMessage(c) => c.channel_number = Some(foreign.clone()),
            Cmd::ReplaySentMessage(c) => c.channel_number = Some(foreign.clone()),
            Cmd::ReplayMessageStatusUpdate(c) => c.channel_number = Some(foreign.clone()),
            Cmd::ReplayMessageReactionUpdate(c) => c.channel_number = Some(foreign.clone()),
            Cmd::ReplayMessagingSession(c) => c.channel_number = Some(foreign.clone()),
            Cmd::ReplayMessagingConsentUpdate(c) => c.channel_number = Some(foreign.clone()),
            other => panic!("not a replay: {other:?}"),
        }
        let Reply::UpdateCustomerState(reply) = command(&app, r.clone()).await else { panic!() };
        assert!(!reply.status && reply.description.contains("not provisioned for this org"), "{r:?}: {reply:?}");
    }
}

#[tokio::test]
async fn a_session_left_idle_ends_for_inactivity() {
    let (running, _dir) = common::inproc::start_with(|c| {
        c.messaging.live_session_secs = 1;
        c.messaging.session_sweep_ms = 100;
    })
    .await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let _app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let (phone, _phone_rx) = connect_phone(&running).await;
    let dial = inbound_message_body::Entry::Ussd(UssdInputMessageBody {
        status: UssdSessionStatus::Active as i32,
        text: Some(String::new()),
    });
    let reply = receive(&phone, "+254733100600", MessagingChannel::Ussd, "*384#", Some("idle-1"), dial).await;
    assert!(reply.status, "{reply:?}");
    let ended =
        next_matching(&mut app_rx, "session ended", |n| matches!(n, Notification::MessagingSessionEnded(_))).await;
    let Notification::MessagingSessionEnded(ended) = ended else { unreachable!() };
    assert_eq!((ended.session_id.as_str(), ended.reason), ("idle-1", MessagingSessionEndReason::Inactivity as i32));
}

#[tokio::test]
async fn an_opt_out_and_a_reported_click_become_reactions_once_each() {
    use hodi::messaging::reaction::{react, Reacted};
    let (running, _dir) = start().await;
    let (app_tx, mut app_rx) = mpsc::channel(100);
    let app = connect_with(&running, dev_meta(&running), Arc::new(Ivr(app_tx))).await;
    let (phone, mut phone_rx) = connect_phone(&running).await;
    let number = CustomerNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: "+254733100900".into(),
        partition: None,
    };
    let sms = MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "21356".into() };
    let Reply::SendMessage(sent) = command(
        &app,
        Cmd::SendMessage(SendMessageCommand {
            customer_number: Some(number.clone()),
            channel_number: Some(sms.clone()),
            message: Some(OutboundMessage {
                body: Some(OutboundMessageBody {
                    entry: Some(outbound_message_body::Entry::Text("Sale! http://shop.example/".into())),
                }),
                ..Default::default()
            }),
        }),
    )
    .await
    else {
        panic!()
    };
    let message_id = sent.message_id.expect("message id");
    next_matching(&mut phone_rx, "the sale", |_| true).await;

    // The customer answers STOP: the app hears the answer, then UNSUBSCRIBED on the sale.
    for text in [" stop ", "STOP"] {
        let reply = receive(
            &phone,
            "+254733100900",
            MessagingChannel::Sms,
            "21356",
            None,
            inbound_message_body::Entry::Text(text.into()),
        )
        .await;
        assert!(reply.status, "{reply:?}");
    }
    let reaction =
        next_matching(&mut app_rx, "unsubscribed", |n| matches!(n, Notification::SentMessageReaction(_))).await;
    let Notification::SentMessageReaction(r) = reaction else { unreachable!() };
    assert_eq!(r.message_id, message_id);
    assert_eq!(r.reaction, MessageReaction::Unsubscribed as i32);
    assert_eq!(r.channel_number, Some(sms.clone()));
    assert_eq!(r.customer_number.as_ref().map(|n| n.number.as_str()), Some("+254733100900"));

    // A provider reports a click, twice: one notification, one recorded reaction of each kind.
    let store = &running.hodi.store;
    let now = hodi::store::now_ms();
    let first = react(store, &message_id, MessageReaction::Clicked, now).await.expect("react");
    assert!(matches!(first, Reacted::Recorded { .. }), "{first:?}");
    let again = react(store, &message_id, MessageReaction::Clicked, now).await.expect("react");
    assert_eq!(again, Reacted::AlreadyRecorded);
    assert_eq!(react(store, "msg_nope", MessageReaction::Clicked, now).await.expect("react"), Reacted::UnknownMessage);
    let click = next_matching(
        &mut app_rx,
        "clicked",
        |n| matches!(n, Notification::SentMessageReaction(r) if r.reaction == MessageReaction::Clicked as i32),
    )
    .await;
    let Notification::SentMessageReaction(c) = click else { unreachable!() };
    assert_eq!(c.message_id, message_id);

    // The state shows the sale with both reactions, and the STOP answers as received messages.
    let Reply::GetCustomerState(state) = command(
        &app,
        Cmd::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerNumber(number.clone())),
        }),
    )
    .await
    else {
        panic!()
    };
    let all = state.data.and_then(|d| d.messaging_state).map(|m| m.messages).unwrap_or_default();
    let sale = all
        .iter()
        .find_map(|m| match &m.entry {
            Some(channel_message::Entry::Sent(s)) if s.message_id == message_id => Some(s.clone()),
            _ => None,
        })
        .expect("the sale in state");
    let kinds: Vec<i32> = sale.reactions.iter().map(|r| r.reaction).collect();
    assert_eq!(kinds, vec![MessageReaction::Unsubscribed as i32, MessageReaction::Clicked as i32]);
    let received = all.iter().filter(|m| matches!(m.entry, Some(channel_message::Entry::Received(_)))).count();
    assert_eq!(received, 2);

    // A received message takes no reaction.
    let inbound_id = all
        .iter()
        .find_map(|m| match &m.entry {
            Some(channel_message::Entry::Received(r)) => Some(r.message_id.clone()),
            _ => None,
        })
        .expect("received");
    assert_eq!(react(store, &inbound_id, MessageReaction::Clicked, now).await.expect("react"), Reacted::NotSent);
}
