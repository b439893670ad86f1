//! The official Elarian JS SDK (npm elarian@0.2.25) against a freshly started `hodi serve`.

mod common;

use common::Hodi;

#[test]
fn sdk_over_tls_round_trips_commands_and_notifications() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    assert!(hodi.stdout.contains("apiKey"), "the banner shows the dev credentials:\n{}", hodi.stdout);
    assert!(hodi.stdout.contains(&hodi.creds.api_key));
    let out = hodi.node_ok("sdk_e2e.js", &["tls"], &[]);
    assert!(out.contains("\"ok\":true"), "{out}");
}

#[test]
fn sdk_browser_entry_over_websocket_with_auth_token_is_simplex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    hodi.node_ok("sdk_e2e.js", &["websocket"], &[]);
}

#[test]
fn wrong_api_key_gives_the_sdk_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["wrong-key"], &[]);
    assert!(out.contains("REJECTED_SETUP") && out.contains("authentication failed"), "{out}");
    assert!(hodi.stderr().contains("wrong API key for this org"), "the server log says why");
}

#[test]
fn expired_and_unknown_auth_tokens_are_refused_alike_and_logged_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let token = tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        let store = hodi.store().await;
        let token = store.issue_auth_token(&hodi.creds.org_id, &hodi.creds.app_id, 60).await.expect("token");
        store.set_auth_token_expiry(&token, hodi::store::now_ms() - 1000).await.expect("expire");
        token
    });
    hodi.node_ok(
        "sdk_e2e.js",
        &["bad-token"],
        &[("HODI_TOKEN", &token), ("HODI_EXPECT_ERROR", "authentication failed")],
    );
    hodi.node_ok(
        "sdk_e2e.js",
        &["bad-token"],
        &[("HODI_TOKEN", "hodi_tok_made_up"), ("HODI_EXPECT_ERROR", "authentication failed")],
    );
    // The app is told the same either way; the server log says which.
    let log = hodi.stderr();
    assert!(log.contains("auth token expired") && log.contains("unknown auth token"), "{log}");
}

#[test]
fn reminder_set_before_a_restart_fires_after_it_to_an_app_that_connects_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hodi = Hodi::start(dir.path(), &[]);
    hodi.node_ok("sdk_e2e.js", &["schedule"], &[("HODI_EXPECT_KEY", "survivor"), ("HODI_IN_SECONDS", "2")]);
    hodi.kill();
    // Due while the server is down and while no app is connected.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["queued"], &[("HODI_EXPECT_KEY", "survivor")]);
    assert!(out.contains("survivor"), "{out}");
}

#[test]
fn secure_websocket_carries_sdk_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["wss"], &[]);
    assert!(out.contains("cst_"), "{out}");
}

#[test]
fn every_customer_state_command_through_the_sdk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["customer-state"], &[]);
    assert!(out.contains("wrk_"), "{out}");
}

#[test]
fn messaging_through_the_sdk_elarian_and_simulator_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["messaging"], &[]);
    assert!(out.contains("\"ok\":true"), "{out}");
}

#[test]
fn every_chat_channel_both_ways_with_delivery_statuses_through_the_sdk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["channels"], &[]);
    assert!(out.contains("\"ok\":true"), "{out}");
}

#[test]
fn a_simulated_voice_call_is_driven_by_sdk_app_replies_through_get_digits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["voice"], &[]);
    assert!(out.contains("\"notifications\":3"), "{out}");
}

#[test]
fn send_by_tag_reaches_ten_thousand_tagged_customers_through_the_sdk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[("HODI_LOG", "info")]);
    let out = hodi.node_ok("sdk_e2e.js", &["by-tag"], &[("HODI_TAGGED", "10000")]);
    assert!(out.contains("\"reached\":10000"), "{out}");
}

#[test]
fn every_replay_command_through_the_sdk_reads_back_through_get_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["replays"], &[]);
    assert!(out.contains("\"messages\":2"), "{out}");
}

#[test]
fn an_opt_out_and_a_reported_click_reach_the_sdk_as_reactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("sdk_e2e.js", &["reactions"], &[]);
    assert!(out.contains("unsubscribed") && out.contains("clicked"), "{out}");
}

#[test]
fn payments_through_the_sdk_elarian_and_simulator_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let purse = hodi.creds.purse_id.clone();
    // A second purse, provisioned by the operator while the server runs.
    let made = hodi
        .cli()
        .args(["provision", "purse", "--org", &hodi.creds.org_id, "--currency", "KES"])
        .output()
        .expect("hodi provision purse");
    let made = String::from_utf8_lossy(&made.stdout).into_owned();
    let purse2 = made.split_whitespace().find(|w| w.starts_with("prs_")).expect("a purse id").to_string();
    let out = hodi.node_ok("sdk_e2e.js", &["payments"], &[("HODI_PURSE", &purse), ("HODI_PURSE2", &purse2)]);
    assert!(out.contains("\"savings\":330.5"), "{out}");
    // The operator reads the purse: 1000 received - 400.50 to a wallet + 10 back - 30 to a paybill
    // - 5 to the second purse + 15 checked out - 15 paid out.
    let cli = hodi.cli().args(["purse", "balance", "--purse", &purse]).output().expect("hodi purse balance");
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{printed} {}", String::from_utf8_lossy(&cli.stderr));
    assert!(printed.contains("actual     574.5") && printed.contains("held       0"), "{printed}");
}

#[test]
fn an_app_written_with_the_official_sdk_drives_a_real_sip_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let sip = hodi.listening.sip.clone().expect("hodi serve listens for SIP");
    let port = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port().to_string())
            .expect("port")
    };
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip/uac_press_1.xml");
    let out = hodi.node_ok(
        "sdk_e2e.js",
        &["sip-call"],
        &[
            ("HODI_SIP", &sip),
            ("HODI_SIPP_SCENARIO", scenario),
            ("HODI_SIPP_PORT", &port()),
            ("HODI_SIPP_MEDIA_PORT", &port()),
        ],
    );
    assert!(out.contains("\"digits\":\"1\""), "{out}");
}
