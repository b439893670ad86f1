//! A hostile SMSC: Hodi's SMPP client must survive whatever the far end sends — a PDU that claims
//! a gigabyte, bytes that are no PDU, receipts for messages it never sent, messages to numbers no
//! org has, text in a coding that does not decode — and bind again, without panicking or holding
//! more than one PDU's worth of memory.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::inproc::start_with;
use futures_util::{SinkExt, StreamExt};
use hodi::config::providers::{Provider, Secret, Smpp};
use hodi::messaging::outbound::Outbound;
use hodi::store::customers::StoredNumber;
use hodi::wire::{
    outbound_message_body, MessageDeliveryStatus, MessagingChannel, MessagingChannelNumber, OutboundMessage,
    OutboundMessageBody,
};
use rusmpp::pdus::{BindTransceiverResp, DeliverSm};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessageType};
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Accepts one connection and answers its bind; the framed connection for what comes next.
async fn accept_bind(listener: &TcpListener) -> Framed<tokio::net::TcpStream, CommandCodec> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("Hodi connects within 15 s")
        .expect("accept");
    let mut framed = Framed::new(tcp, CommandCodec::new());
    loop {
        let command = tokio::time::timeout(Duration::from_secs(10), framed.next())
            .await
            .expect("a PDU within 10 s")
            .expect("connection open")
            .expect("a PDU");
        if let Some(Pdu::BindTransceiver(_)) = command.pdu() {
            let resp = BindTransceiverResp::builder().system_id(COctetString::from_str("evil").expect("id")).build();
            framed
                .send(Command::new(CommandStatus::EsmeRok, command.sequence_number(), Pdu::BindTransceiverResp(resp)))
                .await
                .expect("bind_resp");
            return framed;
        }
    }
}

fn deliver(seq: u32, esm: EsmClass, coding: DataCoding, to: &str, body: &[u8]) -> Command {
    let sm = DeliverSm::builder()
        .source_addr(COctetString::from_str("254700000001").expect("addr"))
        .destination_addr(COctetString::from_str(to).expect("addr"))
        .esm_class(esm)
        .data_coding(coding)
        .short_message(OctetString::from_slice(body).expect("short message"))
        .build();
    Command::new(CommandStatus::EsmeRok, seq, Pdu::DeliverSm(sm))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_smsc_cannot_crash_hodi_or_make_it_hold_a_huge_pdu() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let address = listener.local_addr().expect("addr").to_string();
    let (running, _dir) = start_with(|c| {
        let smpp = Smpp {
            address,
            system_id: "hodi".into(),
            password: Secret::new("pw"),
            reconnect_secs: 1,
            reconnect_max_secs: 1,
            ..Smpp::default()
        };
        c.providers.insert("evil".into(), Provider::Smpp(smpp));
    })
    .await;
    let dev = running.dev.clone().expect("dev tenant");
    running.hodi.store.bind_channel_provider(&dev.org_id, "sms", "21356", Some("evil")).await.expect("bind number");

    // 1. Nonsense Hodi must answer or ignore: receipts for ids it never gave, a receipt with no
    //    fields, a message to a number nobody has, UCS-2 with an odd byte, a UDH longer than the body.
    let mut smsc = accept_bind(&listener).await;
    let receipt = EsmClass { message_type: MessageType::ShortMessageContainsMCDeliveryReceipt, ..EsmClass::default() };
    let udhi = EsmClass::default().with_udhi_indicator();
    let nonsense = [
        deliver(1, receipt, DataCoding::McSpecific, "21356", b"id:nobody stat:DELIVRD"),
        deliver(2, receipt, DataCoding::McSpecific, "21356", b"no fields at all"),
        deliver(3, EsmClass::default(), DataCoding::McSpecific, "99999", b"to a number nobody has"),
        deliver(4, EsmClass::default(), DataCoding::Ucs2, "21356", &[0x00, 0x41, 0x00]),
        deliver(5, udhi, DataCoding::McSpecific, "21356", &[0xFF, 0x00, 0x03]),
    ];
    for command in nonsense {
        smsc.send(command).await.expect("send deliver_sm");
    }
    // Each deliver_sm is answered (so a real SMSC would not resend it forever).
    let mut answered = 0;
    while answered < 5 {
        let command = tokio::time::timeout(Duration::from_secs(10), smsc.next())
            .await
            .expect("deliver_sm_resp within 10 s")
            .expect("open")
            .expect("PDU");
        if command.id() == rusmpp::CommandId::DeliverSmResp {
            answered += 1;
        }
    }

    // 2. A header claiming a gigabyte: Hodi drops the link rather than waiting for (or allocating) it.
    let tcp = smsc.get_mut();
    tcp.write_all(&[0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 9]).await.expect("write");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match smsc.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "Hodi kept a link that announced a 1 GB PDU");

    // 3. Garbage instead of a PDU on the next bind: dropped again.
    let mut smsc = accept_bind(&listener).await;
    smsc.get_mut().write_all(&[0x00, 0x00, 0x00, 0x02, 0xde, 0xad]).await.expect("write");
    drop(smsc);

    // 4. And Hodi binds again, and still sends.
    let mut smsc = accept_bind(&listener).await;
    let number = StoredNumber { provider: 2, number: "+254700000001".into(), partition: String::new() };
    let (customer, _) = running.hodi.store.customer_by_number(&dev.org_id, &number).await.expect("customer");
    let outbound = Outbound {
        org_id: dev.org_id.clone(),
        app_id: dev.app_id.clone(),
        customer_id: customer.id,
        number,
        channel_number: MessagingChannelNumber { channel: MessagingChannel::Sms as i32, number: "21356".into() },
        message: OutboundMessage {
            body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text("still here".into())) }),
            ..Default::default()
        },
        session_id: None,
        in_reply_to: None,
    };
    let sent = hodi::messaging::outbound::queue_for_provider(&running.hodi, &outbound, "evil").await.expect("queued");
    assert_eq!(sent.status, MessageDeliveryStatus::Queued);
    let submit = loop {
        let command = tokio::time::timeout(Duration::from_secs(15), smsc.next())
            .await
            .expect("a submit_sm within 15 s")
            .expect("open")
            .expect("PDU");
        if let Some(Pdu::SubmitSm(sm)) = command.pdu() {
            break sm.short_message().as_ref().to_vec();
        }
    };
    assert_eq!(submit, b"still here");
    running.stop().await;
}
