//! `hodi-simulator`'s step language run against a live Hodi, with a hodi-sdk app on the other
//! side: a USSD menu walked by a script, a failing expectation reported with what arrived.

mod common;

use std::time::Duration;

use hodi_sdk::model::message;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};
use hodi_simulator::script::{Runner, Step};
use hodi_simulator::Phone;

fn options(running: &hodi::server::Running) -> Options {
    let dev = running.dev.as_ref().expect("dev tenant");
    let addr = running.bound.tcp.expect("tcp listener");
    Options::new(Endpoint::Tcp(addr.to_string()), &dev.org_id, &dev.app_id, Credentials::ApiKey(dev.api_key.clone()))
}

/// A two-screen USSD menu and an SMS echo, written with `on` handlers.
fn menu_app(client: &Elarian) {
    client
        .on("ussdSession", |n| async move {
            let Event::ReceivedMessage(m) = &n.event else { return };
            let input = m.ussd().and_then(|u| u.text.clone()).unwrap_or_default();
            let screen = match input.as_str() {
                "" => message::ussd("Welcome to Hodi Bank\n1. Balance\n2. Quit", false),
                "1" => message::ussd("Your balance is KES 1,250", true),
                _ => message::ussd("Goodbye", true),
            };
            let _ = n.reply(Reply::message(screen)).await;
        })
        .expect("handler");
    client
        .on("receivedSms", |n| async move {
            let Event::ReceivedMessage(m) = &n.event else { return };
            let echo = format!("You said: {}", m.text().unwrap_or_default());
            let _ = n.reply(Reply::message(message::text(echo))).await;
        })
        .expect("handler");
}

async fn run_script(runner: &mut Runner<'_>, script: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in script.lines().enumerate() {
        let Some(step) = Step::parse(line).map_err(|e| format!("line {}: {e}", n + 1))? else { continue };
        out.extend(runner.run(&step).await.map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(out)
}

#[tokio::test]
async fn a_script_walks_a_ussd_menu_and_checks_what_the_app_sends() {
    let (running, _dir) = common::inproc::start().await;
    let client = Elarian::connect(options(&running));
    client.connected(Duration::from_secs(10)).await.expect("app connected");
    menu_app(&client);
    let phone = Phone::connect(options(&running), "+254700300001").await.expect("phone");
    let mut runner = Runner::new(&phone, Duration::from_secs(10));

    let script = "\
        # balance check
        dial *384#
        expect screen Welcome to Hodi Bank
        ussd 1
        expect screen \"KES 1,250\"
        sms 21356 hello there   # a comment
        expect message \"You said: hello there\"
    ";
    let out = run_script(&mut runner, script).await.expect("the script passes");
    assert!(out.iter().any(|l| l.contains("Your balance is KES 1,250  [end]")), "{out:?}");

    // A wrong expectation fails with what was there instead.
    let err = run_script(&mut runner, "dial *384#\nexpect screen Loans").await.expect_err("must fail");
    assert!(err.contains("line 2") && err.contains("Loans") && err.contains("Welcome"), "{err}");
    // Nothing arrives: the wait is bounded and says what it waited for.
    runner.timeout = Duration::from_millis(300);
    let err = run_script(&mut runner, "expect call").await.expect_err("no call");
    assert!(err.contains("nothing a call arrived"), "{err}");
    // Steps that need state say so.
    let err = run_script(&mut runner, "confirm").await.expect_err("no checkout");
    assert!(err.contains("no checkout is waiting"), "{err}");
}
