//! Real providers against real peers: Hodi binds to an SMSC (npm `smpp` in server mode) and
//! submits to an SMTP server (npm `smtp-server`), driven by the official Elarian SDK.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{peers_dir, Hodi};

/// Where each provider's far end listens (and Hodi's webhooks, as Twilio sees them).
#[derive(Debug, Clone, Copy)]
struct Ports {
    meta: u16,
    mg: u16,
    smsc: u16,
    smtp: u16,
    at: u16,
    tw: u16,
    tg: u16,
    mpesa: u16,
    inbox: u16,
    hooks: u16,
}

impl Ports {
    fn free() -> Ports {
        Ports {
            meta: common::free_port(),
            mg: common::free_port(),
            smsc: common::free_port(),
            smtp: common::free_port(),
            at: common::free_port(),
            tw: common::free_port(),
            tg: common::free_port(),
            mpesa: common::free_port(),
            inbox: common::free_port(),
            hooks: common::free_port(),
        }
    }
}

/// A config with every provider kind pointed at `ports`: an SMPP provider `telco`, one whose SMSC
/// refuses its password and one that cannot start, Africa's Talking `at`, Twilio `tw`, Telegram
/// `tg` and SMTP `mail`.
fn write_config(dir: &Path, ports: Ports) -> PathBuf {
    let Ports { meta, mg, smsc, smtp, at, tw, tg, mpesa, hooks, .. } = ports;
    let path = dir.join("providers.toml");
    // The SMTP server uses the certificate Hodi makes for itself at first start.
    let ca = dir.join("data/tls/cert.pem").display().to_string();
    let text = format!(
        r#"
[providers.telco]
kind = "smpp"
address = "127.0.0.1:{smsc}"
system_id = "hodi"
password_env = "HODI_TEST_SMPP_PASSWORD"
binds = 2
reconnect_secs = 1
reconnect_max_secs = 1
limits = {{ window = 10, retry_secs = 1 }}

[providers.wrongpw]
kind = "smpp"
address = "127.0.0.1:{smsc}"
system_id = "hodi"
password = "nope"
reconnect_secs = 1
reconnect_max_secs = 2

[providers.broken]
kind = "smpp"
address = "127.0.0.1:9"
system_id = "hodi"
password_env = "HODI_TEST_NOT_SET"

[providers.at]
kind = "africastalking"
username = "sandbox"
api_key_env = "HODI_TEST_AT_KEY"
base_url = "http://127.0.0.1:{at}"
webhook_token_env = "HODI_TEST_AT_TOKEN"
limits = {{ retry_secs = 1 }}

[providers.tw]
kind = "twilio"
account_sid = "AC00000000000000000000000000000001"
auth_token_env = "HODI_TEST_TW_TOKEN"
base_url = "http://127.0.0.1:{tw}"
public_url = "http://127.0.0.1:{hooks}"
webhook_token_env = "HODI_TEST_AT_TOKEN"

[providers.tg]
kind = "telegram"
username = "hodi_bot"
bot_token_env = "HODI_TEST_TG_TOKEN"
base_url = "http://127.0.0.1:{tg}"
webhook_token_env = "HODI_TEST_AT_TOKEN"

[providers.tgpoll]
kind = "telegram"
username = "hodi_poll_bot"
bot_token_env = "HODI_TEST_TG_TOKEN"
base_url = "http://127.0.0.1:{tg}"
updates = "polling"

[providers.meta]
kind = "meta"
access_token_env = "HODI_TEST_META_TOKEN"
app_secret_env = "HODI_TEST_META_SECRET"
verify_token = "verify-me"
base_url = "http://127.0.0.1:{meta}"
whatsapp_phone_number_id = "123456"
whatsapp_number = "+254711082001"
messenger_page = "hodi_page"
webhook_token_env = "HODI_TEST_AT_TOKEN"

[providers.mg]
kind = "mailgun"
domain = "mg.example.com"
api_key_env = "HODI_TEST_MG_KEY"
signing_key_env = "HODI_TEST_MG_SIGNING"
base_url = "http://127.0.0.1:{mg}"
webhook_token_env = "HODI_TEST_AT_TOKEN"

[providers.mpesa]
kind = "mpesa"
consumer_key = "daraja-key"
consumer_secret_env = "HODI_TEST_MPESA_SECRET"
passkey_env = "HODI_TEST_MPESA_PASSKEY"
initiator_name = "testapi"
security_credential_env = "HODI_TEST_MPESA_CREDENTIAL"
base_url = "http://127.0.0.1:{mpesa}"
public_url = "http://127.0.0.1:{hooks}"
webhook_token_env = "HODI_TEST_AT_TOKEN"
limits = {{ retry_secs = 1 }}

[providers.mail]
kind = "smtp"
address = "localhost:{smtp}"
tls = "starttls"
ca_file = "{ca}"
username = "hodi"
password_env = "HODI_TEST_SMTP_PASSWORD"
limits = {{ retry_secs = 1, max_attempts = 3 }}
"#
    );
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(&path, text).expect("config");
    path
}

