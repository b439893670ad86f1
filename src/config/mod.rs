//! Configuration: defaults, then a TOML file, then `HODI_*` environment variables.
//!
//! Owns the shape of the config and how it is loaded; components read their own section and never
//! look at files or the environment themselves.
//!
//! Every key can be set from the environment: `HODI_` followed by the key path in upper case, with
//! `__` between a section and its key, e.g. `HODI_LISTEN__TLS=0.0.0.0:443` or
//! `HODI_RSOCKET__MAX_FRAME_BYTES=65536`, and the top-level keys as `HODI_DATA_DIR`,
//! `HODI_DATABASE_URL`, `HODI_LOG`, `HODI_LOG_FORMAT`. Other `HODI_*` variables are not ours (the
//! SDK and the simulator read `HODI_SDK_*`) and are ignored; an unknown key in a known section is
//! a warning. A bad value is an error naming the variable or the file it came from. An empty
//! listener address disables that listener.

pub mod providers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database, the TLS certificate and the dev credentials live.
    pub data_dir: PathBuf,
    /// `sqlite://<file>` (default `sqlite://<data_dir>/hodi.db`) or `postgres://user[:password]@host[:port]/database`.
    pub database_url: Option<String>,
    /// `tracing` filter, e.g. `info` or `hodi=debug,hodi_rsocket=debug`.
    pub log: String,
    /// `text` (coloured only on a terminal) or `json` (one object per line).
    pub log_format: String,
    pub database: Database,
    pub listen: Listen,
    pub tls: Tls,
    pub rsocket: RSocketLimits,
    pub auth: Auth,
    pub notify: Notify,
    pub customer: Customer,
    pub work: Work,
    pub messaging: Messaging,
    pub payment: Payment,
    pub voice: Voice,
    /// Real networks channel numbers can be bound to, by name (see [`providers`]).
    pub providers: providers::Providers,
    pub webhooks: Webhooks,
    pub http: Http,
    pub inbox: Inbox,
    pub cluster: Cluster,
    pub dev: Dev,
}

/// Several nodes on one PostgreSQL database (see README "Running several nodes"). On SQLite there
/// is one node and none of this applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// This node's name among the others (`hodi cluster` shows it); empty: `<host>-<random>`,
    /// new at every start.
    pub node_id: String,
    /// How often a node renews its registration and its delivery leases.
    pub heartbeat_ms: u64,
    /// How long a delivery lease (and a registration) lasts unrenewed: after a node dies, its
    /// apps' notifications wait this long before another node delivers them.
    pub lease_ms: u64,
    /// `redis://host:port[/db]`: a commit on one node wakes the node delivering the app at once.
    /// Empty, or Redis unreachable: nodes find each other's notifications by polling
    /// (`notify.outbox_poll_ms`). Redis holds nothing that is not rebuilt by itself.
    pub redis_url: String,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster { node_id: String::new(), heartbeat_ms: 1_000, lease_ms: 5_000, redis_url: String::new() }
    }
}

/// The store's connection pool (`database_url` says which database).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// Connections in the pool. SQLite writes one at a time whatever this says.
    pub max_connections: u32,
    /// PostgreSQL: the server cancels a statement running longer (0: no limit).
    pub statement_timeout_ms: u64,
    /// How long a request waits for a free connection before it fails.
    pub acquire_timeout_ms: u64,
    /// Writes waiting at the same time share one transaction, each still all-or-nothing and
    /// answered after its commit; off, each write commits alone.
    pub group_commit: bool,
}

impl Default for Database {
    fn default() -> Self {
        let d = crate::store::StoreOptions::default();
        Database {
            max_connections: d.max_connections,
            statement_timeout_ms: d.statement_timeout.as_millis() as u64,
            acquire_timeout_ms: d.acquire_timeout.as_millis() as u64,
            group_commit: d.group_commit,
        }
    }
}

