//! The `hodi` command line: `serve` runs the server; `provision` creates orgs, apps, API keys,
//! purses and channel numbers and prints what it created; `react` reports a customer's reaction to
//! a sent message as a provider would.
//!
//! Owns argument parsing and what the operator sees on stdout. Logs go to stderr through `tracing`.

mod inspect;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::server;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(name = "hodi", version, about = "Self-hosted customer engagement runtime speaking the Elarian wire protocol")]
pub struct Cli {
    /// TOML config file (every key also settable as HODI_<SECTION>__<KEY>).
    #[arg(long, global = true, env = "HODI_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Create provisioned resources.
    #[command(subcommand)]
    Provision(Provision),
    /// Purses: read balances.
    #[command(subcommand)]
    Purse(PurseCommand),
    /// An org's apps and channel numbers (with the provider each number sends through).
    Org {
        #[arg(long)]
        org: String,
    },
    /// One customer's state as an app would see it (GetCustomerState): numbers, tags, metadata,
    /// the latest messages, wallets and payments. Found by customer id or by any of its numbers.
    Customer {
        /// A customer id, or a number (+254700000001, an email address, a Telegram handle…).
        customer: String,
        #[arg(long)]
        org: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// An org's API keys: list them, revoke one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Disable an app (its sockets are refused, and those open are closed within seconds; calls
    /// and provider messages no longer go to it) or enable it again. Nothing is deleted.
    #[command(subcommand)]
    App(Switch),
    /// Disable a channel number (treated as not provisioned: nothing sent from it or received on
    /// it, apps are told it is disabled) or enable it again.
    Number {
        #[command(subcommand)]
        switch: Switch,
        /// sms, ussd, voice, whatsapp, telegram, fb_messenger, email, cellular.
        #[arg(long, global = true)]
        channel: Option<String>,
    },
    /// Payments through real providers: list the ones still waiting for a result, and settle one
    /// by hand after checking the provider's own records (a result callback that never came).
    #[command(subcommand)]
    Payment(PaymentCommand),
    /// Report a customer's reaction to a sent message, as a provider would (a link click, an
    /// unsubscribe, a spam complaint). The app that sent it gets `sentMessageReaction`.
    React {
        /// The message id SendMessage returned.
        #[arg(long)]
        message: String,
        /// clicked, unsubscribed or complained.
        #[arg(long)]
        reaction: String,
    },
    /// Bring the database's schema up to this release (`hodi serve` does so at start too) and say
    /// which version it is at. A database a newer release has upgraded is refused, untouched.
    Migrate,
    /// Copy every org, customer, message, payment and call record from another database into this
    /// one (which must hold no org yet): how to move from the embedded store to PostgreSQL. The
    /// source is brought to this release's schema first; the copy is one transaction.
    Import {
        /// The database to copy from, e.g. sqlite:///var/lib/hodi/hodi.db
        #[arg(long)]
        from: String,
    },
    /// The nodes sharing this database (PostgreSQL): each one's listeners, heartbeat and app
    /// sockets, and which node delivers each app's notifications.
    Cluster,
    /// Notifications waiting per app: how many, the oldest's age, how many are being retried, and
    /// the last failure.
    Outbox {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// By-tag work, newest first: kind, state, tag, customers handled (of those tagged now, while
    /// it runs), which node runs it.
    Work {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Call detail records of SIP calls, newest first: when, who, how it ended and why (the SIP
    /// status: 404 no such number, 480 no app to take it, 486 busy …), audio counts.
    Calls {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        org: Option<String>,
        /// inbound or outbound.
        #[arg(long)]
        direction: Option<String>,
        /// How it ended: customer_hung_up, we_hung_up, cancelled, rejected, failed, not_answered, refused.
        #[arg(long)]
        ending: Option<String>,
        /// Calls from or to this number.
        #[arg(long)]
        number: Option<String>,
        /// Calls started in the last this many minutes.
        #[arg(long)]
        since_mins: Option<i64>,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Provision {
    /// Create an org.
    Org {
        #[arg(long)]
        name: String,
        /// Choose the id instead of a generated one.
        #[arg(long)]
        id: Option<String>,
    },
    /// Create an app in an org.
    App {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        id: Option<String>,
    },
    /// Create an API key for an org (shown once; only its hash is stored).
    ApiKey {
        #[arg(long)]
        org: String,
    },
    /// Create a purse (an org-level account) in a currency.
    Purse {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "KES")]
        currency: String,
    },
    /// Add a channel number to an org (channel: sms, ussd, voice, whatsapp, telegram, fb_messenger,
    /// email, or a payment channel such as cellular). Run again to change its provider.
    Channel {
        #[arg(long)]
        org: String,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        number: String,
        /// Send through this configured provider (`[providers.<name>]`), written `<name>` or
        /// `<kind>:<name>` (e.g. `smpp:telco`); `simulator` sends to simulator sockets again.
        /// Without it, a new number uses the simulator and an existing one keeps its provider.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Add a SIP user (a phone or softphone of the org) that registers with Hodi, or change its
    /// password, extension or number. `dial` reaches it as `sip:<user>@<domain>`, `<user>` or its
    /// extension; the calls it places go to the app of `--number`.
    SipUser {
        #[arg(long)]
        org: String,
        /// The SIP domain the phone registers in (its digest realm); one org's only.
        #[arg(long)]
        domain: String,
        #[arg(long)]
        user: String,
        /// The password the phone answers digest challenges with (only hashes are stored).
        #[arg(long, env = "HODI_SIP_PASSWORD")]
        password: String,
        /// A short number that reaches the user too (e.g. 101).
        #[arg(long)]
        extension: Option<String>,
        /// One of the org's voice numbers: its app handles the calls this user places.
        #[arg(long)]
        number: Option<String>,
    },
}

/// The provider `--provider` names, checked against the configuration: `None` for the simulator.
fn provider_name(config: &Config, channel: &str, given: &str) -> Result<Option<String>> {
    if given == "simulator" {
        return Ok(None);
    }
    let (kind, name) = match given.split_once(':') {
        Some((kind, name)) => (Some(kind), name),
        None => (None, given),
    };
    let Some(provider) = config.providers.get(name) else {
        let known: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        anyhow::bail!(
            "no provider {name:?} in the configuration ([providers.{name}]); configured: {}",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
    };
    if let Some(kind) = kind.filter(|k| *k != provider.kind()) {
        anyhow::bail!("provider {name:?} is {}, not {kind}", provider.kind());
    }
    if !provider.channels().contains(&channel) {
        anyhow::bail!(
            "provider {name:?} ({}) carries {}, not {channel}",
            provider.kind(),
            provider.channels().join(", ")
        );
    }
    Ok(Some(name.to_string()))
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The org's keys: id, first characters, when made, whether revoked (never the key itself).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key by its id (`key_…`): SETUPs with it are refused from now on.
    Revoke { id: String },
}

/// Turning an app or a channel number off and on.
#[derive(Debug, Subcommand)]
pub enum Switch {
    Disable {
        /// The app id, or the number.
        id: String,
        #[arg(long)]
        org: String,
    },
    Enable {
        id: String,
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PurseCommand {
    /// Print a purse's balance: actual, available, and held by pending payouts.
    Balance {
        #[arg(long)]
        purse: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// Payments sent to a provider and still pending, oldest first.
    Pending {
        /// Only those waiting at least this many minutes.
        #[arg(long, default_value_t = 0)]
        older_than_mins: u64,
    },
    /// End a pending provider payment as the provider's records show it: `success` moves the
    /// money (a payout's hold is taken), `failed` releases it. The app hears `paymentStatus`.
    Settle {
        #[arg(long)]
        transaction: String,
        /// success or failed.
        #[arg(long)]
        status: String,
    },
}

const CHANNELS: &[&str] =
    &["sms", "ussd", "voice", "whatsapp", "telegram", "fb_messenger", "email", "cellular", "airtime"];

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    let loaded = Config::load(cli.config.as_deref())?;
    let config = loaded.config;
    init_logs(&config)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Provision(p) => provision(config, p).await,
            Command::React { message, reaction } => react(config, &message, &reaction).await,
            Command::Purse(PurseCommand::Balance { purse }) => purse_balance(config, &purse).await,
            Command::Keys(keys) => inspect::keys(config, keys).await,
            Command::Org { org } => inspect::org(config, &org).await,
            Command::App(switch) => inspect::switch_app(config, switch).await,
            Command::Number { switch, channel } => inspect::switch_number(config, switch, channel.as_deref()).await,
            Command::Customer { customer, org, json } => inspect::customer(config, &org, &customer, json).await,
            Command::Payment(PaymentCommand::Pending { older_than_mins }) => {
                payments_pending(config, older_than_mins).await
            }
            Command::Payment(PaymentCommand::Settle { transaction, status }) => {
                payment_settle(config, &transaction, &status).await
            }
            Command::Calls { limit, org, direction, ending, number, since_mins, json } => {
                let since = since_mins.map(|m| crate::store::now_ms() - m.max(0) * 60_000);
                let filter =
                    crate::store::calls::CallFilter { org_id: org, direction, ending, number, since, session_id: None };
                inspect::calls(config, filter, limit, json).await
            }
            Command::Migrate => migrate(config).await,
            Command::Cluster => cluster(config).await,
            Command::Outbox { json } => inspect::outbox(config, json).await,
            Command::Work { limit, json } => inspect::work(config, limit, json).await,
            Command::Import { from } => import(config, &from).await,
        }
    })
}

/// Logs to stderr: text (coloured only on a terminal) or one JSON object per line.
fn init_logs(config: &Config) -> Result<()> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format.as_str() {
        "text" => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        "json" => builder.json().with_current_span(true).init(),
        other => anyhow::bail!("log_format {other:?}: use \"text\" or \"json\""),
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what service managers send), whichever comes first.
async fn stop_requested() -> Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|_| "interrupt").map_err(Into::into),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("interrupt")
    }
}

async fn serve(config: Config) -> Result<()> {
    let running = server::start(config.clone()).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Hodi {} is running", env!("CARGO_PKG_VERSION"))?;
    let (schema, _) = running.hodi.store.schema_versions().await?;
    writeln!(
        out,
        "  store               {}   (schema version {schema})",
        crate::store::redact(&config.database_url())
    )?;
    if let Some(a) = running.bound.tls {
        writeln!(
            out,
            "  RSocket/TLS         {a}   <- Elarian SDK (node): connect({{ host: '{}', port: {} }})",
            a.ip(),
            a.port()
        )?;
    }
    if let Some(a) = running.bound.ws {
        writeln!(out, "  RSocket/WebSocket   ws://{a}")?;
    }
    if let Some(a) = running.bound.wss {
        writeln!(out, "  RSocket/WSS         wss://{a}")?;
    }
    if let Some(a) = running.bound.tcp {
        writeln!(out, "  RSocket/TCP         {a}   (plain, for local tools)")?;
    }
    if let Some(a) = running.bound.sip {
        writeln!(out, "  SIP/UDP             {a}   (voice: call sip:+254711082000@{a})")?;
    }
    if let Some(a) = running.bound.webhooks {
        writeln!(out, "  webhooks            http://{a}/hooks/<provider>/<token>/…   (providers' callbacks)")?;
    }
    if let Some(a) = running.bound.inbox {
        writeln!(out, "  inbox               smtp://{a}   (customers' email to the org's email numbers)")?;
    }
    if let Some(a) = running.bound.http {
        writeln!(out, "  console             http://{a}/console   (log in with an org id and API key; browser phone)")?;
        writeln!(out, "  metrics, health     http://{a}/metrics  /healthz  /readyz")?;
    }
    let cert = &running.certificate;
    writeln!(
        out,
        "  TLS certificate     {}{}",
        cert.cert.display(),
        if cert.created { " (self-signed, created now)" } else { "" }
    )?;
    match &running.dev {
        Some(dev) => {
            writeln!(out, "Dev credentials ({}):", server::dev_credentials_path(&config).display())?;
            writeln!(out, "  orgId    {}", dev.org_id)?;
            writeln!(out, "  appId    {}", dev.app_id)?;
            writeln!(out, "  apiKey   {}", dev.api_key)?;
            writeln!(out, "  purseId  {}", dev.purse_id)?;
        }
        None => writeln!(out, "No dev credentials on file; use `hodi provision` to create an org, app and API key.")?,
    }
    writeln!(out, "Trust the certificate in node with NODE_EXTRA_CA_CERTS={}", cert.cert.display())?;
    out.flush()?;
    drop(out);
    let why = stop_requested().await?;
    tracing::info!(signal = why, "shutting down");
    running.stop().await;
    Ok(())
}

async fn migrate(config: Config) -> Result<()> {
    let url = config.database_url();
    let before = Store::schema_version_at(&url).await?;
    let store = Store::open_with(&url, &config.database.store_options()).await?;
    let (now, known) = store.schema_versions().await?;
    let mut out = std::io::stdout().lock();
    let url = crate::store::redact(&url);
    if before == now {
        writeln!(
            out,
            "{url} ({}): schema version {now}, up to date (this hodi knows up to {known})",
            store.backend().name()
        )?;
    } else {
        writeln!(out, "{url} ({}): schema version {before} -> {now}", store.backend().name())?;
    }
    Ok(())
}

async fn cluster(config: Config) -> Result<()> {
    let store = Store::open_with(&config.database_url(), &config.database.store_options()).await?;
    let now = crate::store::now_ms();
    let nodes = store.nodes().await?;
    let leases = store.delivery_leases().await?;
    let mut out = std::io::stdout().lock();
    if nodes.is_empty() {
        writeln!(out, "no nodes registered (one node on SQLite never registers)")?;
    }
    for n in &nodes {
        let state = if n.expires_at > now { "up" } else { "dead" };
        let seen = (now - n.heartbeat_at).max(0);
        writeln!(out, "{}  {state}  heartbeat {seen} ms ago  sockets {}  listeners {}", n.id, n.sockets, n.listeners)?;
    }
    for l in &leases {
        let left = l.expires_at - now;
        writeln!(out, "app {} delivered by {} (lease {})", l.app_id, l.node_id, {
            if left > 0 {
                format!("{left} ms left")
            } else {
                "expired".to_string()
            }
        })?;
    }
    Ok(())
}

async fn import(config: Config, from: &str) -> Result<()> {
    let to = config.database_url();
    if from == to {
        anyhow::bail!("--from names the database this configuration uses ({})", crate::store::redact(&to));
    }
    let source = Store::open_existing(from).await?;
    let destination = Store::open_with(&to, &config.database.store_options()).await?;
    let mut out = std::io::stdout();
    writeln!(out, "importing {} into {}", crate::store::redact(from), crate::store::redact(&to))?;
    // A bar on stderr while rows move (drawn only on a terminal), a line per table on stdout.
    let bar = indicatif::ProgressBar::hidden();
    let copied = destination
        .import_from(&source, |p| match p {
            crate::store::import::Progress::Started { rows } => {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(rows);
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} rows  {per_sec}  about {eta} left")
                {
                    bar.set_style(style);
                }
            }
            crate::store::import::Progress::Rows(n) => bar.inc(n),
            crate::store::import::Progress::Table(c) => {
                bar.suspend(|| {
                    let _ = writeln!(std::io::stdout(), "  {:<24} {:>10} rows", c.table, c.rows);
                });
            }
        })
        .await;
    bar.finish_and_clear();
    let copied = copied?;
    let (entries, balances, unbalanced) = destination.ledger_check().await?;
    let rows: u64 = copied.iter().map(|c| c.rows).sum();
    writeln!(out, "imported {rows} rows in {} tables; ledger: entries sum {entries}, balances sum {balances}, {unbalanced} unbalanced", copied.len())?;
    Ok(())
}

async fn purse_balance(config: Config, purse: &str) -> Result<()> {
    use crate::store::payments::AccountKey;
    let store = Store::open_existing(&config.database_url()).await?;
    let Some((org_id, currency)) = store.purse(purse).await? else { anyhow::bail!("no purse {purse:?}") };
    let account = store.account(&org_id, &AccountKey::Purse(purse.to_string()), &currency).await?;
    let (balance, held) = account.map(|a| (a.balance, a.held)).unwrap_or((0, 0));
    let show = |minor: i64| crate::payment::to_cash(&currency, minor).amount;
    let mut out = std::io::stdout().lock();
    writeln!(out, "purse {purse} (org {org_id}, {currency})")?;
    writeln!(out, "  actual     {}", show(balance))?;
    writeln!(out, "  available  {}", show(balance - held))?;
    writeln!(out, "  held       {}", show(held))?;
    Ok(())
}

/// A payment status as the SDKs spell it (`pending_confirmation`).
fn status_name(status: i32) -> String {
    crate::wire::label(crate::wire::PaymentStatus::try_from(status).ok().map(|s| s.as_str_name()), "PAYMENT_STATUS_")
}

async fn payments_pending(config: Config, older_than_mins: u64) -> Result<()> {
    let store = Store::open_existing(&config.database_url()).await?;
    let before = crate::store::now_ms().saturating_sub(crate::store::secs_to_ms(older_than_mins.saturating_mul(60)));
    let pending = store.pending_provider_payments(before, &crate::payment::PENDING, 500).await?;
    let mut out = std::io::stdout().lock();
    if pending.is_empty() {
        writeln!(out, "no provider payment is pending")?;
    }
    for t in pending {
        let age_mins = (crate::store::now_ms() - t.created_at) / 60_000;
        let amount = crate::payment::to_cash(&t.currency, t.amount).amount;
        writeln!(
            out,
            "{}  {:<8} {:<14} {} {}  provider {} ref {}  waiting {} min",
            t.id,
            t.kind,
            status_name(t.status),
            t.currency,
            amount,
            t.provider.as_deref().unwrap_or("-"),
            t.provider_transaction_id.as_deref().unwrap_or("(not accepted yet)"),
            age_mins
        )?;
    }
    Ok(())
}

async fn payment_settle(config: Config, transaction: &str, status: &str) -> Result<()> {
    use crate::store::payments::Finish;
    use crate::wire::PaymentStatus;
    let status = match status {
        "success" => PaymentStatus::Success,
        "failed" => PaymentStatus::Failed,
        other => anyhow::bail!("status {other:?}: use success or failed"),
    };
    let store = Store::open_existing(&config.database_url()).await?.with_notification_ttl(config.notify.ttl_ms());
    let Some(t) = store.transaction(transaction).await? else { anyhow::bail!("no transaction {transaction:?}") };
    let Some(provider) = t.provider.clone() else {
        anyhow::bail!("{transaction} did not go through a provider; the simulator settles it (UpdatePaymentStatus)")
    };
    let finish = Finish { status: status as i32, settle: status == PaymentStatus::Success };
    let done = store
        .finish_transaction(transaction, finish, crate::payment::is_pending, |t, s| {
            crate::payment::initiate::status_notices(t, s, t.app_id.as_deref().unwrap_or_default())
        })
        .await?;
    let mut out = std::io::stdout().lock();
    match done {
        Some((_, s)) if s == status as i32 => {
            tracing::info!(transaction, provider, ?status, "payment settled by hand");
            writeln!(out, "{transaction} is now {}; the app will be told", status_name(status as i32))?
        }
        Some((_, s)) => anyhow::bail!("{transaction} could not settle and is now {}", status_name(s)),
        None => anyhow::bail!("{transaction} is no longer pending; nothing changed"),
    }
    Ok(())
}

async fn react(config: Config, message: &str, reaction: &str) -> Result<()> {
    use crate::messaging::reaction::{parse_reaction, react, Reacted};
    let Some(kind) = parse_reaction(reaction) else {
        anyhow::bail!("unknown reaction {reaction:?}; use clicked, unsubscribed or complained");
    };
    let store = Store::open_existing(&config.database_url()).await?.with_notification_ttl(config.notify.ttl_ms());
    let outcome = react(&store, message, kind, crate::store::now_ms()).await?;
    let mut out = std::io::stdout().lock();
    match outcome {
        Reacted::Recorded { app_id } => writeln!(out, "recorded {reaction} on {message}; app {app_id} will be told")?,
        Reacted::AlreadyRecorded => writeln!(out, "{message} already has {reaction}; nothing changed")?,
        Reacted::UnknownMessage => anyhow::bail!("no message has id {message:?}"),
        Reacted::NotSent => anyhow::bail!("{message} was received, not sent: only sent messages get reactions"),
    }
    Ok(())
}

async fn provision(config: Config, what: Provision) -> Result<()> {
    let store = Store::open_existing(&config.database_url()).await?;
    let mut out = std::io::stdout().lock();
    match what {
        Provision::Org { name, id } => {
            let id = store.create_org(id.as_deref(), &name).await?;
            writeln!(out, "created org {id} ({name})")?;
        }
        Provision::App { org, name, id } => {
            let id = store.create_app(&org, id.as_deref(), &name).await?;
            writeln!(out, "created app {id} ({name}) in org {org}")?;
        }
        Provision::ApiKey { org } => {
            let key = store.create_api_key(&org).await?;
            writeln!(out, "created API key {} for org {}", key.id, key.org_id)?;
            writeln!(out, "apiKey {}", key.key)?;
            writeln!(out, "(shown once: only its hash is stored)")?;
        }
        Provision::Purse { org, currency } => {
            let id = store.create_purse(&org, &currency).await?;
            writeln!(out, "created purse {id} ({currency}) in org {org}")?;
        }
        Provision::Channel { org, channel, number, provider } => {
            if !CHANNELS.contains(&channel.as_str()) {
                anyhow::bail!("unknown channel {channel:?}; use one of {}", CHANNELS.join(", "));
            }
            let provider = provider.map(|p| provider_name(&config, &channel, &p)).transpose()?;
            store.add_channel_number(&org, &channel, &number).await?;
            writeln!(out, "added {channel} number {number} to org {org}")?;
            if let Some(provider) = provider {
                store.bind_channel_provider(&org, &channel, &number, provider.as_deref()).await?;
                match provider {
                    Some(name) => writeln!(out, "{channel} number {number} sends through provider {name}")?,
                    None => writeln!(out, "{channel} number {number} sends to simulator sockets")?,
                }
            }
        }
        Provision::SipUser { org, domain, user, password, extension, number } => {
            let user = crate::voice::registrar::sip_user(&org, &domain, &user, &password, extension, number)?;
            if !store.org_exists(&org).await? {
                anyhow::bail!("no org {org}");
            }
            store.put_sip_user(&user).await?;
            let ext = user.extension.as_deref().map(|e| format!(" (extension {e})")).unwrap_or_default();
            writeln!(out, "SIP user {}@{}{ext} in org {org}", user.username, user.domain)?;
            match &config.voice.sip_udp {
                a if a.trim().is_empty() => writeln!(out, "voice is off in this configuration (voice.sip_udp)")?,
                a => writeln!(out, "phones register at sip:{}@{} via {a}", user.username, user.domain)?,
            }
        }
    }
    Ok(())
}
