//! Notifications to apps: which sockets can take them, and delivering one as a server-initiated
//! REQUEST_RESPONSE whose reply is then applied.
//!
//! Owns the registry of notification-capable app sockets (non-simplex, non-simulator) and the
//! delivery attempt: pick a socket (round robin), send, wait for the reply with a timeout, try the
//! next socket on failure, apply the reply's app-data update. Does not own why a notification is
//! sent (reminders, messages, payments produce them) nor retries over time (the producer keeps the
//! work until delivery succeeds).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{Payload, RequestError};
use prost::Message;
use tracing::{debug, info, warn};

use crate::server::Hodi;
use crate::session::Session;
use crate::store::app_data::AppDataValue;
use crate::wire::server_to_app_customer_notification::Entry as CustomerEntry;
use crate::wire::{
    data_map_value, DataMapValue, ServerToAppCustomerNotification, ServerToAppNotification,
    ServerToAppNotificationReply,
};

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no app socket is connected for app {0}")]
    NoSocket(String),
    #[error("every connected socket failed: {0}")]
    AllFailed(String),
    #[error("store: {0}")]
    Store(#[from] anyhow::Error),
}

#[derive(Default)]
struct AppSockets {
    sockets: Vec<Arc<Session>>,
    next: usize,
}

/// Notification-capable app sockets, per (org, app).
#[derive(Default)]
pub struct Sockets {
    apps: Mutex<HashMap<(String, String), AppSockets>>,
    /// Signalled whenever a socket registers, so waiting producers can retry at once.
    pub connected: tokio::sync::Notify,
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), AppSockets>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a socket; it is removed again when its connection closes.
    pub fn register(self: &Arc<Self>, session: Arc<Session>) {
        let key = (session.org_id.clone(), session.app_id.clone());
        self.lock().entry(key.clone()).or_default().sockets.push(session.clone());
        self.connected.notify_waiters();
        let sockets = self.clone();
        tokio::spawn(async move {
            let reason = session.requester.closed().await;
            info!(connection_id = %session.connection_id, %reason, "session ended");
            let mut apps = sockets.lock();
            if let Some(app) = apps.get_mut(&key) {
                app.sockets.retain(|s| s.connection_id != session.connection_id);
                if app.sockets.is_empty() {
                    apps.remove(&key);
                }
            }
        });
    }

    /// Apps with at least one notification-capable socket.
    pub fn connected_apps(&self) -> Vec<String> {
        self.lock().keys().map(|(_, app)| app.clone()).collect()
    }

    /// Candidate sockets for one delivery, starting with the next in round-robin order.
    fn candidates(&self, org_id: &str, app_id: &str) -> Vec<Arc<Session>> {
        let mut apps = self.lock();
        let Some(app) = apps.get_mut(&(org_id.to_string(), app_id.to_string())) else {
            return Vec::new();
        };
        let n = app.sockets.len();
        let start = app.next % n.max(1);
        app.next = app.next.wrapping_add(1);
        (0..n).map(|i| app.sockets[(start + i) % n].clone()).collect()
    }
}

fn wire_app_data(value: AppDataValue) -> DataMapValue {
    DataMapValue {
        value: Some(match value {
            AppDataValue::Text(t) => data_map_value::Value::StringVal(t),
            AppDataValue::Bytes(b) => data_map_value::Value::BytesVal(b),
        }),
    }
}

/// Delivers one customer notification to one of the app's sockets and applies the reply.
pub async fn deliver_to_customer_app(
    hodi: &Hodi,
    org_id: &str,
    app_id: &str,
    customer_id: &str,
    entry: CustomerEntry,
) -> Result<ServerToAppNotificationReply, DeliveryError> {
    let candidates = hodi.sockets.candidates(org_id, app_id);
    if candidates.is_empty() {
        return Err(DeliveryError::NoSocket(app_id.to_string()));
    }
    let app_data = hodi.store.app_data(app_id, customer_id).await?.map(wire_app_data);
    let now = crate::store::now_ms();
    let notification = ServerToAppNotification {
        entry: Some(crate::wire::server_to_app_notification::Entry::Customer(ServerToAppCustomerNotification {
            org_id: org_id.to_string(),
            app_id: app_id.to_string(),
            customer_id: customer_id.to_string(),
            app_data,
            created_at: Some(prost_types::Timestamp { seconds: now / 1000, nanos: ((now % 1000) * 1_000_000) as i32 }),
            entry: Some(entry),
        })),
    };
    let bytes = Bytes::from(notification.encode_to_vec());
    let timeout = Duration::from_millis(hodi.config.notify.reply_timeout_ms);
    let mut failures = Vec::new();
    for session in candidates {
        let attempt =
            tokio::time::timeout(timeout, session.requester.request_response(Payload::new(bytes.clone()))).await;
        let payload = match attempt {
            Ok(Ok(p)) => p,
            Ok(Err(RequestError::Closed(why))) => {
                failures.push(format!("{}: closed ({why})", session.connection_id));
                continue;
            }
            Ok(Err(e)) => {
                failures.push(format!("{}: {e}", session.connection_id));
                continue;
            }
            Err(_) => {
                failures.push(format!("{}: no reply within {} ms", session.connection_id, timeout.as_millis()));
                continue;
            }
        };
        let reply = match ServerToAppNotificationReply::decode(payload.data) {
            Ok(r) => r,
            Err(e) => {
                // Delivered: the app saw it. An unreadable reply changes nothing, but say so.
                warn!(connection_id = %session.connection_id, error = %e, "notification reply is not a ServerToAppNotificationReply");
                ServerToAppNotificationReply::default()
            }
        };
        apply_reply(hodi, app_id, customer_id, &reply).await?;
        debug!(connection_id = %session.connection_id, customer_id, "notification delivered");
        return Ok(reply);
    }
    Err(DeliveryError::AllFailed(failures.join("; ")))
}

/// Applies what an app answered: the app-data update now; an outbound message is recorded in the
/// log until messaging lands.
async fn apply_reply(
    hodi: &Hodi,
    app_id: &str,
    customer_id: &str,
    reply: &ServerToAppNotificationReply,
) -> anyhow::Result<()> {
    if let Some(update) = reply.data_update.as_ref().and_then(|u| u.data.as_ref()).and_then(|d| d.value.as_ref()) {
        let value = match update {
            data_map_value::Value::StringVal(s) => AppDataValue::Text(s.clone()),
            data_map_value::Value::BytesVal(b) => AppDataValue::Bytes(b.clone()),
        };
        hodi.store.set_app_data(app_id, customer_id, &value).await?;
    }
    if let Some(message) = &reply.message {
        info!(
            customer_id,
            parts = message.body.is_some(),
            "app replied with an outbound message; messaging is not available in this version"
        );
    }
    Ok(())
}
