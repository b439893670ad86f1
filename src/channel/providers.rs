//! The configured providers, started: one queue worker each, over its transport.
//!
//! A provider whose settings can never work (no address, a password variable that is not set)
//! is logged with its name and why, and its messages wait in the queue; the rest of the server
//! and the other providers run on. One that cannot reach its network keeps trying (its
//! transport logs each failure).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::africastalking::AfricasTalking;
use super::events;
use super::mailgun::Mailgun;
use super::meta::Meta;
use super::mpesa::Mpesa;
use super::payments::{self, PaymentTransport};
use super::smpp::Smpp;
use super::smtp::Smtp;
use super::telegram::Telegram;
use super::twilio::Twilio;
use super::worker;
use crate::config::providers::{Provider, Providers as Settings};
use crate::store::{now_ms, Store};

/// How often part ids past every provider's receipt window are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// One configured provider as the rest of the server sees it.
#[derive(Debug)]
struct Handle {
    /// Wakes its message worker when a message is queued for it.
    wake: Arc<Notify>,
    /// Wakes its payment worker when a payment request is queued for it.
    wake_payments: Arc<Notify>,
    /// Why it did not start, if it did not.
    broken: Option<String>,
}

/// Every configured provider, by name.
#[derive(Debug, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Handle>,
}

impl Providers {
    /// Starts a worker for each provider in `settings`.
    pub fn start(
        settings: &Settings,
        store: &Store,
        events: &events::Sender,
        payments: &events::PaymentSender,
        shutdown: &CancellationToken,
    ) -> Providers {
        let mut by_name = BTreeMap::new();
        for (name, provider) in settings {
            let wake = Arc::new(Notify::new());
            let wake_payments = Arc::new(Notify::new());
            let worker = Worker {
                name,
                provider,
                store,
                events,
                payments,
                wake: &wake,
                wake_payments: &wake_payments,
                shutdown,
            };
            let started = match provider {
                Provider::Smpp(s) => {
                    Smpp::start(name, s.clone(), events.clone(), shutdown.clone()).map(|t| worker.spawn(t))
                }
                Provider::Smtp(s) => Smtp::new(s).map(|t| worker.spawn(Arc::new(t))),
                Provider::AfricasTalking(s) => AfricasTalking::new(name, s).map(|t| {
                    let t = Arc::new(t);
                    worker.spawn_payments(t.clone());
                    worker.spawn(t)
                }),
                Provider::Telegram(s) => Telegram::new(name, s).map(|t| {
                    let t = Arc::new(t);
                    if s.updates == "polling" {
                        tokio::spawn(t.clone().poll(events.clone(), shutdown.clone()));
                    }
                    worker.spawn(t)
                }),
                Provider::Meta(s) => Meta::new(name, s).map(|t| worker.spawn(Arc::new(t))),
                Provider::Mailgun(s) => Mailgun::new(name, s).map(|t| worker.spawn(Arc::new(t))),
                Provider::Mpesa(s) => provider.webhook_token().and_then(|token| {
                    let token = token.as_ref().map(|t| t.expose());
                    Mpesa::new(name, s, token).map(|t| worker.spawn_payments(Arc::new(t)))
                }),
                Provider::Twilio(s) => provider.webhook_token().and_then(|token| {
                    let token = token.as_ref().map(|t| t.expose());
                    Twilio::new(name, s, token).map(|t| worker.spawn(Arc::new(t)))
                }),
            };
            let broken = match started {
                Ok(()) => {
                    info!(provider = %name, kind = provider.kind(), "provider started");
                    None
                }
                Err(why) => {
                    error!(provider = %name, kind = provider.kind(), why, "provider cannot start; its messages wait");
                    Some(why)
                }
            };
            by_name.insert(name.clone(), Handle { wake, wake_payments, broken });
        }
        if !settings.is_empty() {
            let window = settings.values().map(|p| p.limits().receipt_window_secs).max().unwrap_or_default();
            tokio::spawn(forget_old_parts(store.clone(), window, shutdown.clone()));
        }
        Providers { by_name }
    }

    /// Tells `name`'s worker a message is waiting.
    pub fn wake(&self, name: &str) {
        if let Some(h) = self.by_name.get(name) {
            h.wake.notify_one();
        }
    }

    /// Tells `name`'s payment worker a request is waiting.
    pub fn wake_payments(&self, name: &str) {
        if let Some(h) = self.by_name.get(name) {
            h.wake_payments.notify_one();
        }
    }

    /// Why `name` did not start, if it did not.
    pub fn broken(&self, name: &str) -> Option<&str> {
        match self.by_name.get(name) {
            Some(h) => h.broken.as_deref(),
            None => Some("not configured"),
        }
    }
}

/// What a provider's worker is started with.
struct Worker<'a> {
    name: &'a str,
    provider: &'a Provider,
    store: &'a Store,
    events: &'a events::Sender,
    payments: &'a events::PaymentSender,
    wake: &'a Arc<Notify>,
    wake_payments: &'a Arc<Notify>,
    shutdown: &'a CancellationToken,
}

impl Worker<'_> {
    fn spawn<T: worker::Transport>(&self, transport: Arc<T>) {
        let lane = worker::Messages {
            provider: self.name.to_string(),
            limits: self.provider.limits().clone(),
            transport,
            store: self.store.clone(),
            events: self.events.clone(),
        };
        tokio::spawn(worker::run(
            self.name.to_string(),
            self.provider.limits().clone(),
            Arc::new(lane),
            self.wake.clone(),
            self.shutdown.clone(),
        ));
    }

    fn spawn_payments<T: PaymentTransport>(&self, transport: Arc<T>) {
        let lane = payments::Payments {
            provider: self.name.to_string(),
            limits: self.provider.limits().clone(),
            transport,
            store: self.store.clone(),
            refusals: self.payments.clone(),
        };
        payments::spawn(lane, self.wake_payments.clone(), self.shutdown.clone());
    }
}

async fn forget_old_parts(store: Store, window_secs: u64, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(FORGET_EVERY) => {}
        }
        let before = now_ms() - (window_secs as i64).saturating_mul(1000);
        if let Err(e) = store.forget_provider_parts(before, 10_000).await {
            warn!(error = %e, "forgetting old provider part ids");
        }
    }
}
