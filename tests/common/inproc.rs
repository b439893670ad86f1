//! In-process servers and our own RSocket client, for tests that need to control both ends.

use std::sync::Arc;
use std::time::Duration;

use hodi::config::Config;
use hodi::server::Running;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester, Responder, SetupParams};
use prost::Message;

pub async fn start() -> (Running, TestDir) {
    start_with(|_| {}).await
}

/// An in-process server's data directory and database, removed when dropped.
pub struct TestDir {
    dir: tempfile::TempDir,
    pub db: Arc<super::database::TestDatabase>,
}

impl TestDir {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Starts an in-process server after `adjust` has changed its config.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> (Running, TestDir) {
    // `HODI_TEST_LOG=hodi::notify=debug cargo test …` shows the server's logs for one test.
    if let Ok(filter) = std::env::var("HODI_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    config.listen.tls = "127.0.0.1:0".into();
    config.listen.tcp = "127.0.0.1:0".into();
    config.listen.ws = String::new();
    config.listen.wss = String::new();
    config.voice.sip_udp = "127.0.0.1:0".into();
    config.voice.sip_tcp = "127.0.0.1:0".into();
    config.voice.recordings_http = "127.0.0.1:0".into();
    config.webhooks.listen = "127.0.0.1:0".into();
    config.listen.http = "127.0.0.1:0".into();
    adjust(&mut config);
    // After `adjust`: a test that restarts on a data directory of its own finds its database again.
    let db = super::database::TestDatabase::for_data_dir(&config.data_dir);
    config.database_url.get_or_insert_with(|| db.url.clone());
    (hodi::server::start(config).await.expect("server"), TestDir { dir, db })
}

pub async fn connect(running: &Running, meta: AppConnectionMetadata) -> Requester {
    connect_with(running, meta, Arc::new(hodi_rsocket::echo::Echo::default())).await
}

/// Connects with `responder` answering the server's notifications, and returns once the server
/// has registered the socket (the SETUP is handled on the server's own time; a test that sends to
/// the phone right after connecting must not race it).
pub async fn connect_with(running: &Running, meta: AppConnectionMetadata, responder: Arc<dyn Responder>) -> Requester {
    let registered = |running: &Running| {
        if meta.simulator_mode {
            running.hodi.simulators.all_in_org(&meta.org_id).len()
        } else if meta.simplex_mode {
            0
        } else {
            running.hodi.sockets.candidates(&meta.org_id, &meta.app_id).len()
        }
    };
    let before = registered(running);
    let client = raw_connect(running, meta.clone(), responder).await;
    if meta.simulator_mode || !meta.simplex_mode {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while registered(running) <= before {
            assert!(tokio::time::Instant::now() < deadline, "the server did not register the socket in 5 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    client
}

async fn raw_connect(running: &Running, meta: AppConnectionMetadata, responder: Arc<dyn Responder>) -> Requester {
    let addr = running.bound.tcp.expect("tcp listener");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    let params = SetupParams {
        metadata_mime: "application/json".into(),
        data_mime: "application/octet-stream".into(),
        payload: Payload::with_metadata(meta.encode_to_vec(), "{\"agent\":\"hodi-tests\"}"),
        resume: None,
    };
    hodi_rsocket::connect(io, params, responder, hodi_rsocket::Config::default()).await.expect("setup sent")
}

pub fn dev_meta(running: &Running) -> AppConnectionMetadata {
    let dev = running.dev.as_ref().expect("dev tenant");
    AppConnectionMetadata {
        org_id: dev.org_id.clone(),
        app_id: dev.app_id.clone(),
        api_key: Some(dev.api_key.clone()),
        ..Default::default()
    }
}

pub async fn rejected(running: &Running, meta: AppConnectionMetadata) -> String {
    let client = raw_connect(running, meta, Arc::new(hodi_rsocket::echo::Echo::default())).await;
    tokio::time::timeout(Duration::from_secs(5), client.closed()).await.expect("closed by the server")
}

pub async fn command(client: &Requester, cmd: app_to_server_command::Entry) -> app_to_server_command_reply::Entry {
    let bytes = AppToServerCommand { entry: Some(cmd) }.encode_to_vec();
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request_response(Payload::new(bytes)))
        .await
        .expect("answered in time")
        .expect("a reply");
    AppToServerCommandReply::decode(reply.data).expect("an AppToServerCommandReply").entry.expect("with an entry")
}

/// The dev app's metadata for a simulator socket (simplex: it never receives app notifications).
pub fn simulator_meta(running: &Running) -> AppConnectionMetadata {
    AppConnectionMetadata { simulator_mode: true, simplex_mode: true, ..dev_meta(running) }
}

/// A phone on the dev org: a simulator socket whose notifications arrive on the returned channel.
pub async fn connect_phone(
    running: &Running,
) -> (Requester, tokio::sync::mpsc::Receiver<ServerToSimulatorNotification>) {
    let (tx, rx) = tokio::sync::mpsc::channel(100);
    (connect_with(running, simulator_meta(running), Arc::new(Phone(tx))).await, rx)
}

/// The customer's side for tests: forwards every ServerToSimulatorNotification and acknowledges it.
pub struct Phone(pub tokio::sync::mpsc::Sender<ServerToSimulatorNotification>);

impl Responder for Phone {
    fn request_response(
        &self,
        payload: Payload,
    ) -> hodi_rsocket::BoxFuture<Result<Payload, hodi_rsocket::RemoteError>> {
        let tx = self.0.clone();
        Box::pin(async move {
            let n = ServerToSimulatorNotification::decode(payload.data)
                .map_err(|e| hodi_rsocket::RemoteError::invalid(e.to_string()))?;
            let _ = tx.send(n).await;
            Ok(Payload::new(ServerToSimulatorNotificationReply::default().encode_to_vec()))
        })
    }
}

/// The simulator command for a customer texting `text` to the dev org's SMS number 21356.
pub fn inbound_sms(customer_number: &str, text: &str) -> SimulatorToServerCommand {
    SimulatorToServerCommand {
        entry: Some(simulator_to_server_command::Entry::ReceiveMessage(ReceiveMessageSimulatorCommand {
            customer_number: customer_number.into(),
            channel_number: Some(MessagingChannelNumber {
                channel: MessagingChannel::Sms as i32,
                number: "21356".into(),
            }),
            parts: vec![InboundMessageBody { entry: Some(inbound_message_body::Entry::Text(text.into())) }],
            ..Default::default()
        })),
    }
}