const SECRETS: &[(&str, &str)] = &[
    ("HODI_TEST_SMPP_PASSWORD", "secret"),
    ("HODI_TEST_SMTP_PASSWORD", "mail-secret"),
    ("HODI_TEST_AT_KEY", "at-secret"),
    ("HODI_TEST_AT_TOKEN", "hook-token-123"),
    ("HODI_TEST_TW_TOKEN", "twilio-auth-token"),
    ("HODI_TEST_TG_TOKEN", "123456:test-bot-token"),
    ("HODI_TEST_META_TOKEN", "meta-access-token"),
    ("HODI_TEST_META_SECRET", "meta-app-secret"),
    ("HODI_TEST_MG_KEY", "mg-api-key"),
    ("HODI_TEST_MG_SIGNING", "mg-signing-key"),
    ("HODI_TEST_MPESA_SECRET", "daraja-secret"),
    ("HODI_TEST_MPESA_PASSKEY", "daraja-passkey"),
    ("HODI_TEST_MPESA_CREDENTIAL", "daraja-credential"),
];

/// Starts Hodi on `config`, its webhooks where `ports.hooks` says (Twilio's `public_url` points
/// there) and its inbox (SMTP, messages up to 64 KiB) where `ports.inbox` says.
fn start(data: &Path, config: &Path, ports: Ports) -> Hodi {
    let config = config.to_str().expect("utf-8 path");
    let listen = format!("127.0.0.1:{}", ports.hooks);
    let inbox = format!("127.0.0.1:{}", ports.inbox);
    let mut env = vec![
        ("HODI_CONFIG", config),
        ("HODI_WEBHOOKS__LISTEN", listen.as_str()),
        ("HODI_INBOX__LISTEN", inbox.as_str()),
        ("HODI_INBOX__MAX_MESSAGE_BYTES", "65536"),
    ];
    env.extend_from_slice(SECRETS);
    Hodi::start(data, &env)
}

