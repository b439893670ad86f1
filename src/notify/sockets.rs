//! The app sockets that can take notifications, per (org, app), and how each takes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;

use super::subscription::Subscription;
use crate::socket::Session;

/// How a socket receives notifications.
#[derive(Clone)]
pub enum Via {
    /// Server-initiated REQUEST_RESPONSE (what the Elarian SDKs expect).
    Request,
    /// The socket's REQUEST_STREAM subscription (hodi-sdk), delivered only on demand.
    Stream(Arc<Subscription>),
}

/// One delivery target: a socket and the way it takes notifications.
#[derive(Clone)]
pub struct Target {
    pub session: Arc<Session>,
    pub via: Via,
}

impl Target {
    /// Can take a notification now (a subscription without credit cannot).
    pub fn ready(&self) -> bool {
        match &self.via {
            Via::Request => true,
            Via::Stream(sub) => sub.has_demand(),
        }
    }
}

#[derive(Default)]
struct AppSockets {
    targets: Vec<Target>,
    next: usize,
}

/// Notification-capable app sockets, per (org, app).
#[derive(Default)]
pub struct Sockets {
    apps: Mutex<HashMap<(String, String), AppSockets>>,
    /// Signalled whenever a socket registers or a subscription asks for more, so waiting work can
    /// go at once (one stored permit: a signal during a dispatcher pass is not lost).
    pub connected: Arc<tokio::sync::Notify>,
    /// Signalled whenever a socket comes or goes (the cluster's node task renews its claims then).
    pub changed: tokio::sync::Notify,
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), AppSockets>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(session: &Session) -> (String, String) {
        (session.org_id.clone(), session.app_id.clone())
    }

    /// Adds a socket that takes server-initiated requests; removed again when its connection closes.
    pub fn register(self: &Arc<Self>, session: Arc<Session>) {
        self.lock()
            .entry(Self::key(&session))
            .or_default()
            .targets
            .push(Target { session: session.clone(), via: Via::Request });
        self.connected.notify_one();
        self.changed.notify_one();
        let sockets = self.clone();
        tokio::spawn(async move {
            let reason = session.requester.closed().await;
            info!(connection_id = %session.connection_id, %reason, "session ended");
            sockets.remove(&session, |_| true);
        });
    }

    /// Makes `sub` the way `session` takes notifications (replacing server-initiated requests).
    /// Refused when the socket already has a subscription.
    pub fn subscribe(&self, session: &Arc<Session>, sub: Arc<Subscription>) -> Result<(), &'static str> {
        let mut apps = self.lock();
        let app = apps.entry(Self::key(session)).or_default();
        let mine = |t: &Target| t.session.connection_id == session.connection_id;
        if app.targets.iter().any(|t| mine(t) && matches!(t.via, Via::Stream(_))) {
            return Err("this socket already has a notification subscription");
        }
        app.targets.retain(|t| !mine(t));
        app.targets.push(Target { session: session.clone(), via: Via::Stream(sub) });
        Ok(())
    }

    /// `session`'s subscription, if it has one (looking does not move the round robin).
    pub fn subscription(&self, session: &Session) -> Option<Arc<Subscription>> {
        self.lock().get(&Self::key(session))?.targets.iter().find_map(|t| match &t.via {
            Via::Stream(sub) if t.session.connection_id == session.connection_id => Some(sub.clone()),
            _ => None,
        })
    }

    /// Drops `session`'s subscription (its stream ended).
    pub fn unsubscribe(&self, session: &Session) {
        self.remove(session, |t| matches!(t.via, Via::Stream(_)));
    }

    fn remove(&self, session: &Session, which: impl Fn(&Target) -> bool) {
        let key = Self::key(session);
        let mut apps = self.lock();
        if let Some(app) = apps.get_mut(&key) {
            app.targets.retain(|t| !(t.session.connection_id == session.connection_id && which(t)));
            if app.targets.is_empty() {
                apps.remove(&key);
            }
        }
        self.changed.notify_one();
    }

    /// Every org with sockets here, and how many.
    pub fn orgs(&self) -> std::collections::BTreeMap<String, usize> {
        let mut orgs = std::collections::BTreeMap::new();
        for ((org, _), sockets) in self.lock().iter() {
            *orgs.entry(org.clone()).or_default() += sockets.targets.len();
        }
        orgs
    }

    /// Every app with sockets here, and how many (ready or not), by app id.
    pub fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.lock().iter().map(|((_, app), sockets)| (app.clone(), sockets.targets.len())).collect()
    }

    /// Apps with at least one socket that can take a notification now.
    pub fn connected_apps(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, app)| app.targets.iter().any(Target::ready))
            .map(|((_, app), _)| app.clone())
            .collect()
    }

    /// The org an app with connected sockets belongs to.
    pub fn org_of(&self, app_id: &str) -> Option<String> {
        self.lock().keys().find(|(_, app)| app == app_id).map(|(org, _)| org.clone())
    }

    /// Notifications sent on the app's subscriptions and not yet answered, all sockets together.
    pub fn awaiting_on_subscriptions(&self, org_id: &str, app_id: &str) -> usize {
        let apps = self.lock();
        let Some(app) = apps.get(&(org_id.to_string(), app_id.to_string())) else { return 0 };
        app.targets
            .iter()
            .map(|t| match &t.via {
                Via::Stream(sub) => sub.awaiting(),
                Via::Request => 0,
            })
            .sum()
    }

    /// Every socket of every app of `org_id` (simulators receive what is sent to any customer).
    pub fn all_in_org(&self, org_id: &str) -> Vec<Arc<Session>> {
        self.lock()
            .iter()
            .filter(|((org, _), _)| org == org_id)
            .flat_map(|(_, app)| app.targets.iter().map(|t| t.session.clone()))
            .collect()
    }

    /// Whether `app_id` of `org_id` has a socket here (looking does not move the round robin).
    pub fn holds(&self, org_id: &str, app_id: &str) -> bool {
        self.lock().contains_key(&(org_id.to_string(), app_id.to_string()))
    }

    /// Candidate targets for one delivery, starting with the next in round-robin order.
    pub fn candidates(&self, org_id: &str, app_id: &str) -> Vec<Target> {
        let mut apps = self.lock();
        let Some(app) = apps.get_mut(&(org_id.to_string(), app_id.to_string())) else { return Vec::new() };
        let n = app.targets.len();
        let start = app.next % n.max(1);
        app.next = app.next.wrapping_add(1);
        (0..n).map(|i| app.targets[(start + i) % n].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::Credential;

    /// A session on one end of an in-memory pipe (its requester works; nothing reads the other end).
    async fn session(id: &str, app: &str) -> (Arc<Session>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let io = hodi_rsocket::transport::length_prefixed::frame_io(ours, 1 << 20, id.to_string());
        let responder = Arc::new(hodi_rsocket::echo::Echo::default());
        let requester =
            hodi_rsocket::connect(io, Default::default(), responder, Default::default()).await.expect("setup");
        let session = Session {
            connection_id: id.into(),
            org_id: "org".into(),
            app_id: app.into(),
            simulator: false,
            simplex: false,
            peer: "test".into(),
            requester,
            credential: Credential::ApiKey,
        };
        (Arc::new(session), theirs)
    }

    fn first(sockets: &Sockets) -> String {
        sockets.candidates("org", "app")[0].session.connection_id.clone()
    }

    #[tokio::test]
    async fn candidates_rotate_and_looking_does_not_move_the_rotation() {
        let sockets = Arc::new(Sockets::default());
        let mut pipes = Vec::new();
        for id in ["a", "b", "c"] {
            let (s, pipe) = session(id, "app").await;
            sockets.register(s);
            pipes.push(pipe);
        }
        let (other, _pipe) = session("z", "other-app").await;
        sockets.register(other.clone());
        // Each delivery starts one further on, in the order the sockets came.
        let rotation: Vec<String> = (0..4).map(|_| first(&sockets)).collect();
        assert_eq!(rotation, ["a", "b", "c", "a"]);
        // Looking (subscriptions, connected apps, an org's sockets) does not move it.
        for _ in 0..5 {
            let _ = sockets.subscription(&other);
            let _ = sockets.connected_apps();
            let _ = sockets.all_in_org("org");
            let _ = sockets.awaiting_on_subscriptions("org", "app");
        }
        assert_eq!(first(&sockets), "b", "the rotation moved while only looking");
        let everyone = sockets.candidates("org", "app");
        assert_eq!(everyone.len(), 3, "one app's sockets only");
        let mut ids: Vec<_> = everyone.iter().map(|t| t.session.connection_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"], "every socket is a candidate");
    }
}
