//! Messaging: the simulator → app → simulator round trip of a live USSD session, and send-by-tag
//! throughput, on a real server (embedded SQLite, plain TCP, loopback) with our RSocket client
//! playing both the app and the phone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hodi::store::customers::StoredNumber;
use hodi::store::identity::Index;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Requester, Responder, SetupParams};
use prost::Message;

/// The app: answers every USSD input with a menu, everything else with nothing; counts the
/// `message_status` notifications that say a message was delivered.
pub struct App(pub Arc<AtomicUsize>);
impl Responder for App {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let statuses = self.0.clone();
        Box::pin(async move {
            let n = ServerToAppNotification::decode(payload.data).map_err(|e| RemoteError::invalid(e.to_string()))?;
            if let Some(server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
                entry: Some(server_to_app_customer_notification::Entry::MessageStatus(s)),
                ..
            })) = &n.entry
            {
                if s.status == MessageDeliveryStatus::Delivered as i32 {
                    statuses.fetch_add(1, Ordering::Relaxed);
                }
            }
            let is_ussd = matches!(
                n.entry,
                Some(server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
                    entry: Some(server_to_app_customer_notification::Entry::ReceivedMessage(_)),
                    ..
                }))
            );
            let reply = ServerToAppNotificationReply {
                data_update: None,
                message: is_ussd.then(|| OutboundMessage {
                    body: Some(OutboundMessageBody {
                        entry: Some(outbound_message_body::Entry::Ussd(UssdMenuMessageBody {
                            text: "1. Balance\n2. Pay".into(),
                            is_terminal: false,
                        })),
                    }),
                    ..Default::default()
                }),
            };
            Ok(Payload::new(reply.encode_to_vec()))
        })
    }
}

/// The phone: counts messages sent to customers.
pub struct Phone(pub Arc<AtomicUsize>);
impl Responder for Phone {
    fn request_response(&self, _payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(Payload::new(ServerToSimulatorNotificationReply::default().encode_to_vec())) })
    }
}

/// sendMessageByTag: "sale" by SMS from the dev org's 21356 to the customers tagged `key`=yes.
pub fn sms_by_tag(key: &str) -> AppToServerCommand {
    AppToServerCommand {
        entry: Some(app_to_server_command::Entry::SendMessageTag(SendMessageTagCommand {
            tag: Some(IndexMapping { key: key.into(), value: Some("yes".into()) }),
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Sms as i32,
                number: "21356".into(),
            }),
            message: Some(OutboundMessage {
                body: Some(OutboundMessageBody { entry: Some(outbound_message_body::Entry::Text("sale".into())) }),
                ..Default::default()
            }),
        })),
    }
}

pub async fn connect(addr: &str, meta: AppConnectionMetadata, responder: Arc<dyn Responder>) -> Result<Requester> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    let params = SetupParams { payload: Payload::new(meta.encode_to_vec()), ..Default::default() };
    Ok(hodi_rsocket::connect(io, params, responder, hodi_rsocket::Config::default()).await?)
}

/// `round_trips` live USSD inputs through `phone`, one at a time (after 200 to warm up), each from
/// ReceiveMessage to the app's menu back at the phone: their latencies in µs, sorted.
pub async fn ussd_round_trips(phone: &Requester, round_trips: usize) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(round_trips);
    for i in 0..(round_trips + 200) {
        let cmd = SimulatorToServerCommand {
            entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
                customer_number: format!("+2547{:08}", i % 100),
                channel_number: Some(MessagingChannelNumber {
                    channel: MessagingChannel::Ussd as i32,
                    number: "*384#".into(),
                }),
                parts: vec![InboundMessageBody {
                    entry: Some(inbound_message_body::Entry::Ussd(UssdInputMessageBody {
                        status: UssdSessionStatus::Active as i32,
                        text: Some("1".into()),
                    })),
                }],
                session_id: Some(format!("bench-{}-{}", i % 100, i / 5000)),
                ..Default::default()
            })),
        };
        let started = Instant::now();
        let reply = phone.request_response(Payload::new(cmd.encode_to_vec())).await?;
        let elapsed = started.elapsed();
        let reply = SimulatorToServerCommandReply::decode(reply.data)?;
        anyhow::ensure!(reply.status && reply.message.is_some(), "round trip failed: {reply:?}");
        if i >= 200 {
            latencies.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(latencies)
}

struct Results {
    round_trips: usize,
    p50_us: f64,
    p99_us: f64,
    tagged: usize,
    tag_seconds: f64,
    tag_per_second: f64,
    /// Until the app had every message's DELIVERED `message_status`.
    status_seconds: f64,
}

