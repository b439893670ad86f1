//! `[providers.<name>]`: the real networks channel numbers can send through.
//!
//! ```toml
//! [providers.telco]
//! kind = "smpp"
//! address = "smsc.example.net:2775"
//! system_id = "hodi"
//! password_env = "TELCO_SMPP_PASSWORD"   # or password = "…" (the file is then a secret)
//! limits = { rate_per_sec = 100, window = 10 }
//!
//! [providers.mail]
//! kind = "smtp"
//! address = "smtp.example.net:587"
//! tls = "starttls"
//! username = "hodi"
//! password_env = "MAIL_PASSWORD"
//! ```
//!
//! A secret is kept in a [`Secret`], whose `Debug` and `Serialize` never show it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every provider, by the name channel numbers are bound to.
pub type Providers = BTreeMap<String, Provider>;

/// A password or token: shown as `<secret>` wherever configuration is printed or logged.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that hands it to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// One provider: its protocol and that protocol's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Provider {
    Smpp(Smpp),
    Smtp(Smtp),
    #[serde(rename = "africastalking")]
    AfricasTalking(AfricasTalking),
    Twilio(Twilio),
    Telegram(Telegram),
    Meta(Meta),
    Mailgun(Mailgun),
    Mpesa(Mpesa),
}

impl Provider {
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Smpp(_) => "smpp",
            Provider::Smtp(_) => "smtp",
            Provider::AfricasTalking(_) => "africastalking",
            Provider::Twilio(_) => "twilio",
            Provider::Telegram(_) => "telegram",
            Provider::Meta(_) => "meta",
            Provider::Mailgun(_) => "mailgun",
            Provider::Mpesa(_) => "mpesa",
        }
    }

    pub fn limits(&self) -> &Limits {
        match self {
            Provider::Smpp(p) => &p.limits,
            Provider::Smtp(p) => &p.limits,
            Provider::AfricasTalking(p) => &p.limits,
            Provider::Twilio(p) => &p.limits,
            Provider::Telegram(p) => &p.limits,
            Provider::Meta(p) => &p.limits,
            Provider::Mailgun(p) => &p.limits,
            Provider::Mpesa(p) => &p.limits,
        }
    }

    /// Channels this provider carries (their lower-case names, as provisioning spells them).
    pub fn channels(&self) -> &'static [&'static str] {
        match self {
            Provider::Smpp(_) => &["sms"],
            Provider::Smtp(_) => &["email"],
            Provider::AfricasTalking(_) => &["sms", "ussd", "airtime"],
            Provider::Twilio(_) => &["sms", "whatsapp"],
            Provider::Telegram(_) => &["telegram"],
            Provider::Meta(_) => &["whatsapp", "fb_messenger"],
            Provider::Mailgun(_) => &["email"],
            Provider::Mpesa(_) => &["cellular"],
        }
    }

    /// The token its webhooks must carry, if it takes webhooks.
    pub fn webhook_token(&self) -> Result<Option<Secret>, String> {
        let (inline, env) = match self {
            Provider::AfricasTalking(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Twilio(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Telegram(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Meta(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Mailgun(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Mpesa(p) => (&p.webhook_token, &p.webhook_token_env),
            Provider::Smpp(_) | Provider::Smtp(_) => return Ok(None),
        };
        let token = secret(inline, env, "webhook_token_env")?;
        Ok((!token.is_empty()).then_some(token))
    }
}

/// How fast, how many at once and how long a provider's worker tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Messages per second handed to the provider (0: no limit).
    pub rate_per_sec: u32,
    /// Messages handed over and not yet answered, at once.
    pub window: u32,
    /// Transient failures (refused connection, a 4xx, throttling aside) before a message FAILs.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `retry_max_secs`.
    pub retry_secs: u64,
    pub retry_max_secs: u64,
    /// A message not accepted within this long after it was queued EXPIREs.
    pub expire_secs: u64,
    /// How long a delivery receipt is waited for (its part ids are kept this long).
    pub receipt_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_sec: 0,
            window: 10,
            max_attempts: 8,
            retry_secs: 2,
            retry_max_secs: 300,
            expire_secs: 24 * 3600,
            receipt_window_secs: 3 * 24 * 3600,
        }
    }
}

/// A secret: `inline` from the file, else the variable `env` names (`key` says which setting).
fn secret(inline: &Secret, env: &str, key: &str) -> Result<Secret, String> {
    if !inline.is_empty() {
        return Ok(inline.clone());
    }
    if env.is_empty() {
        return Ok(Secret::default());
    }
    std::env::var(env).map(Secret).map_err(|_| format!("{key} names {env}, which is not set"))
}

pub(crate) fn password(inline: &Secret, env: &str) -> Result<Secret, String> {
    secret(inline, env, "password_env")
}

/// SMS over SMPP 3.4: one transceiver bind to an SMSC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smpp {
    /// `host:port` of the SMSC.
    pub address: String,
    pub system_id: String,
    pub password: Secret,
    /// An environment variable holding the password (when `password` is empty).
    pub password_env: String,
    pub system_type: String,
    /// Transceiver binds kept up at once (1–16): an SMSC takes 100–150 messages a second on one
    /// bind, so more binds carry more. Messages go round them; `limits.window` counts across them.
    pub binds: u32,
    /// Seconds between enquire_links while the bind is idle.
    pub enquire_link_secs: u64,
    /// How long a submit_sm waits for its response.
    pub response_timeout_secs: u64,
    /// Ask the SMSC for delivery receipts.
    pub delivery_receipts: bool,
    /// The first reconnect's delay; each further one doubles, up to `reconnect_max_secs`.
    pub reconnect_secs: u64,
    pub reconnect_max_secs: u64,
    /// Rate, window, retries and expiry (`limits = { rate_per_sec = 100, window = 10 }`).
    pub limits: Limits,
}