impl Database {
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            max_connections: self.max_connections,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            group_commit: self.group_commit,
        }
    }
}

/// Listening addresses. Empty disables a listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// RSocket over TLS with the 3-byte length prefix: what the Elarian SDKs' node entry speaks.
    pub tls: String,
    /// RSocket over plain TCP, for local tools and benchmarks.
    pub tcp: String,
    /// RSocket over plain WebSocket (the browser entry uses `ws://` on any port but 443).
    pub ws: String,
    /// RSocket over WebSocket with TLS.
    pub wss: String,
    /// The operator's HTTP: Prometheus `/metrics`, `/healthz`, `/readyz` (limits in `[http]`).
    pub http: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain; default `<data_dir>/tls/cert.pem`, created self-signed if missing.
    pub cert: Option<PathBuf>,
    /// PEM private key; default `<data_dir>/tls/key.pem`.
    pub key: Option<PathBuf>,
    /// Extra names for the self-signed certificate (localhost and 127.0.0.1 are always included).
    pub self_signed_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RSocketLimits {
    pub setup_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub max_inbound_requests: usize,
    pub outbound_queue: usize,
    /// Bytes queued towards one connection; a peer that keeps sending without reading its answers
    /// is closed with ERROR after `write_timeout_ms`, holding at most this much.
    pub max_outbound_bytes: usize,
    /// Fragmented messages one connection may have open at once.
    pub max_fragmented_streams: usize,
    pub write_timeout_ms: u64,
    /// Established connections each listener holds at once, and from one source address; a SETUP
    /// beyond them is refused (REJECTED_SETUP). Lowered at start to fit the file-descriptor limit.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Connections each listener holds before their SETUP (handshakes, silent sockets), in total
    /// and from one address; beyond them new ones are closed at accept.
    pub max_pending_setups: usize,
    pub max_pending_per_address: usize,
    /// The longest keepalive lifetime a client's SETUP may ask for; longer ones are clamped.
    pub max_keepalive_lifetime_ms: u64,
    /// TCP keepalive probes start after this many idle seconds; 0 turns them off.
    pub tcp_keepalive_secs: u64,
    /// Refused SETUPs (wrong credentials…) from one address before it must wait 1 s, doubling
    /// with each further refusal up to 60 s, during which its SETUPs are refused unexamined.
    pub failed_setups_allowed: u32,
    /// How long a session whose connection dropped is kept for its client to resume it (RSocket
    /// RESUME, which hodi-sdk does): its requests and notifications wait, nothing is lost or run
    /// twice. 0 refuses SETUPs that ask for resumption.
    pub resume_window_secs: u64,
    /// Frames each resumable session keeps to send again after a resume, in bytes.
    pub resume_buffer_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Lifetime of tokens from GenerateAuthToken.
    pub token_lifetime_secs: u64,
    /// A socket set up with a token is closed this long after the token expires.
    pub token_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Notify {
    /// How long an app has to answer a notification before the attempt counts as failed. The
    /// Elarian SDKs answer by themselves 5 s after calling a handler that does not call back (and
    /// may first fetch the customer's state), so the default sits well above that: such apps see
    /// each notification once. An answer that comes later, before the retry, is still taken.
    pub reply_timeout_ms: u64,
    /// How many of one customer's notifications may be unanswered at once (server-initiated
    /// requests; subscriptions take one at a time). They go out in outbox order to one socket;
    /// 1 means the next waits for the answer to the last.
    pub per_customer_window: usize,
    /// How long an undelivered notification waits for an app before it is dropped.
    pub ttl_secs: u64,
    /// How often the outbox is looked at when nothing signals new work.
    pub outbox_poll_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Customer {
    /// How long LeaseCustomerAppData holds app data for the connection that leased it.
    pub lease_secs: u64,
    /// How long a second lease waits for the first to end before it is refused.
    pub lease_wait_ms: u64,
    /// How often expired tags and secondary ids are deleted (reads hide them at once regardless).
    pub expiry_sweep_secs: u64,
    /// The most state one customer may hold; an update that would go over is refused whole.
    /// Each tag or secondary id is at most 128 bytes of key and 1,024 of value; each metadata key
    /// at most 128 bytes and its value 64 KiB.
    pub max_tags: usize,
    pub max_secondary_ids: usize,
    pub max_metadata_keys: usize,
    pub max_metadata_bytes: usize,
}

impl Customer {
    pub fn allowances(&self) -> crate::store::Allowances {
        crate::store::Allowances {
            tags: self.max_tags,
            secondary_ids: self.max_secondary_ids,
            metadata_keys: self.max_metadata_keys,
            metadata_bytes: self.max_metadata_bytes,
        }
    }
}

/// Background work of by-tag commands (sendMessageByTag, reminders by tag).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Work {
    /// Pages of 1,000 customers read or acted on at once across all by-tag work; each uses one
    /// database connection at a time, so the rest of the pool stays free for interactive commands.
    pub pages_in_flight: usize,
    /// By-tag commands of one org still running; beyond this, new ones are refused.
    pub max_unfinished_per_org: usize,
}

impl Default for Work {
    fn default() -> Self {
        Work { pages_in_flight: 2, max_unfinished_per_org: 1_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Messaging {
    /// How long a chat channel's (WhatsApp, Telegram, Messenger) session window stays open after an
    /// inbound message.
    pub chat_window_secs: u64,
    /// How long a USSD or voice session may go without activity.
    pub live_session_secs: u64,
    /// How often lapsed sessions are ended (reason INACTIVITY).
    pub session_sweep_ms: u64,
}

/// Payments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payment {
    /// How long a checkout waits for the customer to confirm before it EXPIREs.
    pub checkout_expiry_secs: u64,
    /// How often expired checkouts are looked for.
    pub checkout_sweep_ms: u64,
}

/// The voice executor: SIP signalling and RTP media for real calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Voice {
    /// SIP over UDP; empty disables the voice executor.
    pub sip_udp: String,
    /// SIP over TCP; empty: UDP only.
    pub sip_tcp: String,
    /// SIP TCP connections held at once, and from one address; beyond them new ones are closed.
    pub sip_tcp_max_connections: usize,
    pub sip_tcp_max_per_address: usize,
    /// A SIP TCP connection with no call on it and no bytes for this long is closed.
    pub sip_tcp_idle_secs: u64,
    /// A SIP message begun over TCP must be complete within this.
    pub sip_tcp_message_secs: u64,
    /// The address RTP sockets bind to and SDP announces.
    pub rtp_ip: std::net::IpAddr,
    /// UDP ports RTP may use, `"low-high"` (even ports are taken, as RTP expects), for an
    /// operator's firewall; empty: any free port.
    pub rtp_ports: PortRange,
    /// How long media goes to the address a far end's SDP names before any RTP has come from it
    /// (after which it goes where the far end's RTP comes from: symmetric RTP).
    pub rtp_unlatched_secs: u64,
    /// Calls at once, and inbound calls from one source address; beyond them, new INVITEs get
    /// 503 with Retry-After.
    pub max_calls: usize,
    pub max_calls_per_address: usize,
    /// Where calls to customers go (`host:port` of a SIP trunk or phone, UDP): the Request-URI is
    /// `sip:<customer number>@<trunk>`. Empty: voice messages go to simulator sockets only.
    pub trunk: String,
    /// How Hodi reaches the trunk: `udp` (from the SIP socket) or `tcp` (one connection, kept).
    pub trunk_transport: TrunkTransport,
    /// The user name and password the trunk challenges for (digest, 401 or 407); empty user: no
    /// credentials (a challenge ends the call attempt). The password inline, or in the variable
    /// `trunk_password_env` names.
    pub trunk_username: String,
    pub trunk_password: providers::Secret,
    pub trunk_password_env: String,
    /// Register with the trunk as `trunk_username` (kept refreshed), for trunks that send calls
    /// only to registered users.
    pub trunk_register: bool,
    /// The registration lifetime Hodi asks the trunk for.
    pub trunk_register_secs: u64,
    /// How long an outbound call may ring before it is given up (NO_ANSWER).
    pub ring_timeout_secs: u64,
    /// HTTP listener serving recordings at their `recordingUrl`; empty: files only.
    pub recordings_http: String,
    /// Devices registered with the SIP registrar at once (this node); beyond it new devices get
    /// 503 and registered ones still refresh.
    pub max_registrations: usize,
    /// Offer SHA-256 digest challenges besides MD5 (RFC 8760). Off by default: baresip 1.0 and
    /// other phones in use refuse a challenge response that offers any algorithm they lack.
    pub sip_auth_sha256: bool,
    /// Browser calls (WebRTC, signalled over a WebSocket at `/voice/webrtc` on `listen.http`).
    pub webrtc: bool,
    /// The address browsers send media to (the ICE host candidate); unspecified: `rtp_ip`.
    pub webrtc_ip: Option<std::net::IpAddr>,
    /// Browser calls at once, and from one source address.
    pub webrtc_max_calls: usize,
    pub webrtc_max_calls_per_address: usize,
}

impl Default for Voice {
    fn default() -> Self {
        Voice {
            sip_udp: "127.0.0.1:5060".into(),
            sip_tcp: "127.0.0.1:5060".into(),
            sip_tcp_max_connections: 1024,
            sip_tcp_max_per_address: 64,
            sip_tcp_idle_secs: 120,
            sip_tcp_message_secs: 10,
            rtp_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            rtp_ports: PortRange::default(),
            rtp_unlatched_secs: 10,
            max_calls: 1000,
            max_calls_per_address: 100,
            trunk: String::new(),
            trunk_transport: TrunkTransport::Udp,
            trunk_username: String::new(),
            trunk_password: providers::Secret::default(),
            trunk_password_env: String::new(),
            trunk_register: false,
            trunk_register_secs: 600,
            ring_timeout_secs: 60,
            recordings_http: "127.0.0.1:8092".into(),
            max_registrations: 100_000,
            sip_auth_sha256: false,
            webrtc: true,
            webrtc_ip: None,
            webrtc_max_calls: 256,
            webrtc_max_calls_per_address: 8,
        }
    }
}

/// How Hodi talks to its SIP trunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    #[default]
    Udp,
    Tcp,
}

impl Voice {
    /// The trunk's password (inline or from `trunk_password_env`).
    pub fn trunk_password(&self) -> Result<providers::Secret, String> {
        providers::password(&self.trunk_password, &self.trunk_password_env)
            .map_err(|e| e.replace("password_env", "voice.trunk_password_env"))
    }
}

/// A range of ports, written `"low-high"` in the config; empty means any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange(pub Option<(u16, u16)>);

impl TryFrom<String> for PortRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(PortRange(None));
        }
        let parsed = text
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
        match parsed {
            Some((low, high)) if low > 0 && high > low => Ok(PortRange(Some((low, high)))),
            _ => Err(format!("{text:?} is not a port range: write \"low-high\" with 0 < low < high <= 65535")),
        }
    }
}

