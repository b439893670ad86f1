//! `hodi outbox` and `hodi work` against a running server's store: what waits for an app that is
//! not connected (count, age, retries, last error), and by-tag work with its progress, as a
//! table and as JSON.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Hodi;
use hodi_sdk::model::{channel, Reminder, Tag};
use hodi_sdk::{Credentials, Elarian, Endpoint, Options, Simulator};

const WAIT: Duration = Duration::from_secs(20);

fn run(hodi: &Hodi, args: &[&str]) -> String {
    let out = hodi.cli().args(args).output().expect("running hodi");
    assert!(out.status.success(), "hodi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn options(hodi: &Hodi) -> Options {
    let c = &hodi.creds;
    Options::new(
        Endpoint::Tcp(hodi.listening.tcp.clone().expect("tcp")),
        &c.org_id,
        &c.app_id,
        Credentials::ApiKey(c.api_key.clone()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_and_work_show_what_waits_and_how_far_by_tag_work_got() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    assert_eq!(run(&hodi, &["outbox"]).trim(), "no notifications waiting");
    assert_eq!(run(&hodi, &["work"]).trim(), "no by-tag work yet");

    // Three texts to an app with no socket: they wait.
    let phone = Simulator::connect(options(&hodi));
    phone.connected(WAIT).await.expect("phone connected");
    for i in 0..3 {
        let text = vec![hodi_sdk::wire::InboundMessageBody {
            entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(format!("t{i}"))),
        }];
        phone.receive_message("+254700666001", channel::sms("21356"), text, None).await.expect("texted");
    }
    let table = run(&hodi, &["outbox"]);
    let line = table.lines().find(|l| l.starts_with(&hodi.creds.app_id)).unwrap_or_else(|| panic!("{table}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((columns[1], columns[4], columns[5]), ("3", "0", "-"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&run(&hodi, &["outbox", "--json"])).expect("JSON");
    assert_eq!(json[0]["app_id"], hodi.creds.app_id.as_str());
    assert_eq!((json[0]["depth"].as_i64(), json[0]["retrying"].as_i64()), (Some(3), Some(0)), "{json}");
    assert!(json[0]["last_error"].is_null(), "{json}");

    // By-tag work over 30,000 customers, by an app that takes no notifications.
    let store = hodi.store().await;
    common::tagged::seed(&store, &hodi.creds.org_id, "insp", 30_000, ("wave", "one"), 254_740_000_000).await;
    let mut simplex = options(&hodi);
    simplex.simplex = true;
    let app = Elarian::connect(simplex);
    app.connected(WAIT).await.expect("app connected");
    let reminder = Reminder {
        key: "renew".into(),
        remind_at: SystemTime::now() + Duration::from_secs(3600),
        interval: None,
        payload: None,
    };
    let work = app.add_customer_reminder_by_tag(Tag::new("wave", "one"), reminder).await.expect("work started");
    let work_id = work.work_id.expect("work id");
    let started = Instant::now();
    let done = loop {
        let json: serde_json::Value = serde_json::from_str(&run(&hodi, &["work", "--json"])).expect("JSON");
        let w = json.as_array().and_then(|a| a.iter().find(|w| w["id"] == work_id.as_str()).cloned()).expect("listed");
        if w["state"] == "running" {
            assert_eq!(w["tagged_now"].as_i64(), Some(30_000), "progress is against the tagged customers: {w}");
        } else {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not done in 120 s: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((done["state"].as_str(), done["customers"].as_i64()), (Some("done"), Some(30_000)), "{done}");
    assert_eq!(
        (done["kind"].as_str(), done["tag"][0].as_str(), done["tag"][1].as_str()),
        (Some("add_reminder_by_tag"), Some("wave"), Some("one"))
    );
    let lines = run(&hodi, &["work"]);
    let line = lines.lines().find(|l| l.starts_with(&work_id)).unwrap_or_else(|| panic!("{lines}"));
    assert!(
        line.contains("add_reminder_by_tag")
            && line.contains("done")
            && line.contains("wave=one")
            && line.contains("30000 customers"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_and_a_revoked_key_is_refused_and_currencies_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let org = hodi.creds.org_id.clone();
    let made = run(&hodi, &["provision", "api-key", "--org", &org]);
    let id = made.split_whitespace().find(|w| w.starts_with("key_")).expect("a key id").to_string();
    let key = made.lines().find_map(|l| l.strip_prefix("apiKey ")).expect("the key").trim().to_string();
    let listed = run(&hodi, &["keys", "list", "--org", &org]);
    assert_eq!(listed.lines().filter(|l| l.ends_with("active")).count(), 2, "{listed}");
    assert!(!listed.contains(&key), "the key itself is never shown: {listed}");

    let with_key = |key: &str| {
        let mut o = options(&hodi);
        o.credentials = Credentials::ApiKey(key.to_string());
        Elarian::connect(o)
    };
    with_key(&key).connected(WAIT).await.expect("the new key lets an app in");
    let revoked = run(&hodi, &["keys", "revoke", &id]);
    assert!(revoked.contains(&format!("revoked API key {id}")), "{revoked}");
    let refused = with_key(&key);
    assert!(refused.connected(Duration::from_secs(5)).await.is_err(), "a revoked key let an app in");
    with_key(&hodi.creds.api_key).connected(WAIT).await.expect("the other key still works");
    let listed = run(&hodi, &["keys", "list", "--org", &org]);
    let line = listed.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(line.contains("revoked"), "{listed}");
    let again = hodi.cli().args(["keys", "revoke", &id]).output().expect("hodi");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("no active API key"));
    let unknown = hodi.cli().args(["keys", "list", "--org", "org_nope"]).output().expect("hodi");
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("unknown org"));

    // The org at a glance: its apps and numbers, each with the way out it uses.
    run(&hodi, &["provision", "app", "--org", &org, "--name", "Collections"]);
    let glance = run(&hodi, &["org", "--org", &org]);
    assert!(glance.starts_with(&format!("org {org}: 2 app(s), ")), "{glance}");
    assert!(glance.contains(&format!("app {}", hodi.creds.app_id)) && glance.contains("Collections"), "{glance}");
    let sms =
        glance.lines().find(|l| l.trim_start().starts_with("sms") && l.contains("21356")).expect("the dev SMS code");
    assert!(sms.ends_with("via simulator"), "{glance}");

    let xyz = hodi.cli().args(["provision", "purse", "--org", &org, "--currency", "XYZ"]).output().expect("hodi");
    assert!(!xyz.status.success(), "XYZ was taken as a currency");
    assert!(String::from_utf8_lossy(&xyz.stderr).contains("not an ISO 4217 currency"), "{xyz:?}");
    assert!(run(&hodi, &["provision", "purse", "--org", &org, "--currency", "UGX"]).contains("created purse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_shows_the_state_an_app_sees_by_number_or_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let org = hodi.creds.org_id.clone();
    let number = "+254700666101";

    let phone = Simulator::connect(options(&hodi));
    phone.connected(WAIT).await.expect("phone connected");
    let text = vec![hodi_sdk::wire::InboundMessageBody {
        entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text("balance please".into())),
    }];
    phone.receive_message(number, channel::sms("21356"), text, None).await.expect("texted");
    let mut simplex = options(&hodi);
    simplex.simplex = true;
    let app = Elarian::connect(simplex);
    app.connected(WAIT).await.expect("app connected");
    let customer = app.customer(number);
    customer.update_tags(&[Tag::new("plan", "gold")]).await.expect("tagged");
    customer
        .send_message(channel::sms("21356"), hodi_sdk::model::message::text("You owe KES 500"))
        .await
        .expect("sent");
    let id = customer.id().await.expect("customer id");

    let json: serde_json::Value =
        serde_json::from_str(&run(&hodi, &["customer", number, "--org", &org, "--json"])).expect("JSON");
    assert_eq!(json["customer_id"], id.as_str(), "{json}");
    assert_eq!(json["numbers"][0], number, "{json}");
    assert_eq!((json["tags"][0][0].as_str(), json["tags"][0][1].as_str()), (Some("plan"), Some("gold")), "{json}");
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{json}");
    assert_eq!((messages[0]["direction"].as_str(), messages[0]["text"].as_str()), (Some("in"), Some("balance please")));
    assert_eq!(
        (messages[1]["direction"].as_str(), messages[1]["text"].as_str()),
        (Some("out"), Some("You owe KES 500"))
    );
    assert_eq!(messages[1]["channel"], "sms");

    // By id, as text: the same customer.
    let text = run(&hodi, &["customer", &id, "--org", &org]);
    assert!(text.starts_with(&format!("customer {id}")), "{text}");
    assert!(
        text.contains("plan=gold") && text.contains("You owe KES 500") && text.contains("balance please"),
        "{text}"
    );

    // Nobody by that number, or in another org: a clear error, and nothing created.
    for (who, in_org) in [("+254700666999", org.as_str()), (number, "no-such-org")] {
        let out = hodi.cli().args(["customer", who, "--org", in_org]).output().expect("running hodi");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("has no customer with id or number"), "{err}");
    }
    let store = hodi.store().await;
    assert!(store.find_customer(&org, "+254700666999").await.expect("store").is_none(), "looking created a customer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_channel_numbers_can_be_disabled_and_enabled_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let (org, app_id) = (hodi.creds.org_id.clone(), hodi.creds.app_id.clone());
    let text = |t: &str| {
        vec![hodi_sdk::wire::InboundMessageBody {
            entry: Some(hodi_sdk::wire::inbound_message_body::Entry::Text(t.into())),
        }]
    };
    let phone = Simulator::connect(options(&hodi));
    phone.connected(WAIT).await.expect("phone connected");
    let mut simplex = options(&hodi);
    simplex.simplex = true;
    let app = Elarian::connect(simplex.clone());
    app.connected(WAIT).await.expect("app connected");

    // A disabled number: the customer's text to it and the app's send from it are refused, saying why.
    let out = run(&hodi, &["number", "disable", "21356", "--org", &org, "--channel", "sms"]);
    assert!(out.contains("sms number 21356 of org"), "{out}");
    assert!(run(&hodi, &["org", "--org", &org]).lines().any(|l| l.contains("21356") && l.contains("(disabled)")));
    let err =
        phone.receive_message("+254700666201", channel::sms("21356"), text("hi"), None).await.expect_err("refused");
    assert!(err.to_string().contains("disabled"), "{err}");
    let sent = app
        .customer("+254700666201")
        .send_message(channel::sms("21356"), hodi_sdk::model::message::text("hello"))
        .await;
    assert!(sent.as_ref().is_err_and(|e| e.to_string().contains("disabled")), "{sent:?}");
    // Enabled again: both go through.
    run(&hodi, &["number", "enable", "21356", "--org", &org, "--channel", "sms"]);
    phone.receive_message("+254700666201", channel::sms("21356"), text("hi"), None).await.expect("accepted again");
    let unknown =
        hodi.cli().args(["number", "disable", "999", "--org", &org, "--channel", "sms"]).output().expect("ran");
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("has no sms number 999"));

    // A disabled app: its open sockets close within seconds and new SETUPs are refused, saying why.
    let mut events = app.events();
    run(&hodi, &["app", "disable", &app_id, "--org", &org]);
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(hodi_sdk::ConnectionEvent::Closed(why)) => return why,
                Ok(_) => continue,
                Err(e) => return format!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("the app's socket was closed");
    assert!(closed.contains("disabled"), "{closed}");
    let again = Elarian::connect(simplex.clone());
    let refused = again.connected(WAIT).await.expect_err("a disabled app's SETUP is refused");
    assert!(refused.to_string().contains("is disabled by the operator"), "{refused}");
    run(&hodi, &["app", "enable", &app_id, "--org", &org]);
    let back = Elarian::connect(simplex);
    back.connected(WAIT).await.expect("enabled again: connects");
}
