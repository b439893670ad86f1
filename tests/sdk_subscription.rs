//! hodi-sdk's notification subscription against a live Hodi: backpressure (a stalled or slow
//! consumer holds a bounded number of notifications while the rest wait in the server's outbox,
//! and nothing is lost), and connection life (rejected credentials, a server that is not up yet,
//! a server restart with notifications resuming on the same stream).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use hodi_sdk::model::{channel, message, Reminder};
use hodi_sdk::{Backoff, ConnectionEvent, Credentials, Elarian, Endpoint, Error, Event, Options, Reply, Simulator};

const WAIT: Duration = Duration::from_secs(15);

fn options(running: &hodi::server::Running) -> Options {
    let dev = running.dev.as_ref().expect("dev tenant");
    let addr = running.bound.tcp.expect("tcp listener");
    Options::new(Endpoint::Tcp(addr.to_string()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()))
}

#[tokio::test]
async fn a_stalled_consumer_holds_a_bounded_window_while_the_rest_wait_server_side_and_none_are_lost() {
    const COUNT: usize = 200;
    const WINDOW: u32 = 4;
    let (running, _dir) = common::inproc::start_with(|c| c.notify.reply_timeout_ms = 20_000).await;
    let mut app_options = options(&running);
    app_options.notification_window = WINDOW;
    let client = Elarian::connect(app_options);
    client.connected(WAIT).await.expect("app connected");
    let mut notifications = client.notifications().expect("the stream");
    let phone = Simulator::connect(options(&running));
    phone.connected(WAIT).await.expect("simulator connected");

    // 200 customers text the app while it reads nothing.
    for i in 0..COUNT {
        let text = hodi_sdk::wire::InboundMessageBody {
            entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(format!("hello {i}"))),
        };
        phone.receive_message(format!("+2547003{i:05}"), channel::sms("21356"), vec![text], None).await.expect("sent");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dev = running.dev.clone().expect("dev tenant");
    let sent = || running.hodi.sockets.awaiting_on_subscriptions(&dev.org_id, &dev.app_id);
    let held = notifications.in_flight();
    let queued = running.hodi.store.outbox_len().await.expect("outbox");
    // Sent and unanswered, as the server counts them: the client's buffers, the wire, the app.
    assert!(sent() <= WINDOW as usize + 2, "{} sent to a stalled consumer; the window is {WINDOW}", sent());
    assert!(sent() >= WINDOW as usize, "the server fills the window even for a stalled consumer: {}", sent());
    assert!(held <= 2, "the SDK took {held} off the connection for an app that reads nothing");
    assert_eq!(queued as usize, COUNT, "every notification is still stored server-side until answered");

    // Now read slowly, answering each; the held count stays bounded and all 200 arrive once.
    let mut seen = HashSet::new();
    let mut max_held = held;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < COUNT {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {COUNT} arrived", seen.len());
        let n = notifications.next_within(WAIT).await.expect("the next notification");
        max_held = max_held.max(sent());
        let Event::ReceivedMessage(m) = &n.event else { panic!("unexpected {n:?}") };
        assert!(seen.insert(m.text().unwrap_or_default().to_string()), "{:?} arrived twice", m.text());
        if seen.len() % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await; // a slow consumer
        }
        n.reply(Reply::default()).await.expect("answer taken");
    }
    // The window in the client's connection buffer, one in the forwarder, one in the stream's slot,
    // and the one the app is holding.
    assert!(max_held <= WINDOW as usize + 3, "at most {max_held} were out at once");
    let deadline = tokio::time::Instant::now() + WAIT;
    while running.hodi.store.outbox_len().await.expect("outbox") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "answered notifications stay queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dropped_notification_is_acknowledged_and_an_answer_carries_a_message_and_app_data() {
    let (running, _dir) = common::inproc::start().await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("connected");
    let mut notifications = client.notifications().expect("the stream");
    assert!(matches!(client.notifications(), Err(Error::Invalid(_))), "one stream per client");
    let phone = hodi_simulator::Phone::connect(options(&running), "+254700200001").await.expect("phone");

    phone.send_sms("21356", "first").await.expect("sent");
    let first = notifications.next_within(WAIT).await.expect("first");
    assert_eq!(first.name(), "receivedSms");
    drop(first); // acknowledged empty: not sent again
    phone.send_sms("21356", "second").await.expect("sent");
    let second = notifications.next_within(WAIT).await.expect("second");
    let Event::ReceivedMessage(m) = &second.event else { panic!("{second:?}") };
    assert_eq!(m.text(), Some("second"), "the dropped first one is not re-sent");
    second.reply(Reply::message(message::text("got it")).with_app_data("answered")).await.expect("taken");
    let answer = phone.expect_message(WAIT).await.expect("the reply reaches the phone");
    assert_eq!(answer.text(), "got it");
    let data = client.customer("+254700200001").lease_app_data().await.expect("app data");
    assert_eq!(data.and_then(|d| d.as_text().map(str::to_string)).as_deref(), Some("answered"));
}