impl From<PortRange> for String {
    fn from(r: PortRange) -> String {
        r.0.map(|(a, b)| format!("{a}-{b}")).unwrap_or_default()
    }
}

impl Default for Payment {
    fn default() -> Self {
        Payment { checkout_expiry_secs: 300, checkout_sweep_ms: 5_000 }
    }
}

impl Default for Messaging {
    fn default() -> Self {
        Messaging { chat_window_secs: 24 * 3600, live_session_secs: 180, session_sweep_ms: 5_000 }
    }
}

/// The HTTP listener providers call back (delivery reports, incoming messages, USSD steps).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// Where it listens; empty disables it. Put it behind your TLS-terminating proxy.
    pub listen: String,
    /// Connections held at once, and from one source address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// A request's headers must arrive within this.
    pub header_timeout_secs: u64,
    /// A connection is closed after this long, whatever it is doing.
    pub connection_secs: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// `[http]`: what the operator's HTTP listener (`listen.http`) allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Connections held at once, and from one source address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// A request's headers must arrive within this.
    pub header_timeout_secs: u64,
    /// A connection is closed after this long, whatever it is doing.
    pub connection_secs: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: 256,
            max_connections_per_address: 32,
            header_timeout_secs: 10,
            connection_secs: 60,
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            listen: "127.0.0.1:8091".into(),
            max_connections: 1024,
            max_connections_per_address: 64,
            header_timeout_secs: 10,
            connection_secs: 60,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `[inbox]`: Hodi's own SMTP receiver, for customers' email to the org's email numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Inbox {
    /// Where it listens (port 25 as your MX, or behind one); empty (the default) disables it.
    pub listen: String,
    /// The name it greets with (`220 <hostname> ESMTP`).
    pub hostname: String,
    /// Offer STARTTLS with Hodi's certificate.
    pub starttls: bool,
    /// Connections held at once, and from one source address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Each command (and each line of a message) must arrive within this.
    pub command_timeout_secs: u64,
    /// A connection is closed after this long, whatever it is doing.
    pub session_secs: u64,
    /// Largest message (its headers and body as sent); larger ones are refused with 552.
    pub max_message_bytes: usize,
    /// Recipients of one message.
    pub max_recipients: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            listen: String::new(),
            hostname: "hodi.localhost".into(),
            starttls: true,
            max_connections: 256,
            max_connections_per_address: 16,
            command_timeout_secs: 60,
            session_secs: 600,
            max_message_bytes: 1024 * 1024,
            max_recipients: 50,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dev {
    /// Provision a dev org, app, API key and purse on start when the database has no org.
    pub provision: bool,
    pub org_id: String,
    pub app_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".hodi"),
            database_url: None,
            log: "info".into(),
            log_format: "text".into(),
            database: Database::default(),
            listen: Listen::default(),
            tls: Tls::default(),
            rsocket: RSocketLimits::default(),
            auth: Auth::default(),
            notify: Notify::default(),
            customer: Customer::default(),
            work: Work::default(),
            messaging: Messaging::default(),
            payment: Payment::default(),
            voice: Voice::default(),
            providers: Default::default(),
            webhooks: Webhooks::default(),
            http: Http::default(),
            inbox: Inbox::default(),
            cluster: Cluster::default(),
            dev: Dev::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            tls: "127.0.0.1:8443".into(),
            tcp: "127.0.0.1:8070".into(),
            ws: "127.0.0.1:8080".into(),
            wss: "127.0.0.1:8444".into(),
            http: "127.0.0.1:8090".into(),
        }
    }
}

