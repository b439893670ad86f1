//! The official Python SDK (PyPI `elarian` 0.0.8) as an app against `hodi serve` over TLS:
//! tests/peers/python_sdk_e2e.py connects (trusting the dev certificate through SSL_CERT_FILE),
//! reads a customer's state, answers an SMS the customer sends from a hodi-simulator phone with a
//! reply and an app-data update, takes reminders carrying the app data its answers left, and sets
//! tags and metadata. It runs on the machine's Python (3.11 here) with the one shim the script
//! documents; `./scripts/test` makes its virtualenv (tests/peers/.venv).

mod common;

use std::time::Duration;

use common::Hodi;
use hodi_sdk::{Credentials, Endpoint, Options};
use hodi_simulator::Phone;

const RUN: Duration = Duration::from_secs(90);
const NUMBER: &str = "+254700300001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_runs_an_app_against_hodi() {
    let python = common::peers_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: ./scripts/test makes it (python3 -m venv, pip install -r tests/peers/requirements.txt)",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let creds = &hodi.creds;
    let mut script = std::process::Command::new(&python);
    script
        .arg(common::peers_dir().join("python_sdk_e2e.py"))
        .env("HODI_TLS_PORT", Hodi::port(&hodi.listening.tls))
        .env("HODI_ORG", &creds.org_id)
        .env("HODI_APP", &creds.app_id)
        .env("HODI_KEY", &creds.api_key)
        .env("HODI_CUSTOMER", NUMBER)
        .env("SSL_CERT_FILE", dir.path().join("tls/cert.pem"))
        .env("PYTHONUNBUFFERED", "1");
    let mut app = common::Talking::spawn(script);

    let options = Options::new(
        Endpoint::Tcp(hodi.listening.tcp.clone().expect("tcp")),
        &creds.org_id,
        &creds.app_id,
        Credentials::ApiKey(creds.api_key.clone()),
    );
    let phone = Phone::connect(options, NUMBER).await.expect("phone connected");
    let deadline = tokio::time::Instant::now() + RUN;
    let mut done = false;
    while let Some(line) = app.next_line(deadline).await {
        match line.as_str() {
            "READY" => {
                phone.send_sms("21356", "hello from a phone").await.expect("texted");
                let reply = phone.expect_message(Duration::from_secs(20)).await.expect("the app's reply");
                assert_eq!(reply.text(), "hi back, you said hello from a phone");
            }
            "DONE" => done = true,
            _ => {}
        }
    }
    let (ok, output) = app.finish().await;
    assert!(done && ok, "the Python app did not finish\n{output}\n--- hodi stderr\n{}", hodi.stderr());
}