#[tokio::test]
async fn wrong_credentials_are_rejected_once_and_commands_say_so() {
    let (running, _dir) = common::inproc::start().await;
    let mut bad = options(&running);
    bad.credentials = Credentials::ApiKey("hodi_key_wrong".into());
    let client = Elarian::connect(bad);
    let mut events = client.events();
    match client.connected(WAIT).await {
        Err(Error::Rejected(why)) => assert!(why.contains("authentication failed"), "{why}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let err = client.customer("+254700200002").get_state().await.expect_err("no connection");
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    let mut saw = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        saw.push(e);
    }
    assert!(saw.iter().any(|e| matches!(e, ConnectionEvent::Error(Error::Rejected(_)))), "{saw:?}");
    // At most the first attempt (the receiver may subscribe after it started); never a retry.
    assert!(saw.iter().filter(|e| matches!(e, ConnectionEvent::Connecting)).count() <= 1, "retried: {saw:?}");
}

#[tokio::test]
async fn the_client_waits_for_a_server_that_is_not_up_yet_and_resumes_after_a_restart() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().expect("tempdir");
    let start = |data: std::path::PathBuf, addr: String| {
        common::inproc::start_with(move |c| {
            c.data_dir = data;
            c.listen.tcp = addr;
        })
    };
    // Credentials are known only once the server has provisioned the dev tenant: start, read, stop.
    let (first, _d) = start(data.path().to_path_buf(), addr.clone()).await;
    let dev = first.dev.clone().expect("dev tenant");
    first.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut opts =
        Options::new(Endpoint::Tcp(addr.clone()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()));
    opts.command_timeout = Duration::from_millis(300);
    opts.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(300) };
    let client = Elarian::connect(opts);
    let mut events = client.events();
    let customer = client.customer("+254700200003");
    let err = customer.get_state().await.expect_err("nothing listens yet");
    assert!(matches!(err, Error::NotConnected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1") && text.contains("refused"), "says where and why: {text}");
    assert!(err.is_transient());

    let (second, _d2) = start(data.path().to_path_buf(), addr.clone()).await;
    client.connected(WAIT).await.expect("connected once the server is up");
    customer.add_reminder(Reminder::after("ping", Duration::from_millis(1500), "p")).await.expect("reminder set");
    let mut notifications = client.notifications().expect("stream");

    // The server goes away before the reminder is due and comes back: same client, same stream.
    second.shutdown.cancel();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no Closed event");
        if let Ok(Ok(ConnectionEvent::Closed(_))) = tokio::time::timeout(WAIT, events.recv()).await {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_third, _d3) = start(data.path().to_path_buf(), addr).await;
    let n = notifications.next_within(WAIT).await.expect("the reminder after the restart");
    let Event::Reminder(r) = &n.event else { panic!("{n:?}") };
    assert_eq!(r.reminder.as_ref().map(|r| r.key.as_str()), Some("ping"));
    n.ack().await.expect("answered");
    let state = customer.get_state().await.expect("commands work again");
    assert!(state.customer_id.starts_with("cst_"));
}

#[tokio::test]
async fn a_notification_left_unanswered_holds_up_only_its_own_customer() {
    let (running, _dir) = common::inproc::start_with(|c| c.notify.reply_timeout_ms = 30_000).await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("connected");
    let mut notifications = client.notifications().expect("stream");
    let slow = hodi_simulator::Phone::connect(options(&running), "+254700400001").await.expect("phone");
    let busy = hodi_simulator::Phone::connect(options(&running), "+254700400002").await.expect("phone");

    slow.send_sms("21356", "slow 1").await.expect("sent");
    let held = notifications.next_within(WAIT).await.expect("the slow customer's first");
    slow.send_sms("21356", "slow 2").await.expect("sent");
    for i in 0..3 {
        busy.send_sms("21356", &format!("busy {i}")).await.expect("sent");
    }
    // The other customer's three arrive, in order, while the first customer's answer is awaited
    // (its reply timeout is 30 s); the first customer's second waits for that answer.
    for i in 0..3 {
        let n = notifications.next_within(Duration::from_secs(5)).await.expect("not held up by the other customer");
        let Event::ReceivedMessage(m) = &n.event else { panic!("{n:?}") };
        assert_eq!(m.text(), Some(format!("busy {i}").as_str()));
        n.ack().await.expect("answered");
    }
    assert!(notifications.next_within(Duration::from_millis(500)).await.is_none(), "slow 2 must wait for slow 1");
    held.ack().await.expect("answered late but in time");
    let n = notifications.next_within(WAIT).await.expect("slow 2 after slow 1's answer");
    let Event::ReceivedMessage(m) = &n.event else { panic!("{n:?}") };
    assert_eq!(m.text(), Some("slow 2"));
}

#[tokio::test]
async fn a_notification_sent_again_while_the_app_holds_it_reaches_the_app_once() {
    // A reply timeout far below the app's pace: the server sends the SMS again (same id) while the
    // app still works on it; hodi-sdk keeps the duplicate from the app, and the one answer it gives
    // completes the delivery.
    let (running, _dir) = common::inproc::start_with(|c| c.notify.reply_timeout_ms = 200).await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("app connected");
    let mut notifications = client.notifications().expect("the stream");
    let phone = Simulator::connect(options(&running));
    phone.connected(WAIT).await.expect("simulator connected");
    let text = hodi_sdk::wire::InboundMessageBody {
        entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text("slow".into())),
    };
    phone.receive_message("+254700009001", channel::sms("21356"), vec![text], None).await.expect("sent");
    let first = notifications.next_within(WAIT).await.expect("the SMS");
    let id = first.id.clone();
    // Held past the timeout and the retry (200 ms + 1 s): the server has sent it again by now.
    let redelivered = || running.hodi.notify_stats.redelivered.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + WAIT;
    while redelivered() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the server never sent it again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(notifications.next_within(Duration::from_millis(500)).await.is_none(), "the duplicate is not delivered");
    first.reply(Reply::default().with_app_data("handled")).await.expect("the answer is taken");
    let deadline = tokio::time::Instant::now() + WAIT;
    while running.hodi.store.outbox_len().await.expect("outbox") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{id} was never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing more arrives for it later either.
    while let Some(n) = notifications.next_within(Duration::from_millis(1500)).await {
        assert_ne!(n.id, id, "delivered twice");
    }
}