impl Default for RSocketLimits {
    fn default() -> Self {
        let d = hodi_rsocket::Config::default();
        RSocketLimits {
            setup_timeout_ms: d.setup_timeout.as_millis() as u64,
            handshake_timeout_ms: 10_000,
            max_frame_bytes: d.max_frame_size,
            max_message_bytes: d.max_message_size,
            max_inbound_requests: d.max_inbound_requests,
            outbound_queue: d.outbound_queue,
            max_outbound_bytes: d.max_outbound_bytes,
            max_fragmented_streams: d.max_fragmented_streams,
            write_timeout_ms: d.write_timeout.as_millis() as u64,
            max_connections: d.max_connections,
            max_connections_per_address: d.max_connections_per_address,
            max_pending_setups: d.max_pending_setups,
            max_pending_per_address: d.max_pending_per_address,
            max_keepalive_lifetime_ms: d.max_keepalive_lifetime.as_millis() as u64,
            tcp_keepalive_secs: d.tcp_keepalive.map_or(0, |t| t.as_secs()),
            failed_setups_allowed: d.failed_setups_allowed,
            resume_window_secs: d.resume_window.as_secs(),
            resume_buffer_bytes: d.resume_buffer_bytes,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth { token_lifetime_secs: 900, token_grace_secs: 30 }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            reply_timeout_ms: 15_000,
            per_customer_window: 32,
            ttl_secs: crate::store::outbox::DEFAULT_TTL_SECS,
            outbox_poll_ms: 1_000,
        }
    }
}

