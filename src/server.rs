//! Putting Hodi together: open the store, make sure a dev tenant exists, load the certificate, start
//! the listeners and the reminder scheduler.
//!
//! Owns start-up order: it builds the [`Hodi`] context every component receives
//! ([`crate::context`]) and starts each part. No business logic here.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::context::Hodi;
use crate::notify::leases::Delivery;
use crate::notify::Sockets;
use crate::socket_session::SessionAcceptor;
use crate::store::Store;
use crate::transport::{self, certificate::CertificateFiles, Bound};

/// The dev tenant's credentials, kept in `<data_dir>/dev-credentials.toml` so they can be shown
/// on every start (the database only has the API key's hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    pub org_id: String,
    pub app_id: String,
    pub api_key: String,
    pub purse_id: String,
}

/// A running server.
pub struct Running {
    pub hodi: Arc<Hodi>,
    /// The voice executor's SIP side, when voice is on (for tools and tests that look at calls).
    pub sip: Option<Arc<crate::voice::listener::Sip>>,
    pub bound: Bound,
    pub certificate: CertificateFiles,
    pub dev: Option<DevCredentials>,
    pub shutdown: CancellationToken,
}

/// Channel numbers a dev org gets, so the SDK's examples work unchanged.
pub const DEV_CHANNEL_NUMBERS: &[(&str, &str)] = &[
    ("sms", "21356"),
    ("ussd", "*384#"),
    ("voice", "+254711082000"),
    ("whatsapp", "+254711082001"),
    ("telegram", "hodi_bot"),
    ("fb_messenger", "hodi_page"),
    ("email", "hodi@localhost"),
    ("cellular", "525900"),
];

pub fn dev_credentials_path(config: &Config) -> PathBuf {
    config.data_dir.join("dev-credentials.toml")
}

async fn ensure_dev_tenant(config: &Config, store: &Store) -> Result<Option<DevCredentials>> {
    let path = dev_credentials_path(config);
    if store.count_orgs().await? == 0 && config.dev.provision {
        let org_id = store.create_org(Some(&config.dev.org_id), "Dev org").await?;
        let app_id = store.create_app(&org_id, Some(&config.dev.app_id), "Dev app").await?;
        let key = store.create_api_key(&org_id).await?;
        let purse_id = store.create_purse(&org_id, "KES").await?;
        for (channel, number) in DEV_CHANNEL_NUMBERS {
            store.add_channel_number(&org_id, channel, number).await?;
        }
        let creds = DevCredentials { org_id, app_id, api_key: key.key, purse_id };
        std::fs::create_dir_all(&config.data_dir)?;
        crate::transport::certificate::write_private(&path, toml::to_string(&creds)?.as_bytes())?;
        info!(org_id = %creds.org_id, app_id = %creds.app_id, "provisioned the dev tenant");
        return Ok(Some(creds));
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?)),
        Err(_) => Ok(None),
    }
}

/// Keeps the SQLite write-ahead log short, off the request path.
async fn checkpoint_wal(hodi: Arc<Hodi>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
        }
        if let Err(e) = hodi.store.checkpoint_wal().await {
            tracing::warn!(error = %e, "checkpointing the write-ahead log");
        }
    }
}