#[tokio::test]
async fn app_data_set_by_a_command_after_answering_is_not_undone_by_the_answer() {
    let (running, _dir) = common::inproc::start().await;
    let client = Elarian::connect(options(&running));
    client.connected(WAIT).await.expect("connected");
    let mut notifications = client.notifications().expect("the stream");
    let phone = hodi_simulator::Phone::connect(options(&running), "+254700200011").await.expect("phone");
    let customer = client.customer("+254700200011");
    // A race on each round (which write reaches the store last); 80 rounds catch the old
    // behaviour most times, and must all pass with the fix.
    for round in 0..80 {
        phone.send_sms("21356", &format!("text {round}")).await.expect("sent");
        let n = notifications.next_within(WAIT).await.expect("the SMS");
        // The answer says one thing; the command the app sends right after it says another.
        n.reply(Reply::default().with_app_data(format!("answer {round}"))).await.expect("answer taken");
        customer.update_app_data(format!("command {round}")).await.expect("updated");
        // The answer's update is recorded with its batch, after the command's: it must yield.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let store = &running.hodi.store;
        let id = customer.id().await.expect("customer id");
        let value = store.app_data(&running.dev.as_ref().expect("dev").app_id, &id).await.expect("store");
        assert_eq!(
            value,
            Some(hodi::store::app_data::AppDataValue::Text(format!("command {round}"))),
            "round {round}: the later command's app data was overwritten by the earlier answer"
        );
    }
}

