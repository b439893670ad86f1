//! The debt-collection app of the SDK spec against a local Hodi.
//!
//! ```sh
//! cargo run --release -- serve                       # terminal 1: Hodi with the dev tenant
//! cargo run -p hodi-sdk --example debt_collection    # terminal 2: this app
//! cargo run -p hodi-simulator -- --number +254700000001   # terminal 3: the customer's phone
//! ```
//!
//! The app enrolls `+254700000001` (owing KES 500, due in 5 s). The phone gets an SMS; typing
//! `sms 21356 OK` starts a checkout (`confirm` to pay). Ignore the SMS for 30 s and the app calls:
//! `answer`, then `press 1`.

mod app;

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let options = hodi_sdk::Options::from_env()?;
    let purse_id = match std::env::var("HODI_SDK_PURSE") {
        Ok(p) => p,
        Err(_) => {
            let text = std::fs::read_to_string(".hodi/dev-credentials.toml")?;
            let dev: toml::Table = toml::from_str(&text)?;
            dev.get("purse_id").and_then(|p| p.as_str()).unwrap_or_default().to_string()
        }
    };
    let client = hodi_sdk::Elarian::connect(options);
    client.connected(Duration::from_secs(10)).await?;
    let number = std::env::args().nth(1).unwrap_or_else(|| "+254700000001".into());
    app::start(
        &client,
        app::Settings {
            sms: "21356".into(),
            voice: "+254711082000".into(),
            paybill: "525900".into(),
            purse_id,
            currency: "KES".into(),
            follow_up: Duration::from_secs(30),
        },
    )?;
    app::enroll(&client, &number, 500.0, Duration::from_secs(5)).await?;
    tracing::info!(%number, "enrolled; waiting for notifications (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await?;
    client.disconnect();
    Ok(())
}