/// Takes `<data_dir>/hodi.lock` so a second server on the same data is refused (two would share
/// the database and the dev credentials, and fight over ports). A lock held by a server that is
/// shutting down in this process is waited for briefly.
async fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File> {
    let path = data_dir.join("hodi.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    for _ in 0..40 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
    anyhow::bail!(
        "another hodi serve is using the data directory {} (it holds {}); stop it, or give this one its own data_dir",
        data_dir.display(),
        path.display()
    )
}

/// Starts everything and returns once listeners are bound.
pub async fn start(config: Config) -> Result<Running> {
    let config = Arc::new(config);
    // Before anything counts: metrics recorded earlier would be lost.
    crate::metrics::install();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let lock = lock_data_dir(&config.data_dir).await?;
    let store = Store::open_with(&config.database_url(), &config.database.store_options())
        .await?
        .with_allowances(config.customer.allowances())
        .with_notification_ttl(config.notify.ttl_ms());
    // Several processes may share a PostgreSQL database: each delivers only the apps it holds
    // leases for (crate::cluster). SQLite is one process's.
    let shared = matches!(store.backend(), crate::store::Backend::Postgres);
    let node = shared.then(|| crate::cluster::node::node_id(&config.cluster));
    let store = match &node {
        Some(node) => store.with_node_id(node),
        None => store,
    };
    let dev = ensure_dev_tenant(&config, &store).await?;
    let (tls, certificate) = transport::certificate::load_or_create(&config)?;
    let shutdown = CancellationToken::new();
    crate::metrics::start_upkeep(shutdown.clone());
    // Providers report through this channel; messaging drains it once the context exists.
    let (provider_events, provider_reports) = tokio::sync::mpsc::channel(crate::channel::events::CAPACITY);
    let (payment_events, payment_refusals) = tokio::sync::mpsc::channel(crate::channel::events::PAYMENT_CAPACITY);
    // Claims left by this process's previous run are released at once; on a shared database only
    // those of nodes that are not up (the node task keeps doing so as nodes die).
    if shared {
        store.release_claims_of_dead_nodes().await?;
    } else {
        store.release_provider_claims().await?;
    }
    let providers = Arc::new(crate::channel::providers::Providers::start(
        &config.providers,
        &store,
        &provider_events,
        &payment_events,
        &shutdown,
    ));
    drop((provider_events, payment_events));
    let voice = crate::voice::listener::bind(&config, &shutdown).await?;
    // Voice messages become SIP calls only with a trunk to send them to.
    let sip = voice.as_ref().map(|v| v.sip.clone());
    let trunk = sip.clone().filter(|_| !config.voice.trunk.trim().is_empty());
    // Live asks between nodes go through Redis: only with several nodes and a Redis to carry them.
    let (relay, relayed) = match &node {
        Some(node) if !config.cluster.redis_url.trim().is_empty() => {
            let (relay, relayed) = crate::notify::relay::Relay::new(node);
            (Some(Arc::new(relay)), Some(relayed))
        }
        _ => (None, None),
    };
    // Cyclic: the trunk places calls that need the context, and the context holds the trunk.
    let hodi = Arc::new_cyclic(|hodi| Hodi {
        config: config.clone(),
        store,
        sockets: Arc::new(Sockets::default()),
        simulators: Arc::new(Sockets::default()),
        notify_stats: Default::default(),
        recent_notifications: Default::default(),
        disabled_apps: tokio::sync::watch::Sender::new(Default::default()),
        calls: trunk.map(|sip| {
            Arc::new(crate::voice::outbound::Trunk::new(hodi.clone(), sip)) as Arc<dyn crate::channel::PlaceCalls>
        }),
        providers,
        work: Arc::new(crate::work::budget::Budget::new(&config.work)),
        delivery: if shared { Delivery::shared() } else { Delivery::alone() },
        relay,
    });
    tokio::spawn(crate::messaging::providers::run(hodi.clone(), provider_reports));
    tokio::spawn(crate::payment::providers::run(hodi.clone(), payment_refusals));
    let webhooks = crate::webhooks::start(hodi.clone(), shutdown.clone()).await?;
    let inbox = crate::inbox::start(hodi.clone(), tls.clone(), shutdown.clone()).await?;
    // The data directory is ours until shutdown (or until the process ends, when the OS lets go).
    let release = shutdown.clone();
    tokio::spawn(async move {
        release.cancelled().await;
        drop(lock);
    });
    // By-tag work a previous run (or, on a shared database, a node that died) left unfinished;
    // looked for before the listeners open, so none of this run's own work is taken for it.
    let rebuild: crate::work::resume::Rebuild = Arc::new(crate::command::resume_work);
    let look_every = std::time::Duration::from_millis(config.cluster.heartbeat_ms.max(100) * 5);
    crate::work::resume::start(hodi.clone(), rebuild, !shared, look_every, shutdown.clone()).await;
    crate::socket_session::watch_disabled_apps(hodi.clone(), shutdown.clone());
    let acceptor_for =
        |listener| -> Arc<dyn hodi_rsocket::Acceptor> { Arc::new(SessionAcceptor::new(hodi.clone(), listener)) };
    let mut bound = transport::start(&config, tls, acceptor_for, shutdown.clone()).await?;
    bound.webhooks = webhooks;
    bound.inbox = inbox;
    // Last: ready means the other listeners are bound.
    let links = crate::console::Links { ws: bound.ws, wss: bound.wss };
    let webrtc = sip.clone().and_then(|sip| crate::voice::webrtc::Gateway::new(hodi.clone(), sip)).map(|g| g.router());
    bound.http = crate::ops::start(hodi.clone(), links, webrtc, shutdown.clone()).await?;
    if let Some(voice) = voice {
        bound.sip = Some(voice.sip.local);
        bound.recordings = voice.recordings_http;
        crate::voice::listener::serve(hodi.clone(), voice, shutdown.clone());
    }
    if !shared && !config.cluster.redis_url.trim().is_empty() {
        tracing::warn!("cluster.redis_url is ignored: on SQLite this is the only node");
    }
    if let Some(node) = node {
        let listeners = serde_json::to_string(&bound).unwrap_or_default();
        crate::cluster::bus::start(hodi.clone(), node.clone(), relayed, shutdown.clone())?;
        tokio::spawn(crate::cluster::node::run(hodi.clone(), node, listeners, shutdown.clone()));
    }
    tokio::spawn(crate::reminder::run(hodi.clone(), shutdown.clone()));
    // An app's answer may carry a message; messaging sends it (notify sits below the domains).
    let replies: crate::notify::Replies =
        Arc::new(|hodi, c| Box::pin(async move { crate::messaging::outbound::reply(&hodi, c).await }));
    tokio::spawn(crate::notify::run(hodi.clone(), shutdown.clone(), replies));
    tokio::spawn(crate::customer::sweep_expired(hodi.clone(), shutdown.clone()));
    tokio::spawn(crate::messaging::sweep_sessions(hodi.clone(), shutdown.clone()));
    tokio::spawn(crate::payment::simulator::sweep_checkouts(hodi.clone(), shutdown.clone()));
    tokio::spawn(checkpoint_wal(hodi.clone(), shutdown.clone()));
    let listening = toml::to_string(&bound).unwrap_or_default();
    // Tools and tests read where we listen from here (ports may have been chosen by the OS).
    let tmp = config.data_dir.join("listening.toml.tmp");
    std::fs::write(&tmp, listening).context("writing listening.toml")?;
    std::fs::rename(&tmp, config.data_dir.join("listening.toml")).context("writing listening.toml")?;
    Ok(Running { hodi, sip, bound, certificate, dev, shutdown })
}

impl Running {
    /// Stops the server: listeners and connections close (peers see the close), background work
    /// ends, and the write-ahead log is folded into the database so a copy of the file is whole.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        // Writer tasks flush what is queued and close their sockets once their connection ends.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if let Err(e) = self.hodi.store.checkpoint_wal().await {
            tracing::warn!(error = %e, "checkpointing the write-ahead log at shutdown");
        }
    }
}
