//! Customer-state rules as tables, through real sockets on an in-process server: lease contention
//! between two sockets, expiry, adoption merges, by-tag work over thousands of customers, and the
//! notification pipeline's order, failover and time to live.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::inproc::{command, connect, connect_phone, connect_with, dev_meta, inbound_sms, start, start_with};
use hodi::store::identity::Index;
use hodi::wire::app_to_server_command::Entry as Cmd;
use hodi::wire::app_to_server_command_reply::Entry as Reply;
use hodi::wire::*;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Requester, Responder};
use prost::Message;
use tokio::sync::mpsc;

fn number(n: &str) -> CustomerNumber {
    CustomerNumber { provider: CustomerNumberProvider::Cellular as i32, number: n.into(), partition: None }
}

async fn customer_id(client: &Requester, n: &str) -> String {
    let Reply::UpdateCustomerState(r) =
        command(client, Cmd::CreateCustomer(CreateCustomerCommand { customer_number: Some(number(n)) })).await
    else {
        panic!("create")
    };
    r.customer_id.expect("id")
}

async fn state(client: &Requester, id: &str) -> GetCustomerStateReply {
    let cmd = Cmd::GetCustomerState(GetCustomerStateCommand {
        customer: Some(get_customer_state_command::Customer::CustomerId(id.into())),
    });
    let Reply::GetCustomerState(r) = command(client, cmd).await else { panic!("state") };
    r
}

fn index(key: &str, value: &str, expires_in_secs: Option<i64>) -> CustomerIndex {
    CustomerIndex {
        mapping: Some(IndexMapping { key: key.into(), value: Some(value.into()) }),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires_in_secs.map(|s| hodi::store::now_ms() / 1000 + s).unwrap_or(0),
            nanos: 0,
        }),
    }
}

fn text(s: &str) -> DataMapValue {
    DataMapValue { value: Some(data_map_value::Value::StringVal(s.into())) }
}

#[tokio::test]
async fn a_lease_ends_when_the_socket_that_took_it_closes() {
    // A long lease, and a competitor willing to wait: it gets the lease as soon as A is gone.
    let (running, _dir) = start_with(|c| {
        c.customer.lease_secs = 60;
        c.customer.lease_wait_ms = 5_000;
    })
    .await;
    let a = connect(&running, dev_meta(&running)).await;
    let b = connect(&running, dev_meta(&running)).await;
    let id = customer_id(&a, "+254722000002").await;
    let lease = |c: &Requester| {
        let cmd = Cmd::LeaseCustomerAppData(LeaseCustomerAppDataCommand {
            customer: Some(lease_customer_app_data_command::Customer::CustomerId(id.clone())),
        });
        let c = c.clone();
        async move {
            let Reply::LeaseCustomerAppData(r) = command(&c, cmd).await else { panic!("lease") };
            r
        }
    };
    assert!(lease(&a).await.status, "A takes the lease");
    a.close();
    // B waits at most 5 s; A's lease had 60 s to run.
    let got = lease(&b).await;
    assert!(got.status, "B gets the lease A's closed socket held: {got:?}");
}

#[tokio::test]
async fn a_lease_holds_off_other_sockets_until_released_or_expired() {
    let (running, _dir) = start_with(|c| {
        c.customer.lease_secs = 1;
        c.customer.lease_wait_ms = 200;
    })
    .await;
    let a = connect(&running, dev_meta(&running)).await;
    let b = connect(&running, dev_meta(&running)).await;
    let id = customer_id(&a, "+254722000001").await;
    let who = || Some(lease_customer_app_data_command::Customer::CustomerId(id.clone()));
    let lease = |c: &Requester| {
        let c = c.clone();
        let cmd = Cmd::LeaseCustomerAppData(LeaseCustomerAppDataCommand { customer: who() });
        async move {
            let Reply::LeaseCustomerAppData(r) = command(&c, cmd).await else { panic!("lease") };
            r
        }
    };
    let update = |c: &Requester, v: &str| {
        let c = c.clone();
        let cmd = Cmd::UpdateCustomerAppData(UpdateCustomerAppDataCommand {
            customer: Some(update_customer_app_data_command::Customer::CustomerId(id.clone())),
            update: Some(text(v)),
        });
        async move {
            let Reply::UpdateCustomerAppData(r) = command(&c, cmd).await else { panic!("update") };
            r
        }
    };

    // (who, action, expected status, expected value or description fragment)
    assert!(lease(&a).await.status, "A takes the lease");
    let refused = lease(&b).await;
    assert!(!refused.status && refused.description.contains("leased by another connection"), "{refused:?}");
    let blocked = update(&b, "from-b").await;
    assert!(!blocked.status && blocked.description.contains("leased"), "B cannot write under A's lease");
    assert!(update(&a, "from-a").await.status, "A writes and releases");
    let got = lease(&b).await;
    assert!(got.status);
    assert_eq!(got.value, Some(text("from-a")));
    // B's lease lapses after lease_secs without release; A can then take it.
    assert!(!lease(&a).await.status);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(lease(&a).await.status, "an expired lease no longer holds");
}

