//! RSocket resumption with hodi-sdk: the app's TCP connection is cut under traffic (and the
//! network refuses it for a while); the SDK dials again and RESUMEs its session. Every SMS the
//! customer sent reaches the app exactly once, in order, none is sent again by the server, a
//! command issued during the outage is answered after it, and the app never sees its connection
//! close. Against a server with resumption off, hodi-sdk sets up plain sessions as before.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cutter::Cutter;
use hodi_sdk::model::channel;
use hodi_sdk::{ConnectionEvent, Credentials, Elarian, Endpoint, Event, Options, Reply, Simulator};

const WAIT: Duration = Duration::from_secs(20);
const TEXTS: usize = 150;

fn options(running: &hodi::server::Running, endpoint: Endpoint) -> Options {
    let dev = running.dev.as_ref().expect("dev tenant");
    Options::new(endpoint, &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()))
}

fn text(t: String) -> Vec<hodi_sdk::wire::InboundMessageBody> {
    vec![hodi_sdk::wire::InboundMessageBody { entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(t)) }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_without_losing_or_repeating_a_notification() {
    let (running, _dir) = common::inproc::start().await;
    let server = running.bound.tcp.expect("tcp").to_string();
    let proxy = Cutter::start(server.clone()).await;
    let app = Elarian::connect(options(&running, Endpoint::Tcp(proxy.addr.clone())));
    app.connected(WAIT).await.expect("app connected through the proxy");
    let mut events = app.events();
    let mut notifications = app.notifications().expect("stream");
    let phone = Simulator::connect(options(&running, Endpoint::Tcp(server)));
    phone.connected(WAIT).await.expect("phone connected");

    // The app reads and answers every SMS, noting what it saw.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(n) = notifications.next_within(Duration::from_secs(60)).await {
                if let Event::ReceivedMessage(m) = &n.event {
                    if let Some(t) = m.text() {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(t.to_string());
                    }
                }
                let _ = n.reply(Reply::default()).await;
                if seen.lock().unwrap_or_else(|p| p.into_inner()).len() == TEXTS {
                    return;
                }
            }
        })
    };
    // One customer texts 300 times, one after another.
    let sender = tokio::spawn(async move {
        for i in 0..TEXTS {
            phone
                .receive_message("+254700400001", channel::sms("21356"), text(format!("m{i:03}")), None)
                .await
                .expect("sent");
        }
    });
    let count = || seen.lock().unwrap_or_else(|p| p.into_inner()).len();
    let deadline = tokio::time::Instant::now() + WAIT;
    while count() < TEXTS / 3 {
        assert!(tokio::time::Instant::now() < deadline, "traffic did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The network fails: connections cut, new ones refused for two seconds.
    proxy.set_down(true);
    proxy.cut();
    let during = {
        let customer = app.customer("+254700400001");
        tokio::spawn(async move { customer.get_state().await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_down(false);

    tokio::time::timeout(Duration::from_secs(60), reader).await.expect("every SMS in time").expect("reader");
    sender.await.expect("sender");
    let state = tokio::time::timeout(WAIT, during).await.expect("answered").expect("task");
    assert!(state.is_ok(), "a command sent during the outage is answered after it: {state:?}");
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let expected: Vec<String> = (0..TEXTS).map(|i| format!("m{i:03}")).collect();
    assert_eq!(seen, expected, "each SMS exactly once, in order");
    assert_eq!(
        running.hodi.notify_stats.redelivered.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing was sent again: the session resumed rather than restarted"
    );
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ConnectionEvent::Closed(_)), "the app saw its connection close: {e:?}");
    }
    // Answers are recorded in batches: the last one lands a moment after the app sent it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while running.hodi.store.outbox_len().await.expect("outbox") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "an answered notification is still waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An app that closes on purpose says so: the server ends the session at once rather than keep
    // it for a resume (the app's socket leaves the registry, no notification waits on it).
    app.disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !running.hodi.sockets.all_in_org(&running.dev.as_ref().expect("dev").org_id).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the closed app's session was kept for a resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn against_a_server_with_resumption_off_the_sdk_sets_up_plainly() {
    let (running, _dir) = common::inproc::start_with(|c| c.rsocket.resume_window_secs = 0).await;
    let server = running.bound.tcp.expect("tcp").to_string();
    let app = Elarian::connect(options(&running, Endpoint::Tcp(server)));
    app.connected(WAIT).await.expect("the SDK falls back to a session without resumption");
    app.customer("+254700400002").get_state().await.expect("and works");
}