impl Default for Smpp {
    fn default() -> Self {
        Smpp {
            address: String::new(),
            system_id: String::new(),
            password: Secret::default(),
            password_env: String::new(),
            system_type: String::new(),
            binds: 1,
            enquire_link_secs: 30,
            response_timeout_secs: 10,
            delivery_receipts: true,
            reconnect_secs: 1,
            reconnect_max_secs: 60,
            limits: Limits::default(),
        }
    }
}

impl Smpp {
    pub fn password(&self) -> Result<Secret, String> {
        password(&self.password, &self.password_env)
    }
}

/// Email over SMTP (submission), with STARTTLS or TLS and AUTH.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smtp {
    /// `host:port` of the submission server.
    pub address: String,
    /// `starttls` (required), `tls` (implicit, port 465) or `none` (a relay on a trusted network).
    pub tls: String,
    /// A PEM file of certificates to trust besides the usual roots (a private relay's CA).
    pub ca_file: String,
    /// Accept a server certificate that does not verify. Only for a relay you reach over a
    /// network you trust: anyone in between could read the mail and the password.
    pub accept_invalid_certs: bool,
    pub username: String,
    pub password: Secret,
    pub password_env: String,
    /// How long one delivery may take.
    pub timeout_secs: u64,
    /// Rate, window, retries and expiry (`limits = { rate_per_sec = 100, window = 10 }`).
    pub limits: Limits,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            address: String::new(),
            tls: "starttls".into(),
            ca_file: String::new(),
            accept_invalid_certs: false,
            username: String::new(),
            password: Secret::default(),
            password_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Smtp {
    pub fn password(&self) -> Result<Secret, String> {
        password(&self.password, &self.password_env)
    }
}