#[tokio::test]
async fn tags_and_secondary_ids_expire_and_free_their_index() {
    let (running, _dir) = start().await;
    let app = connect(&running, dev_meta(&running)).await;
    let ada = customer_id(&app, "+254722000010").await;
    let bob = customer_id(&app, "+254722000011").await;
    let tags = Cmd::UpdateCustomerTag(UpdateCustomerTagCommand {
        customer: Some(update_customer_tag_command::Customer::CustomerId(ada.clone())),
        updates: vec![index("forever", "1", None), index("short", "1", Some(1)), index("long", "1", Some(30))],
    });
    assert!(matches!(command(&app, tags).await, Reply::UpdateCustomerState(r) if r.status));
    let ids = Cmd::UpdateCustomerSecondaryId(UpdateCustomerSecondaryIdCommand {
        customer: Some(update_customer_secondary_id_command::Customer::CustomerId(ada.clone())),
        updates: vec![index("badge", "42", Some(1))],
    });
    assert!(matches!(command(&app, ids).await, Reply::UpdateCustomerState(r) if r.status));
    let take = |customer: &str| {
        Cmd::UpdateCustomerSecondaryId(UpdateCustomerSecondaryIdCommand {
            customer: Some(update_customer_secondary_id_command::Customer::CustomerId(customer.to_string())),
            updates: vec![index("badge", "42", None)],
        })
    };
    let Reply::UpdateCustomerState(r) = command(&app, take(&bob)).await else { panic!() };
    assert!(!r.status && r.description.contains("belongs to another customer"), "{r:?}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let identity = state(&app, &ada).await.data.expect("data").identity_state.expect("identity");
    let keys: Vec<_> = identity.tags.iter().map(|t| t.mapping.as_ref().expect("m").key.clone()).collect();
    assert_eq!(keys, vec!["forever", "long"]);
    assert!(identity.secondary_ids.is_empty());
    let Reply::UpdateCustomerState(r) = command(&app, take(&bob)).await else { panic!() };
    assert!(r.status, "an expired secondary id can be taken by another customer: {r:?}");
    // The sweep deletes what reads already hid.
    assert!(running.hodi.store.sweep_expired().await.expect("sweep") >= 1);
}

#[tokio::test]
async fn adoption_merges_with_the_adopters_values_winning() {
    let (running, _dir) = start().await;
    let app = connect(&running, dev_meta(&running)).await;
    let store = &running.hodi.store;
    let org = &running.dev.as_ref().expect("dev").org_id;
    let app_id = &running.dev.as_ref().expect("dev").app_id;
    let keeper = customer_id(&app, "+254722000020").await;
    let other = customer_id(&app, "+254722000021").await;
    let tag = |k: &str, v: &str| Index { key: k.into(), value: v.into(), expires_at: None };
    store.upsert_tags(org, &keeper, &[tag("tier", "gold"), tag("k-only", "1")]).await.expect("tags");
    store.upsert_tags(org, &other, &[tag("tier", "bronze"), tag("o-only", "1")]).await.expect("tags");
    use hodi::store::identity::MetaValue::Text;
    store.upsert_metadata(&keeper, &[("name".into(), Text("Keeper".into()))]).await.expect("meta");
    store
        .upsert_metadata(&other, &[("name".into(), Text("Other".into())), ("city".into(), Text("Mombasa".into()))])
        .await
        .expect("meta");
    assert!(store.upsert_secondary_ids(org, &other, &[tag("email", "o@x")]).await.expect("ids").is_ok());
    let reminder = |c: &str, key: &str, payload: &str| hodi::store::reminders::StoredReminder {
        org_id: org.clone(),
        app_id: app_id.clone(),
        customer_id: c.into(),
        key: key.into(),
        remind_at: hodi::store::now_ms() + 3_600_000,
        interval_secs: None,
        payload: Some(payload.into()),
        tag: None,
        work_id: None,
    };
    store.upsert_reminder(&reminder(&keeper, "both", "keeper's")).await.expect("r");
    store.upsert_reminder(&reminder(&other, "both", "other's")).await.expect("r");
    store.upsert_reminder(&reminder(&other, "o-only", "other's")).await.expect("r");

    let adopt = Cmd::AdoptCustomerState(AdoptCustomerStateCommand {
        customer_id: keeper.clone(),
        other_customer: Some(adopt_customer_state_command::OtherCustomer::OtherCustomerNumber(number("+254722000021"))),
    });
    let Reply::UpdateCustomerState(r) = command(&app, adopt.clone()).await else { panic!() };
    assert!(r.status, "{r:?}");

    let data = state(&app, &keeper).await.data.expect("data");
    let identity = data.identity_state.expect("identity");
    let tags: Vec<(String, String)> = identity
        .tags
        .iter()
        .map(|t| {
            (
                t.mapping.as_ref().expect("m").key.clone(),
                t.mapping.as_ref().expect("m").value.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![("k-only".into(), "1".into()), ("o-only".into(), "1".into()), ("tier".into(), "gold".into())]
    );
    assert_eq!(identity.metadata["name"], text("Keeper"));
    assert_eq!(identity.metadata["city"], text("Mombasa"));
    assert_eq!(identity.secondary_ids.len(), 1);
    let numbers: Vec<_> =
        data.activity_state.expect("activity").customer_numbers.iter().map(|n| n.number.clone()).collect();
    assert_eq!(numbers, vec!["+254722000020", "+254722000021"]);
    assert_eq!(store.count_reminders().await.expect("count"), 2, "keeper's 'both' and other's 'o-only'");

    // The other id is decommissioned; its number and secondary id now find the keeper.
    let r = state(&app, &other).await;
    assert!(!r.status && r.description.contains("decommissioned"), "{r:?}");
    let Reply::GetCustomerState(r) = command(
        &app,
        Cmd::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerNumber(number("+254722000021"))),
        }),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(r.data.expect("data").customer_id, keeper);
    // Adopting again, or adopting oneself, is refused.
    let Reply::UpdateCustomerState(r) = command(
        &app,
        Cmd::AdoptCustomerState(AdoptCustomerStateCommand {
            customer_id: keeper.clone(),
            other_customer: Some(adopt_customer_state_command::OtherCustomer::OtherCustomerId(other.clone())),
        }),
    )
    .await
    else {
        panic!()
    };
    assert!(!r.status && r.description.contains("decommissioned"), "{r:?}");
    let Reply::UpdateCustomerState(r) = command(
        &app,
        Cmd::AdoptCustomerState(AdoptCustomerStateCommand {
            customer_id: keeper.clone(),
            other_customer: Some(adopt_customer_state_command::OtherCustomer::OtherCustomerId(keeper.clone())),
        }),
    )
    .await
    else {
        panic!()
    };
    assert!(!r.status && r.description.contains("itself"));
}

#[tokio::test]
async fn by_tag_reminders_reach_exactly_the_customers_tagged_at_the_time() {
    let (running, _dir) = start().await;
    let app = connect(&running, dev_meta(&running)).await;
    let store = &running.hodi.store;
    let org = running.dev.as_ref().expect("dev").org_id.clone();
    let tagged = 3_000;
    let mut expected = Vec::new();
    for i in 0..tagged + 500 {
        let n = hodi::store::customers::StoredNumber {
            provider: 2,
            number: format!("+2547330{i:05}"),
            partition: String::new(),
        };
        let (c, _) = store.customer_by_number(&org, &n).await.expect("customer");
        let tag = match i {
            i if i < tagged => Index { key: "segment".into(), value: "a".into(), expires_at: None },
            i if i < tagged + 250 => Index { key: "segment".into(), value: "b".into(), expires_at: None },
            _ => Index { key: "segment".into(), value: "a".into(), expires_at: Some(hodi::store::now_ms() - 1) },
        };
        store.upsert_tags(&org, &c.id, &[tag]).await.expect("tag");
        if i < tagged {
            expected.push(c.id);
        }
    }
    let add = Cmd::AddCustomerReminderTag(AddCustomerReminderTagCommand {
        tag: Some(IndexMapping { key: "segment".into(), value: Some("a".into()) }),
        reminder: Some(CustomerReminder {
            key: "campaign".into(),
            remind_at: Some(prost_types::Timestamp { seconds: hodi::store::now_ms() / 1000 + 3600, nanos: 0 }),
            interval: None,
            payload: Some("hello".into()),
        }),
    });
    let started = Instant::now();
    let Reply::TagCommand(r) = command(&app, add).await else { panic!() };
    assert!(r.status, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "the reply must not wait for the work");
    let work_id = r.work_id.expect("work id");
    let work = wait_for_work(&running, &work_id).await;
    assert_eq!((work.state.as_str(), work.customers), ("done", tagged as i64));
    assert_eq!(store.count_reminders().await.expect("count"), tagged as i64);
    let due = store.due_reminders(i64::MAX, 10_000).await.expect("due");
    let mut got: Vec<_> = due.iter().map(|r| r.customer_id.clone()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(due
        .iter()
        .all(|r| r.work_id.as_deref() == Some(work_id.as_str()) && r.tag == Some(("segment".into(), "a".into()))));

    let cancel = Cmd::CancelCustomerReminderTag(CancelCustomerReminderTagCommand {
        tag: Some(IndexMapping { key: "segment".into(), value: Some("a".into()) }),
        key: "campaign".into(),
    });
    let Reply::TagCommand(r) = command(&app, cancel).await else { panic!() };
    wait_for_work(&running, &r.work_id.expect("work id")).await;
    assert_eq!(store.count_reminders().await.expect("count"), 0);
}

async fn wait_for_work(running: &hodi::server::Running, id: &str) -> hodi::store::work::WorkRecord {
    let started = Instant::now();
    loop {
        let work = running.hodi.store.work(id).await.expect("work").expect("recorded");
        if work.state != "running" {
            return work;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "work {id} did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records every notification (its id and activity key) and answers after `delay`, or never.
struct Recorder {
    seen: mpsc::Sender<(String, String)>,
    delay: Option<Duration>,
}

impl Responder for Recorder {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let seen = self.seen.clone();
        let delay = self.delay;
        Box::pin(async move {
            let id = payload.metadata.as_ref().map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_default();
            let n = ServerToAppNotification::decode(payload.data).expect("a ServerToAppNotification");
            let Some(server_to_app_notification::Entry::Customer(c)) = n.entry else { panic!("customer notification") };
            let key = match c.entry {
                Some(server_to_app_customer_notification::Entry::CustomerActivity(a)) => {
                    a.activity.expect("activity").key
                }
                other => format!("{other:?}"),
            };
            let _ = seen.send((id, key)).await;
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            Ok(Payload::new(ServerToAppNotificationReply::default().encode_to_vec()))
        })
    }
}

fn activity(n: &str, key: &str) -> Cmd {
    Cmd::CustomerActivity(CustomerActivityCommand {
        customer_number: Some(number(n)),
        source: "test".into(),
        session_id: "s".into(),
        key: key.into(),
        properties: Default::default(),
    })
}

async fn recv(rx: &mut mpsc::Receiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a notification in time").expect("open")
}

#[tokio::test]
async fn notifications_keep_per_customer_order_and_fail_over_to_a_live_socket() {
    // A window of 1: strict order, the next notification waits for the answer to the last.
    let (running, _dir) = start_with(|c| {
        c.notify.reply_timeout_ms = 300;
        c.notify.per_customer_window = 1;
    })
    .await;
    let (tx, mut rx) = mpsc::channel(100);
    // A socket that never answers: every delivery to it times out and must go elsewhere.
    let stuck = connect_with(&running, dev_meta(&running), Arc::new(Recorder { seen: tx.clone(), delay: None })).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    for key in ["one", "two", "three"] {
        assert!(
            matches!(command(&commands, activity("+254722000040", key)).await, Reply::CustomerActivity(r) if r.status)
        );
    }
    // The stuck socket sees "one" and never answers; nothing else may overtake it.
    let (first_id, first) = recv(&mut rx).await;
    assert_eq!(first, "one");
    assert!(first_id.contains("\"notificationId\":\"ntf_"), "{first_id}");
    let good = connect_with(
        &running,
        dev_meta(&running),
        Arc::new(Recorder { seen: tx.clone(), delay: Some(Duration::ZERO) }),
    )
    .await;
    let mut order = Vec::new();
    let mut ids = Vec::new();
    while order.last().map(String::as_str) != Some("three") {
        let (id, key) = recv(&mut rx).await;
        if key == "one" {
            assert_eq!(id, first_id, "a redelivery carries the same id");
        }
        ids.push(id);
        order.push(key);
    }
    order.dedup();
    assert_eq!(order, vec!["one", "two", "three"], "per-customer order across redelivery");
    let started = Instant::now();
    while running.hodi.store.outbox_len().await.expect("len") > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "answered notifications must leave the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((stuck, good));
}

#[tokio::test]
async fn notifications_wait_for_an_app_and_expire_after_their_ttl() {
    let (running, _dir) = start_with(|c| c.notify.ttl_secs = 2).await;
    let commands = connect(&running, AppConnectionMetadata { simplex_mode: true, ..dev_meta(&running) }).await;
    assert!(
        matches!(command(&commands, activity("+254722000050", "early")).await, Reply::CustomerActivity(r) if r.status)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running.hodi.store.outbox_len().await.expect("len"), 1, "waits: no app socket takes notifications");
    let (tx, mut rx) = mpsc::channel(10);
    let app =
        connect_with(&running, dev_meta(&running), Arc::new(Recorder { seen: tx, delay: Some(Duration::ZERO) })).await;
    assert_eq!(recv(&mut rx).await.1, "early");
    drop(app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(command(&commands, activity("+254722000050", "late")).await, Reply::CustomerActivity(r) if r.status)
    );
    // No app for longer than the TTL: the dispatcher drops it (checked every 10 s).
    let started = Instant::now();
    while running.hodi.store.outbox_len().await.expect("len") > 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the notification should have expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers every notification with an app-data update and an outbound SMS text.
struct Replier;
impl Responder for Replier {
    fn request_response(&self, _payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        Box::pin(async move {
            let reply = ServerToAppNotificationReply {
                data_update: Some(AppDataUpdate { data: Some(text("replied")) }),
                message: Some(OutboundMessage {
                    body: Some(OutboundMessageBody {
                        entry: Some(outbound_message_body::Entry::Text("thanks".into())),
                    }),
                    ..Default::default()
                }),
            };
            Ok(Payload::new(reply.encode_to_vec()))
        })
    }
}

#[tokio::test]
async fn a_notification_reply_updates_app_data_and_its_message_reaches_the_customer() {
    let (running, _dir) = start().await;
    let _app = connect_with(&running, dev_meta(&running), Arc::new(Replier)).await;
    let (phone, mut phone_rx) = connect_phone(&running).await;
    let sms = inbound_sms("+254722000060", "hello");
    let reply = phone.request_response(Payload::new(sms.encode_to_vec())).await.expect("reply");
    let reply = SimulatorToServerCommandReply::decode(reply.data).expect("reply");
    assert!(reply.status, "{reply:?}");
    // The app's answer ("thanks") comes back to the phone as a send_message on the same channel.
    let sent = tokio::time::timeout(Duration::from_secs(10), phone_rx.recv()).await.expect("in time").expect("open");
    let Some(server_to_simulator_notification::Entry::SendMessage(m)) = sent.entry else { panic!("{sent:?}") };
    assert_eq!(m.customer_number.as_ref().map(|n| n.number.as_str()), Some("+254722000060"));
    assert_eq!(m.channel_number.as_ref().map(|c| c.number.as_str()), Some("21356"));
    assert_eq!(
        m.message.and_then(|m| m.body).and_then(|b| b.entry),
        Some(outbound_message_body::Entry::Text("thanks".into()))
    );
    let id = m.customer_id;
    let app_id = &running.dev.as_ref().expect("dev").app_id;
    assert_eq!(
        running.hodi.store.app_data(app_id, &id).await.expect("app data"),
        Some(hodi::store::app_data::AppDataValue::Text("replied".into()))
    );
}