impl Default for Customer {
    fn default() -> Self {
        Customer {
            lease_secs: 60,
            lease_wait_ms: 2_000,
            expiry_sweep_secs: 60,
            max_tags: 256,
            max_secondary_ids: 64,
            max_metadata_keys: 256,
            max_metadata_bytes: 1024 * 1024,
        }
    }
}

impl Default for Dev {
    fn default() -> Self {
        Dev { provision: true, org_id: "dev-org".into(), app_id: "dev-app".into() }
    }
}

impl Notify {
    /// `ttl_secs` in milliseconds, the unit of the outbox's times.
    pub fn ttl_ms(&self) -> i64 {
        crate::store::secs_to_ms(self.ttl_secs)
    }
}

impl RSocketLimits {
    pub fn connection_config(&self) -> hodi_rsocket::Config {
        hodi_rsocket::Config {
            setup_timeout: Duration::from_millis(self.setup_timeout_ms),
            max_frame_size: self.max_frame_bytes,
            max_message_size: self.max_message_bytes,
            max_inbound_requests: self.max_inbound_requests,
            outbound_queue: self.outbound_queue,
            max_outbound_bytes: self.max_outbound_bytes,
            max_fragmented_streams: self.max_fragmented_streams,
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            max_pending_setups: self.max_pending_setups,
            max_pending_per_address: self.max_pending_per_address,
            max_keepalive_lifetime: Duration::from_millis(self.max_keepalive_lifetime_ms),
            tcp_keepalive: (self.tcp_keepalive_secs > 0).then(|| Duration::from_secs(self.tcp_keepalive_secs)),
            failed_setups_allowed: self.failed_setups_allowed,
            resume_window: Duration::from_secs(self.resume_window_secs),
            resume_buffer_bytes: self.resume_buffer_bytes,
            ..hodi_rsocket::Config::default()
        }
    }
}

