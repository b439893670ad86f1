//! The web console in real Chromium: `hodi serve`, the debt-collection example app (hodi-sdk,
//! sdk/examples/debt_collection) as the org's app, and tests/peers/console_browser.js driving
//! Debian's chromium through playwright-core — log in, two customers played from the browser
//! phone (SMS, reply, checkout; call, keypad, declined checkout; a real call with audio over
//! WebRTC, hung up), the dashboard, customer and
//! calls pages, another org seeing none of it, a revoked key logged out. Screenshots of each page
//! land in target/console-screenshots/.

mod common;

#[path = "../sdk/examples/debt_collection/app.rs"]
mod app;

use std::time::Duration;

use common::Hodi;
use hodi_sdk::{Credentials, Elarian, Endpoint, Options};

const WAIT: Duration = Duration::from_secs(20);
/// The whole browser run.
const RUN: Duration = Duration::from_secs(180);

/// `hodi <args>` against the server's store; its stdout.
fn cli(hodi: &Hodi, args: &[&str]) -> String {
    let out = hodi.cli().args(args).output().expect("running hodi");
    assert!(out.status.success(), "hodi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A second org with an app and a key: (org id, API key, key id).
fn other_org(hodi: &Hodi) -> (String, String, String) {
    let org = "org-elsewhere";
    cli(hodi, &["provision", "org", "--name", "Elsewhere", "--id", org]);
    cli(hodi, &["provision", "app", "--org", org, "--name", "theirs"]);
    let created = cli(hodi, &["provision", "api-key", "--org", org]);
    let key_id = created
        .lines()
        .find_map(|l| l.strip_prefix("created API key ").and_then(|r| r.split_whitespace().next()))
        .expect("key id");
    let key = created.lines().find_map(|l| l.strip_prefix("apiKey ")).expect("key");
    (org.to_string(), key.trim().to_string(), key_id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_its_browser_phone_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let creds = hodi.creds.clone();
    let http = hodi.listening.http.clone().expect("http listener");
    assert!(hodi.stdout.contains(&format!("http://{http}/console")), "the banner names the console: {}", hodi.stdout);
    let (org2, key2, key2_id) = other_org(&hodi);

    let tcp = hodi.listening.tcp.clone().expect("tcp listener");
    let client = Elarian::connect(Options::new(
        Endpoint::Tcp(tcp),
        &creds.org_id,
        &creds.app_id,
        Credentials::ApiKey(creds.api_key.clone()),
    ));
    client.connected(WAIT).await.expect("app connected");
    let settings = app::Settings {
        sms: "21356".into(),
        voice: "+254711082000".into(),
        paybill: "525900".into(),
        purse_id: creds.purse_id.clone(),
        currency: "KES".into(),
        // Long enough that the paying customer has answered before it, short for the other.
        follow_up: Duration::from_secs(6),
    };
    app::start(&client, settings).expect("handlers registered");

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let shots = shots.to_string_lossy().into_owned();
    let env = [
        ("HODI_PAYER", "+254700200001"),
        ("HODI_IGNORER", "+254700200002"),
        ("HODI_ORG2", org2.as_str()),
        ("HODI_KEY2", key2.as_str()),
        ("HODI_KEY2_ID", key2_id.as_str()),
        ("HODI_SCREENSHOTS", shots.as_str()),
    ];
    let mut node = common::Talking::spawn(hodi.node_command("console_browser.js", &[], &env));
    let deadline = tokio::time::Instant::now() + RUN;
    let mut done = false;
    while let Some(line) = node.next_line(deadline).await {
        if let Some(number) = line.strip_prefix("READY pays ").or_else(|| line.strip_prefix("READY ignores ")) {
            app::enroll(&client, number, 500.0, Duration::from_millis(200)).await.expect("enrolled");
        } else if line == "DONE" {
            done = true;
        }
    }
    let (ok, output) = node.finish().await;
    assert!(
        done && ok,
        "the browser run did not finish\n{output}\n--- hodi stderr\n{}",
        hodi.stderr().lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    for page in [
        "login-refused",
        "phone-sms-checkout",
        "phone-call-keypad",
        "phone-call-audio",
        "dashboard",
        "customer",
        "calls",
    ] {
        let file = std::path::Path::new(&shots).join(format!("{page}.png"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot of {page} at {}", file.display());
    }

    // What the browser did is in the store as the app saw it.
    let state = cli(&hodi, &["customer", "+254700200001", "--org", &creds.org_id, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&state).expect("JSON");
    let texts: Vec<&str> =
        json["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"OK"), "the reply typed in the browser: {texts:?}");
    assert_eq!(json["payments"][0]["status"], "success", "{json}");
}