/// Africa's Talking over its HTTP API: SMS out, delivery reports, incoming SMS and USSD in, and
/// airtime out (payouts on an `airtime` channel number) with its status callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AfricasTalking {
    /// The account's username (`sandbox` for the sandbox).
    pub username: String,
    pub api_key: Secret,
    /// An environment variable holding the API key (when `api_key` is empty).
    pub api_key_env: String,
    /// `https://api.africastalking.com`, or `https://api.sandbox.africastalking.com`.
    pub base_url: String,
    /// The secret part of the callback URLs (`/hooks/<name>/<token>/delivery|sms|ussd`); without
    /// one, callbacks are refused.
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    /// How long one API request may take.
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for AfricasTalking {
    fn default() -> Self {
        AfricasTalking {
            username: String::new(),
            api_key: Secret::default(),
            api_key_env: String::new(),
            base_url: "https://api.africastalking.com".into(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl AfricasTalking {
    pub fn api_key(&self) -> Result<Secret, String> {
        secret(&self.api_key, &self.api_key_env, "api_key_env")
    }
}

/// Twilio's Programmable Messaging: SMS and WhatsApp out, status callbacks and incoming messages in
/// (each signed with `X-Twilio-Signature`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Twilio {
    /// `AC…`.
    pub account_sid: String,
    pub auth_token: Secret,
    /// An environment variable holding the auth token (when `auth_token` is empty).
    pub auth_token_env: String,
    /// `https://api.twilio.com`.
    pub base_url: String,
    /// Where Twilio reaches Hodi's webhook listener, as Twilio sees it (`https://hodi.example`):
    /// status callbacks are sent there, and signatures are computed over it.
    pub public_url: String,
    /// The secret part of the callback URLs (`/hooks/<name>/<token>/status|message`).
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for Twilio {
    fn default() -> Self {
        Twilio {
            account_sid: String::new(),
            auth_token: Secret::default(),
            auth_token_env: String::new(),
            base_url: "https://api.twilio.com".into(),
            public_url: String::new(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Twilio {
    pub fn auth_token(&self) -> Result<Secret, String> {
        secret(&self.auth_token, &self.auth_token_env, "auth_token_env")
    }
}

/// A Telegram bot through the Bot API: messages out with sendMessage, updates in by webhook or by
/// long-polling getUpdates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Telegram {
    /// The bot's username, as provisioned for the channel number (`hodi_bot`).
    pub username: String,
    /// The token BotFather gave (`123456:ABC…`).
    pub bot_token: Secret,
    pub bot_token_env: String,
    /// `https://api.telegram.org`.
    pub base_url: String,
    /// The secret part of the webhook URL (`/hooks/<name>/<token>/update`), which must also come
    /// as `X-Telegram-Bot-Api-Secret-Token` (setWebhook's `secret_token`: 1–256 of A–Z a–z 0–9 _ -).
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    /// How updates arrive: `webhook` (Telegram posts them to Hodi's webhook listener) or `polling`
    /// (Hodi asks with getUpdates; for a Hodi Telegram cannot reach — it removes the bot's webhook).
    pub updates: String,
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for Telegram {
    fn default() -> Self {
        Telegram {
            username: String::new(),
            bot_token: Secret::default(),
            bot_token_env: String::new(),
            base_url: "https://api.telegram.org".into(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            updates: "webhook".into(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Telegram {
    pub fn bot_token(&self) -> Result<Secret, String> {
        secret(&self.bot_token, &self.bot_token_env, "bot_token_env")
    }
}

/// Meta's Graph API: WhatsApp Cloud API and Facebook Messenger (a page) out, one webhook in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Meta {
    /// A system user's (WhatsApp) or the page's (Messenger) access token.
    pub access_token: Secret,
    pub access_token_env: String,
    /// The app secret: webhooks are signed with it (`X-Hub-Signature-256`).
    pub app_secret: Secret,
    pub app_secret_env: String,
    /// What the webhook's verification request (`hub.verify_token`) must carry.
    pub verify_token: Secret,
    pub verify_token_env: String,
    /// `https://graph.facebook.com`.
    pub base_url: String,
    pub api_version: String,
    /// WhatsApp: the Cloud API's phone number id, and our number as provisioned (`+254…`).
    pub whatsapp_phone_number_id: String,
    pub whatsapp_number: String,
    /// Messenger: the page's name as provisioned for the channel number.
    pub messenger_page: String,
    /// WhatsApp: the language of a template the app names without one (`name`, not
    /// `name/language`).
    pub template_language: String,
    /// The secret part of the webhook URL (`/hooks/<name>/<token>/events`).
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            access_token: Secret::default(),
            access_token_env: String::new(),
            app_secret: Secret::default(),
            app_secret_env: String::new(),
            verify_token: Secret::default(),
            verify_token_env: String::new(),
            base_url: "https://graph.facebook.com".into(),
            api_version: "v19.0".into(),
            whatsapp_phone_number_id: String::new(),
            whatsapp_number: String::new(),
            messenger_page: String::new(),
            template_language: "en_US".into(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Meta {
    pub fn access_token(&self) -> Result<Secret, String> {
        secret(&self.access_token, &self.access_token_env, "access_token_env")
    }

    pub fn app_secret(&self) -> Result<Secret, String> {
        secret(&self.app_secret, &self.app_secret_env, "app_secret_env")
    }

    pub fn verify_token(&self) -> Result<Secret, String> {
        secret(&self.verify_token, &self.verify_token_env, "verify_token_env")
    }
}

/// Mailgun: email out through its HTTP API, delivery events and inbound routes in (signed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mailgun {
    /// The sending domain (`mg.example.com`).
    pub domain: String,
    pub api_key: Secret,
    pub api_key_env: String,
    /// `https://api.mailgun.net`, or `https://api.eu.mailgun.net`.
    pub base_url: String,
    /// The HTTP webhook signing key: events and routes are signed with it.
    pub signing_key: Secret,
    pub signing_key_env: String,
    /// The secret part of the webhook URLs (`/hooks/<name>/<token>/events|inbound`).
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for Mailgun {
    fn default() -> Self {
        Mailgun {
            domain: String::new(),
            api_key: Secret::default(),
            api_key_env: String::new(),
            base_url: "https://api.mailgun.net".into(),
            signing_key: Secret::default(),
            signing_key_env: String::new(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Mailgun {
    pub fn api_key(&self) -> Result<Secret, String> {
        secret(&self.api_key, &self.api_key_env, "api_key_env")
    }

    pub fn signing_key(&self) -> Result<Secret, String> {
        secret(&self.signing_key, &self.signing_key_env, "signing_key_env")
    }
}

/// M-Pesa through Safaricom's Daraja API: checkouts as STK pushes (Lipa na M-Pesa Online), payouts
/// as B2C payments, and customers paying the short code on their own (C2B validation and
/// confirmation). The channel number bound to it (`--channel cellular --number 174379`) is the
/// short code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mpesa {
    /// The Daraja app's consumer key and secret (OAuth client credentials).
    pub consumer_key: String,
    pub consumer_secret: Secret,
    pub consumer_secret_env: String,
    /// `https://api.safaricom.co.ke`, or `https://sandbox.safaricom.co.ke`.
    pub base_url: String,
    /// Lipa na M-Pesa Online's passkey for the short code (STK push passwords are made from it).
    pub passkey: Secret,
    pub passkey_env: String,
    /// `CustomerPayBillOnline` (a paybill) or `CustomerBuyGoodsOnline` (a till).
    pub transaction_type: String,
    /// The B2C initiator's name and its security credential (the initiator password encrypted
    /// with Safaricom's certificate, as the Daraja portal produces it).
    pub initiator_name: String,
    pub security_credential: Secret,
    pub security_credential_env: String,
    /// `BusinessPayment`, `SalaryPayment` or `PromotionPayment`.
    pub b2c_command: String,
    /// Where Safaricom reaches Hodi's webhook listener (`https://hodi.example`): the STK and B2C
    /// result URLs are built on it.
    pub public_url: String,
    /// The secret part of the callback URLs (`/hooks/<name>/<token>/stk|b2c-result|b2c-timeout|
    /// c2b-validation|c2b-confirmation`).
    pub webhook_token: Secret,
    pub webhook_token_env: String,
    pub timeout_secs: u64,
    pub limits: Limits,
}

impl Default for Mpesa {
    fn default() -> Self {
        Mpesa {
            consumer_key: String::new(),
            consumer_secret: Secret::default(),
            consumer_secret_env: String::new(),
            base_url: "https://api.safaricom.co.ke".into(),
            passkey: Secret::default(),
            passkey_env: String::new(),
            transaction_type: "CustomerPayBillOnline".into(),
            initiator_name: String::new(),
            security_credential: Secret::default(),
            security_credential_env: String::new(),
            b2c_command: "BusinessPayment".into(),
            public_url: String::new(),
            webhook_token: Secret::default(),
            webhook_token_env: String::new(),
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }
}

impl Mpesa {
    pub fn consumer_secret(&self) -> Result<Secret, String> {
        secret(&self.consumer_secret, &self.consumer_secret_env, "consumer_secret_env")
    }

    pub fn passkey(&self) -> Result<Secret, String> {
        secret(&self.passkey, &self.passkey_env, "passkey_env")
    }

    pub fn security_credential(&self) -> Result<Secret, String> {
        secret(&self.security_credential, &self.security_credential_env, "security_credential_env")
    }
}