/// A loaded configuration and what was wrong but not fatal (said once logging is up).
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Top-level keys that are not sections, settable as `HODI_<KEY>`.
const TOP_LEVEL: &[&str] = &["data_dir", "database_url", "log", "log_format"];

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Loaded> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given (tests).
    pub fn load_from(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded> {
        let defaults = toml::Value::try_from(Config::default()).context("serialising defaults")?;
        let mut value = defaults.clone();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            // Parsed as a Config first: its errors name the key and the line.
            toml::from_str::<Config>(&text).with_context(|| format!("config file {}", path.display()))?;
            let overlay: toml::Value =
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
            merge(&mut value, overlay);
        }
        let mut warnings = Vec::new();
        let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("HODI_")).collect();
        vars.sort();
        for (name, raw) in vars {
            let Some(path) = config_path(&name, &defaults) else { continue };
            let mut candidate = value.clone();
            set_path(&mut candidate, &path, scalar(&raw)).with_context(|| format!("environment variable {name}"))?;
            match candidate.clone().try_into::<Config>() {
                Ok(_) => value = candidate,
                Err(e) if e.to_string().contains("unknown field") => {
                    warnings.push(format!("environment variable {name}: {} has no key {:?}; ignored", path[0], path[1]))
                }
                Err(e) => anyhow::bail!("environment variable {name} ({}): {e}", path.join(".")),
            }
        }
        let config: Config = value.try_into().context("invalid configuration")?;
        config.check_listeners()?;
        Ok(Loaded { config, warnings })
    }

    /// Refuses two TCP listeners on one address (port 0 aside: each gets its own): the second
    /// would fail to bind at start with a less helpful message.
    pub fn check_listeners(&self) -> Result<()> {
        let listeners = [
            ("listen.tls", &self.listen.tls),
            ("listen.tcp", &self.listen.tcp),
            ("listen.ws", &self.listen.ws),
            ("listen.wss", &self.listen.wss),
            ("listen.http", &self.listen.http),
            ("voice.sip_tcp", &self.voice.sip_tcp),
            ("voice.recordings_http", &self.voice.recordings_http),
            ("webhooks.listen", &self.webhooks.listen),
            ("inbox.listen", &self.inbox.listen),
        ];
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (key, address) in listeners {
            let address = address.trim();
            if address.is_empty() || address.ends_with(":0") {
                continue;
            }
            if let Some((other, _)) = seen.iter().find(|(_, a)| *a == address) {
                anyhow::bail!("{other} and {key} are both {address:?}: give each listener an address of its own");
            }
            seen.push((key, address));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hodi.db").display()))
    }
}

