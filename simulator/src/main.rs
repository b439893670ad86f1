//! `hodi-simulator`: a phone in the terminal for one customer number.
//!
//! Interactive by default (what the app sends shows up as it arrives; type steps to reply, dial,
//! pay); `--script FILE` runs a file of the same steps and exits non-zero at the first failed one.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hodi_sdk::{Credentials, Endpoint, Options};
use hodi_simulator::script::{Runner, Step, HELP};
use hodi_simulator::{describe, Phone};
use tokio::io::AsyncBufReadExt;

/// A customer's phone for a Hodi server.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The customer's number.
    #[arg(long, default_value = "+254700000001")]
    number: String,
    /// Server: host:port (plain TCP) or ws://host:port. Default: HODI_SDK_ENDPOINT or 127.0.0.1:8070.
    #[arg(long)]
    endpoint: Option<String>,
    /// Org, app and API key. Default: HODI_SDK_ORG/APP/API_KEY, else .hodi/dev-credentials.toml.
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    app: Option<String>,
    #[arg(long)]
    api_key: Option<String>,
    /// Run the steps in this file instead of reading the terminal.
    #[arg(long)]
    script: Option<std::path::PathBuf>,
    /// How long `expect` steps wait, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

fn options(args: &Args) -> Result<Options, hodi_sdk::Error> {
    let mut options = match (&args.org, &args.app, &args.api_key) {
        (Some(org), Some(app), Some(key)) => {
            Options::new(hodi_sdk::local_endpoint()?, org.clone(), app.clone(), Credentials::ApiKey(key.clone()))
        }
        _ => Options::from_env()?,
    };
    if let Some(e) = &args.endpoint {
        options.endpoint = Endpoint::parse(e)?;
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let timeout = Duration::from_secs_f64(args.timeout.clamp(0.1, 3600.0));
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hodi-simulator: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoint = options.endpoint.clone();
    let phone = match Phone::connect(options, args.number.clone()).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hodi-simulator: cannot connect to {endpoint:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runner = Runner::new(&phone, timeout);
    match &args.script {
        Some(path) => script(&mut runner, path).await,
        None => interactive(&mut runner, &endpoint).await,
    }
}

async fn script(runner: &mut Runner<'_>, path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hodi-simulator: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    for (n, line) in text.lines().enumerate() {
        let step = match Step::parse(line) {
            Ok(Some(Step::Quit)) => break,
            Ok(Some(step)) => step,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("✗ {}:{}: {e}", path.display(), n + 1);
                return ExitCode::FAILURE;
            }
        };
        println!("$ {}", line.trim());
        match runner.run(&step).await {
            Ok(lines) => lines.iter().for_each(|l| println!("  {l}")),
            Err(e) => {
                eprintln!("✗ {}:{}: {e}", path.display(), n + 1);
                return ExitCode::FAILURE;
            }
        }
    }
    println!("script passed");
    ExitCode::SUCCESS
}

async fn interactive(runner: &mut Runner<'_>, endpoint: &Endpoint) -> ExitCode {
    let phone = runner.phone;
    println!("Phone {} on {endpoint:?}. Type `help` for steps, `quit` to leave.", phone.number());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let prompt = || {
        print!("phone> ");
        let _ = std::io::stdout().flush();
    };
    prompt();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(l)) => l,
                    _ => return ExitCode::SUCCESS, // end of input
                };
                match Step::parse(&line) {
                    Ok(Some(Step::Quit)) => return ExitCode::SUCCESS,
                    Ok(Some(Step::Help)) => println!("{HELP}"),
                    Ok(Some(step)) => match runner.run(&step).await {
                        Ok(out) => out.iter().for_each(|l| println!("{l}")),
                        Err(e) => println!("! {e}"),
                    },
                    Ok(None) => {}
                    Err(e) => println!("! {e}"),
                }
                prompt();
            }
            Some(event) = phone.next_event(Duration::from_secs(3600)) => {
                println!("\r< {}", describe::event(&event));
                prompt();
            }
        }
    }
}