async fn run(round_trips: usize, tagged: usize) -> Result<Results> {
    let server = super::BenchServer::start("messaging", |_| {}).await?;
    let (running, addr, dev) = (&server.running, server.addr.clone(), server.dev.clone());
    let meta = AppConnectionMetadata { ..server.meta() };
    let statuses = Arc::new(AtomicUsize::new(0));
    let app = connect(&addr, meta.clone(), Arc::new(App(statuses.clone()))).await?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let phone = connect(
        &addr,
        AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..meta.clone() },
        Arc::new(Phone(delivered.clone())),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let latencies = ussd_round_trips(&phone, round_trips).await?;

    // Send by tag.
    let store = running.hodi.store.clone();
    for i in 0..tagged {
        let n = StoredNumber { provider: 2, number: format!("+2548{i:08}"), partition: String::new() };
        let (c, _) = store.customer_by_number(&dev.org_id, &n).await?;
        store
            .upsert_tags(&dev.org_id, &c.id, &[Index { key: "bench".into(), value: "yes".into(), expires_at: None }])
            .await?;
    }
    let before = delivered.load(Ordering::Relaxed);
    let cmd = sms_by_tag("bench");
    eprintln!("tagged {tagged} customers; sending by tag");
    let started = Instant::now();
    let reply = AppToServerCommandReply::decode(app.request_response(Payload::new(cmd.encode_to_vec())).await?.data)?;
    anyhow::ensure!(
        matches!(
            reply.entry,
            Some(app_to_server_command_reply::Entry::TagCommand(TagCommandReply { status: true, .. }))
        ),
        "{reply:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while delivered.load(Ordering::Relaxed) - before < tagged {
        anyhow::ensure!(Instant::now() < deadline, "send-by-tag did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tag_seconds = started.elapsed().as_secs_f64();
    while statuses.load(Ordering::Relaxed) < tagged {
        anyhow::ensure!(Instant::now() < deadline, "delivery statuses did not reach the app in 10 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status_seconds = started.elapsed().as_secs_f64();
    server.stop();
    Ok(Results {
        round_trips,
        p50_us: super::percentile(&latencies, 0.5),
        p99_us: super::percentile(&latencies, 0.99),
        tagged,
        tag_seconds,
        tag_per_second: tagged as f64 / tag_seconds,
        status_seconds,
    })
}

pub fn main(args: &[String]) -> Result<()> {
    let round_trips = super::arg(args, "--round-trips", 5000.0)? as usize;
    let tagged = super::arg(args, "--tagged", 100_000.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let r = runtime.block_on(run(round_trips, tagged))?;
    eprintln!(
        "USSD round trip: p50 {:.0} us, p99 {:.0} us over {}; send-by-tag: {} messages in {:.1} s ({:.0}/s), \
         statuses at the app after {:.1} s",
        r.p50_us, r.p99_us, r.round_trips, r.tagged, r.tag_seconds, r.tag_per_second, r.status_seconds
    );
    let (store, flag) = super::store_used();
    let section = format!(
        "## Messaging (`hodi-bench messaging`)\n\n\
         A real server ({store}, plain TCP on loopback); our RSocket client plays the app and the phone.\n\
         Round trip: the phone's ReceiveMessage on a live USSD session → `received_message` to the app → the app's menu →\n\
         the phone's reply, one at a time. Send-by-tag: SendMessageTag to customers tagged beforehand, timed until the phone\n\
         has acknowledged every message, and until the app has every message's DELIVERED `message_status` (each one a\n\
         notification the app answers, on the same two cores).\n\n\
         | measure | value | target |\n| --- | ---: | ---: |\n\
         | USSD round trip p50 ({} round trips) | {:.2} ms | |\n\
         | USSD round trip p99 | {:.2} ms | < 5 ms |\n\
         | send-by-tag, {} customers | {:.0} messages/s ({:.1} s) | ≥ 20,000/s |\n\
         | … and every DELIVERED status at the app | {:.0} messages/s ({:.1} s) | |\n\n\
         Measured by `cargo run --release -p hodi-bench -- messaging{flag}`.\n",
        r.round_trips,
        r.p50_us / 1000.0,
        r.p99_us / 1000.0,
        r.tagged,
        r.tag_per_second,
        r.tag_seconds,
        r.tagged as f64 / r.status_seconds,
        r.status_seconds
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Messaging", &section)
}