#[tokio::test]
async fn hodi_sdk_connects_over_tls_and_wss_trusting_the_dev_certificate_and_refuses_an_untrusted_one() {
    let (running, _dir) = common::inproc::start_with(|c| c.listen.wss = "127.0.0.1:0".into()).await;
    let dev = running.dev.as_ref().expect("dev tenant");
    let creds = || Credentials::ApiKey(dev.api_key.clone());
    let tls = format!("localhost:{}", running.bound.tls.expect("tls listener").port());
    let wss = format!("wss://localhost:{}/", running.bound.wss.expect("wss listener").port());
    let trust = hodi_sdk::Trust::pem_file(&running.certificate.cert).expect("the dev certificate");

    for endpoint in [
        Endpoint::Tls(tls.clone()),
        Endpoint::SecureWebSocket(wss.clone()),
        Endpoint::parse(&format!("tls://{tls}")).expect("parsed"),
    ] {
        let mut options = Options::new(endpoint.clone(), &dev.org_id, &dev.app_id, creds());
        options.trust = trust.clone();
        let client = Elarian::connect(options);
        client.connected(WAIT).await.unwrap_or_else(|e| panic!("{endpoint:?}: {e}"));
        let state = client.customer("+254700200021").get_state().await.expect("a command over TLS");
        assert!(state.customer_id.starts_with("cst_"), "{endpoint:?}");
        // The phone too: a simulator over TLS.
        let mut phone_options = Options::new(endpoint.clone(), &dev.org_id, &dev.app_id, creds());
        phone_options.trust = trust.clone();
        let phone = hodi_simulator::Phone::connect(phone_options, "+254700200021").await.expect("phone over TLS");
        phone.send_sms("21356", "over tls").await.expect("texted over TLS");
    }

    // The public roots do not vouch for a self-signed certificate: the client says why, and keeps
    // trying (a certificate can be fixed) rather than connecting.
    let client = Elarian::connect(Options::new(Endpoint::Tls(tls), &dev.org_id, &dev.app_id, creds()));
    let why = first_error(&client).await;
    assert!(why.contains("certificate") || why.contains("UnknownIssuer"), "{why}");
    assert!(client.connected(Duration::from_millis(300)).await.is_err(), "connected without trusting the server");
    // A PEM with no certificate in it is refused up front.
    let empty = hodi_sdk::Trust::Pem(b"not a certificate".to_vec());
    let mut options = Options::new(Endpoint::SecureWebSocket(wss), &dev.org_id, &dev.app_id, creds());
    options.trust = empty;
    let client = Elarian::connect(options);
    let why = first_error(&client).await;
    assert!(why.contains("holds no certificate"), "{why}");
}

/// The next connection error the client reports (it keeps retrying).
async fn first_error(client: &Elarian) -> String {
    let mut events = client.events();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ConnectionEvent::Error(e)) = events.recv().await {
                return e.to_string();
            }
        }
    })
    .await
    .expect("a connection error")
}