/// The config key a `HODI_*` variable sets, if it is one of ours: `HODI_<SECTION>__<KEY>` for a
/// section the config has, or `HODI_<KEY>` for a top-level key.
fn config_path(name: &str, defaults: &toml::Value) -> Option<Vec<String>> {
    let rest = name.strip_prefix("HODI_")?;
    match rest.split_once("__") {
        Some((section, key)) => {
            let section = section.to_ascii_lowercase();
            defaults.get(&section)?.as_table()?;
            (!key.is_empty() && !key.contains("__")).then(|| vec![section, key.to_ascii_lowercase()])
        }
        None => {
            let key = rest.to_ascii_lowercase();
            TOP_LEVEL.contains(&key.as_str()).then(|| vec![key])
        }
    }
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// An environment value as the TOML scalar it looks like: integer, boolean, else string.
fn scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

fn set_path(value: &mut toml::Value, path: &[String], leaf: toml::Value) -> Result<()> {
    let (last, parents) = path.split_last().context("empty key")?;
    let mut cursor = value;
    for key in parents {
        cursor = cursor
            .as_table_mut()
            .context("not a section")?
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    let table = cursor.as_table_mut().with_context(|| format!("{} is not a section", parents.join(".")))?;
    // Keep strings strings where the default is a string (an all-digit org id, say).
    let leaf = match (table.get(last), leaf) {
        (Some(toml::Value::String(_)), toml::Value::Integer(i)) => toml::Value::String(i.to_string()),
        (Some(toml::Value::String(_)), toml::Value::Boolean(b)) => toml::Value::String(b.to_string()),
        (_, leaf) => leaf,
    };
    table.insert(last.clone(), leaf);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_give_every_listener_its_own_address_and_a_clash_is_refused() {
        // `hodi serve` on a fresh machine must start: two defaults on one port once stopped it.
        Config::default().check_listeners().expect("defaults");
        let env = [("HODI_VOICE__RECORDINGS_HTTP".to_string(), Config::default().listen.http)];
        let err = Config::load_from(None, env).err().expect("a clash is refused").to_string();
        assert!(err.contains("listen.http and voice.recordings_http"), "{err}");
        let zero = [
            ("HODI_LISTEN__HTTP".to_string(), "127.0.0.1:0".to_string()),
            ("HODI_VOICE__RECORDINGS_HTTP".to_string(), "127.0.0.1:0".to_string()),
        ];
        Config::load_from(None, zero).expect("port 0 twice is two ports");
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let mut value = toml::Value::try_from(Config::default()).expect("defaults");
        merge(
            &mut value,
            toml::from_str("[listen]\ntls = \"0.0.0.0:9443\"\n[auth]\ntoken_lifetime_secs = 60").expect("toml"),
        );
        set_path(&mut value, &["listen".into(), "ws".into()], scalar("")).expect("env");
        set_path(&mut value, &["dev".into(), "org_id".into()], scalar("42")).expect("env");
        let config: Config = value.try_into().expect("config");
        assert_eq!(config.listen.tls, "0.0.0.0:9443");
        assert_eq!(config.listen.ws, "");
        assert_eq!(config.listen.tcp, Listen::default().tcp);
        assert_eq!(config.auth.token_lifetime_secs, 60);
        assert_eq!(config.dev.org_id, "42");
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_our_variables_are_read_and_unknown_keys_in_our_sections_warn() {
        let loaded = Config::load_from(
            None,
            env(&[
                ("HODI_SDK_ENDPOINT", "127.0.0.1:1"),
                ("HODI_SDK_API_KEY", "k"),
                ("HODI_CONFIG", "x.toml"),
                ("HODI_SOMETHING", "else"),
                ("HODI_LISTEN__TSL", "0.0.0.0:1"),
                ("HODI_NOTIFY__PER_CUSTOMER_WINDOW", "4"),
                ("HODI_LOG_FORMAT", "json"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("loads");
        assert_eq!(loaded.config.notify.per_customer_window, 4);
        assert_eq!(loaded.config.log_format, "json");
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("HODI_LISTEN__TSL"), "{:?}", loaded.warnings);
    }

    #[test]
    fn a_bad_value_names_its_variable_or_its_file() {
        let err = Config::load_from(None, env(&[("HODI_NOTIFY__REPLY_TIMEOUT_MS", "soon")])).err().expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains("HODI_NOTIFY__REPLY_TIMEOUT_MS") && text.contains("notify.reply_timeout_ms"), "{text}");
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("hodi.toml");
        std::fs::write(&file, "[notify]\nreply_timeout_ms = \"soon\"\n").expect("write");
        let text = format!("{:#}", Config::load_from(Some(&file), env(&[])).err().expect("refused"));
        assert!(text.contains("hodi.toml") && text.contains("reply_timeout_ms"), "{text}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut value = toml::Value::try_from(Config::default()).expect("defaults");
        merge(&mut value, toml::from_str("[listen]\ntsl = \"x\"").expect("toml"));
        assert!(value.try_into::<Config>().is_err());
    }

    #[test]
    fn providers_load_by_kind_keep_their_secrets_and_refuse_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("hodi-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("providers.toml");
        std::fs::write(
            &file,
            "[providers.telco]\nkind = \"smpp\"\naddress = \"127.0.0.1:2775\"\nsystem_id = \"hodi\"\n\
             password = \"hunter2\"\nlimits = { rate_per_sec = 50, window = 100 }\n\
             [providers.mail]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\ntls = \"none\"\n",
        )
        .expect("write");
        let config = Config::load_from(Some(&file), env(&[])).expect("loads").config;
        let Some(providers::Provider::Smpp(telco)) = config.providers.get("telco") else { panic!("telco is smpp") };
        assert_eq!(telco.limits.window, 100);
        assert_eq!(telco.limits.rate_per_sec, 50);
        assert_eq!(telco.limits.max_attempts, providers::Limits::default().max_attempts);
        assert_eq!(telco.password().expect("password").expose(), "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"), "Debug shows the password");
        assert!(!toml::to_string(&config).expect("toml").contains("hunter2"), "serialising shows the password");
        assert_eq!(config.providers.get("mail").map(|p| p.kind()), Some("smtp"));

        std::fs::write(&file, "[providers.telco]\nkind = \"smpp\"\npasword = \"typo\"\n").expect("write");
        let err = format!("{:#}", Config::load_from(Some(&file), env(&[])).err().expect("refused"));
        assert!(err.contains("pasword"), "{err}");
        std::fs::write(&file, "[providers.x]\nkind = \"carrier-pigeon\"\n").expect("write");
        let err = format!("{:#}", Config::load_from(Some(&file), env(&[])).err().expect("refused"));
        assert!(err.contains("carrier-pigeon"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