/// Starts Hodi with every provider configured, binds `numbers` (channel, number, provider), and
/// runs `providers_e2e.js <name>` with where the provider's far end listens (`far_end`: the
/// variable naming its port, and the port) and where the webhooks are. Hodi (for its log), the
/// script's output, and the directory holding both.
fn scenario(
    name: &str,
    numbers: &[(&str, &str, &str)],
    far_end: impl Fn(&Ports) -> (&'static str, u16),
) -> (Hodi, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::free();
    let config = write_config(dir.path(), ports);
    let hodi = start(&dir.path().join("data"), &config, ports);
    for (channel, number, provider) in numbers {
        bind(&hodi, &config, channel, number, provider);
    }
    let (variable, port) = far_end(&ports);
    let env = [
        (variable, port.to_string()),
        ("WEBHOOKS_PORT", ports.hooks.to_string()),
        ("WEBHOOK_TOKEN", "hook-token-123".to_string()),
        ("HODI_PURSE", hodi.creds.purse_id.clone()),
        // M-Pesa's scenario also pays airtime through Africa's Talking.
        ("AT_PORT", ports.at.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = hodi.node_ok("providers_e2e.js", &[name], &env);
    assert!(out.contains("\"ok\":true"), "{out}");
    (hodi, out, dir)
}

/// `hodi provision channel … --provider …` against the running server's data; its output.
fn bind(hodi: &Hodi, config: &Path, channel: &str, number: &str, provider: &str) -> String {
    let out = hodi
        .cli()
        .args(["provision", "channel", "--org", &hodi.creds.org_id, "--channel", channel, "--number", number])
        .args(["--provider", provider])
        .env("HODI_CONFIG", config)
        .envs(SECRETS.iter().copied())
        .output()
        .expect("running hodi provision");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "provision failed: {text}");
    text
}

#[test]
fn sms_goes_through_a_real_smsc_and_receipts_and_replies_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::free();
    let smsc = ports.smsc;
    let config = write_config(dir.path(), ports);
    let hodi = start(&dir.path().join("data"), &config, ports);
    let said = bind(&hodi, &config, "sms", "21356", "smpp:telco");
    assert!(said.contains("sends through provider telco"), "{said}");
    assert!(!said.contains("secret"), "the CLI echoed a password: {said}");

    let out = hodi.node_ok("providers_e2e.js", &["smpp"], &[("SMSC_PORT", &smsc.to_string())]);
    assert!(out.contains("\"ok\":true"), "{out}");

    let log = hodi.stderr();
    assert!(
        log.contains("provider=broken") && log.contains("HODI_TEST_NOT_SET"),
        "a provider that cannot start is named with why:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("provider=wrongpw") && l.contains("refused the bind")),
        "a refused bind is logged with the provider's name"
    );
    for (_, secret) in SECRETS {
        assert!(!log.contains(secret), "a password reached the log");
    }
}

#[test]
fn email_goes_through_a_real_smtp_server_with_starttls_and_auth() {
    scenario("smtp", &[("email", "hodi@localhost", "mail")], |p| ("SMTP_PORT", p.smtp));
}

#[test]
fn customers_email_reaches_the_app_through_the_inbox_over_smtp_with_starttls() {
    let (hodi, _, _dir) = scenario("inbox", &[("email", "news@hodi.example", "mail")], |p| ("INBOX_PORT", p.inbox));
    assert!(hodi.stderr().contains("inbox listening for SMTP"));
}

#[test]
fn africas_talking_sms_and_ussd_follow_its_documented_api_and_callbacks() {
    let numbers = [("sms", "21356", "africastalking:at"), ("ussd", "*384#", "at")];
    let (hodi, _, _dir) = scenario("africastalking", &numbers, |p| ("AT_PORT", p.at));
    let log = hodi.stderr();
    assert!(log.contains("webhook with a wrong token"), "a refused webhook is logged");
    assert!(!log.contains("at-secret") && !log.contains("hook-token-123"), "a secret reached the log");
}

#[test]
fn mpesa_checkouts_payouts_and_c2b_follow_daraja_and_move_money_only_on_results() {
    let numbers = [("cellular", "174379", "mpesa:mpesa"), ("airtime", "hodi-airtime", "africastalking:at")];
    let (hodi, _, _dir) = scenario("mpesa", &numbers, |p| ("MPESA_PORT", p.mpesa));
    let log = hodi.stderr();
    assert!(log.contains("payment request accepted"), "{log}");
    assert!(log.contains("an M-Pesa result for no payment of ours"), "an unknown reference is logged");
    for secret in ["daraja-secret", "daraja-passkey", "daraja-credential", "hook-token-123"] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn twilio_sms_and_whatsapp_follow_its_documented_api_and_signed_callbacks() {
    let numbers = [("sms", "+14155550100", "twilio:tw"), ("whatsapp", "+254711082001", "tw")];
    let (hodi, _, _dir) = scenario("twilio", &numbers, |p| ("TW_PORT", p.tw));
    assert!(hodi.stderr().contains("without a valid signature"), "a forged callback is logged");
    assert!(!hodi.stderr().contains("twilio-auth-token"), "the auth token reached the log");
}

#[test]
fn a_telegram_bot_follows_the_bot_api_and_its_webhook_secret() {
    let numbers = [("telegram", "hodi_bot", "telegram:tg"), ("telegram", "hodi_poll_bot", "tgpoll")];
    let (hodi, _, _dir) = scenario("telegram", &numbers, |p| ("TG_PORT", p.tg));
    assert!(!hodi.stderr().contains("test-bot-token"), "the bot token reached the log");
}

#[test]
fn whatsapp_cloud_and_messenger_follow_the_graph_api_and_signed_webhooks() {
    let numbers = [("whatsapp", "+254711082001", "meta:meta"), ("fb_messenger", "hodi_page", "meta")];
    let (hodi, _, _dir) = scenario("meta", &numbers, |p| ("META_PORT", p.meta));
    let log = hodi.stderr();
    assert!(log.contains("without a valid signature") && log.contains("wrong verify token"), "refusals are logged");
    assert!(!log.contains("meta-access-token") && !log.contains("meta-app-secret"), "a secret reached the log");
}

#[test]
fn mailgun_sends_and_takes_signed_events_and_routes() {
    let (hodi, _, _dir) = scenario("mailgun", &[("email", "news@mg.example.com", "mailgun:mg")], |p| ("MG_PORT", p.mg));
    assert!(
        !hodi.stderr().contains("mg-api-key") && !hodi.stderr().contains("mg-signing-key"),
        "a secret reached the log"
    );
}

#[test]
fn provisioning_refuses_a_provider_that_is_not_configured_or_carries_another_channel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::free();
    let config = write_config(dir.path(), ports);
    let hodi = start(&dir.path().join("data"), &config, ports);
    for (channel, provider, why) in [
        ("sms", "nosuch", "no provider \"nosuch\""),
        ("sms", "mail", "carries email, not sms"),
        ("sms", "smtp:telco", "is smpp, not smtp"),
    ] {
        let out = hodi
            .cli()
            .args(["provision", "channel", "--org", &hodi.creds.org_id, "--channel", channel, "--number", "21356"])
            .args(["--provider", provider])
            .env("HODI_CONFIG", &config)
            .output()
            .expect("running hodi provision");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{provider} was accepted for {channel}");
        assert!(text.contains(why), "{provider}: {text}");
    }
}

/// `node smsc.js`, its events read line by line.
struct Smsc {
    child: Child,
    events: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Smsc {
    fn start(port: u16) -> Smsc {
        let mut child = Command::new("node")
            .arg(peers_dir().join("smsc.js"))
            .args([&port.to_string(), "hodi", "secret"])
            .current_dir(peers_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node smsc.js");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut smsc = Smsc { child, events, seen: Vec::new() };
        smsc.wait_for("listening", Duration::from_secs(10), |_| true);
        smsc
    }

    /// Waits up to `within` for an event named `name` that `pred` accepts.
    fn wait_for(
        &mut self,
        name: &str,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if e["event"] == name && pred(&e) {
                        return e;
                    }
                }
                Err(_) => panic!("no {name} event from the SMSC in {within:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Everything it reports in the next `d`.
    fn drain(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(e) = self.events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            self.seen.push(e);
        }
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_queued_sms_survives_kill_9_and_is_sent_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::free();
    let port = ports.smsc;
    let config = write_config(dir.path(), ports);
    let data = dir.path().join("data");
    let mut hodi = start(&data, &config, ports);
    bind(&hodi, &config, "sms", "21356", "telco");
    // No SMSC yet: the message can only be queued.
    let out = hodi.node_ok("providers_e2e.js", &["send-one", "survives a crash"], &[]);
    assert!(out.contains("\"status\":\"queued\""), "{out}");
    hodi.kill();

    let mut smsc = Smsc::start(port);
    let hodi = start(&data, &config, ports);
    let message = smsc.wait_for("message", Duration::from_secs(30), |e| e["text"] == "survives a crash");
    assert_eq!(message["destination"], "254700000002");
    smsc.drain(Duration::from_secs(3));
    let submits = smsc.seen.iter().filter(|e| e["event"] == "submit_sm").count();
    assert_eq!(submits, 1, "sent {submits} times: {:?}", smsc.seen);
    drop(hodi);
}
