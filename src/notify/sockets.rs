//! The app sockets that can take notifications, per (org, app).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;

use crate::session::Session;

#[derive(Default)]
struct AppSockets {
    sockets: Vec<Arc<Session>>,
    next: usize,
}

/// Notification-capable app sockets, per (org, app).
#[derive(Default)]
pub struct Sockets {
    apps: Mutex<HashMap<(String, String), AppSockets>>,
    /// Signalled whenever a socket registers, so waiting work can go at once.
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

    /// Every socket of every app of `org_id` (simulators receive what is sent to any customer).
    pub fn all_in_org(&self, org_id: &str) -> Vec<Arc<Session>> {
        self.lock()
            .iter()
            .filter(|((org, _), _)| org == org_id)
            .flat_map(|(_, app)| app.sockets.iter().cloned())
            .collect()
    }

    /// Candidate sockets for one delivery, starting with the next in round-robin order.
    pub fn candidates(&self, org_id: &str, app_id: &str) -> Vec<Arc<Session>> {
        let mut apps = self.lock();
        let Some(app) = apps.get_mut(&(org_id.to_string(), app_id.to_string())) else { return Vec::new() };
        let n = app.sockets.len();
        let start = app.next % n.max(1);
        app.next = app.next.wrapping_add(1);
        (0..n).map(|i| app.sockets[(start + i) % n].clone()).collect()
    }
}
