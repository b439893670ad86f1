//! Where each registered SIP user can be reached: the contacts its devices registered, each with
//! an expiry and the way back to the device (the UDP address the REGISTER came from, or its TCP
//! connection), as RFC 3261 §10.3 keeps them.
//!
//! Sans-IO apart from holding the [`Transport`]: the clock is passed in. Bounded: at most
//! `per_user` contacts per user (a new device beyond them replaces the one expiring first) and
//! `total` in all (beyond it new registrations are refused, existing ones still refresh).
//!
//! Owns the table; does not own authentication (see [`super`]) nor calling the devices.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::voice::sip::transport::Transport;

/// A user: (domain, user name), both as registered (domains compared in lower case).
pub type Aor = (String, String);

/// One registered device.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The Contact URI, as the device gave it.
    pub contact: String,
    pub transport: Transport,
    pub expires_at: Instant,
    /// The REGISTER's Call-ID and CSeq: a refresh from the same Call-ID must count up.
    call_id: String,
    cseq: u32,
}

/// A Contact of a REGISTER: its URI and how long it wants to stay (0 removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub contact: String,
    pub expires: Duration,
}

/// Why a REGISTER changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The same Call-ID with a CSeq not above the last one: out of order (§10.3 step 7).
    OutOfOrder,
    /// The table is full.
    Full,
}

pub struct Bindings {
    by_user: HashMap<Aor, Vec<Binding>>,
    count: usize,
    per_user: usize,
    total: usize,
}

impl Bindings {
    pub fn new(per_user: usize, total: usize) -> Bindings {
        Bindings { by_user: HashMap::new(), count: 0, per_user: per_user.max(1), total }
    }

    /// Devices registered now, all users.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Applies a REGISTER's changes (`None`: `Contact: *` with expiry 0, remove all) and returns
    /// the user's contacts afterwards.
    pub fn register(
        &mut self,
        aor: &Aor,
        call_id: &str,
        cseq: u32,
        changes: Option<&[Change]>,
        transport: &Transport,
        now: Instant,
    ) -> Result<Vec<Binding>, Refused> {
        self.expire_user(aor, now);
        let existing = self.by_user.get(aor).map(Vec::as_slice).unwrap_or_default();
        if existing.iter().any(|b| b.call_id == call_id && cseq <= b.cseq) {
            return Err(Refused::OutOfOrder);
        }
        let Some(changes) = changes else {
            let removed = self.by_user.remove(aor).map_or(0, |v| v.len());
            self.count -= removed;
            return Ok(Vec::new());
        };
        let adds =
            changes.iter().filter(|c| !c.expires.is_zero() && !existing.iter().any(|b| b.contact == c.contact)).count();
        // New devices beyond the user's limit replace old ones: only growth needs room.
        let growth = (existing.len() + adds).min(self.per_user).saturating_sub(existing.len());
        if growth > 0 && self.count + growth > self.total {
            return Err(Refused::Full);
        }
        let list = self.by_user.entry(aor.clone()).or_default();
        let before = list.len();
        for c in changes {
            list.retain(|b| b.contact != c.contact);
            if c.expires.is_zero() {
                continue;
            }
            if list.len() >= self.per_user {
                // The device expiring first makes room (it is the one most likely gone).
                if let Some(first) = list.iter().enumerate().min_by_key(|(_, b)| b.expires_at).map(|(i, _)| i) {
                    list.remove(first);
                }
            }
            list.push(Binding {
                contact: c.contact.clone(),
                transport: transport.clone(),
                expires_at: now + c.expires,
                call_id: call_id.to_string(),
                cseq,
            });
        }
        let after = list.len();
        let current = list.clone();
        if after == 0 {
            self.by_user.remove(aor);
        }
        self.count = self.count + after - before;
        Ok(current)
    }

    /// The user's devices now.
    pub fn lookup(&mut self, aor: &Aor, now: Instant) -> Vec<Binding> {
        self.expire_user(aor, now);
        self.by_user.get(aor).cloned().unwrap_or_default()
    }

    /// Drops every expired binding (called now and then, so users nobody looks up do not linger).
    pub fn sweep(&mut self, now: Instant) {
        let mut count = 0;
        self.by_user.retain(|_, list| {
            list.retain(|b| b.expires_at > now);
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }

    fn expire_user(&mut self, aor: &Aor, now: Instant) {
        if let Some(list) = self.by_user.get_mut(aor) {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            self.count -= before - list.len();
            if list.is_empty() {
                self.by_user.remove(aor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn transport() -> Transport {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        Transport::Tcp(tx, SocketAddr::from(([127, 0, 0, 1], 5070)))
    }

    fn change(contact: &str, secs: u64) -> Change {
        Change { contact: contact.into(), expires: Duration::from_secs(secs) }
    }

    #[test]
    fn contacts_are_added_refreshed_expired_and_removed() {
        let mut b = Bindings::new(3, 100);
        let aor = ("acme.example".to_string(), "alice".to_string());
        let t0 = Instant::now();
        let got = b.register(&aor, "c1", 1, Some(&[change("sip:a@1", 60), change("sip:a@2", 120)]), &transport(), t0);
        assert_eq!(got.map(|v| v.len()), Ok(2));
        assert_eq!(b.len(), 2);
        // Out of order on the same Call-ID is refused; another Call-ID (another phone) is not.
        assert_eq!(b.register(&aor, "c1", 1, Some(&[]), &transport(), t0).err(), Some(Refused::OutOfOrder));
        b.register(&aor, "c2", 1, Some(&[change("sip:a@3", 600)]), &transport(), t0).expect("second phone");
        assert_eq!(b.len(), 3);
        // A fourth contact replaces the one expiring first.
        b.register(&aor, "c3", 1, Some(&[change("sip:a@4", 600)]), &transport(), t0).expect("fourth");
        let now: Vec<String> = b.lookup(&aor, t0).into_iter().map(|x| x.contact).collect();
        assert_eq!(now, ["sip:a@2", "sip:a@3", "sip:a@4"]);
        // Expiry, then removal by expires=0 and by `*`.
        assert_eq!(b.lookup(&aor, t0 + Duration::from_secs(121)).len(), 2);
        assert_eq!(b.len(), 2);
        b.register(&aor, "c2", 2, Some(&[change("sip:a@3", 0)]), &transport(), t0).expect("remove one");
        assert_eq!(b.len(), 1);
        b.register(&aor, "c3", 2, None, &transport(), t0).expect("remove all");
        assert!(b.is_empty());
        assert!(b.lookup(&aor, t0).is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_devices_but_not_refreshes() {
        let mut b = Bindings::new(2, 2);
        let t0 = Instant::now();
        for user in ["u1", "u2"] {
            let aor = ("d".to_string(), user.to_string());
            b.register(&aor, user, 1, Some(&[change("sip:x@1", 60)]), &transport(), t0).expect("room");
        }
        let third = ("d".to_string(), "u3".to_string());
        assert_eq!(
            b.register(&third, "u3", 1, Some(&[change("sip:x@1", 60)]), &transport(), t0).err(),
            Some(Refused::Full)
        );
        let first = ("d".to_string(), "u1".to_string());
        b.register(&first, "u1", 2, Some(&[change("sip:x@1", 60)]), &transport(), t0).expect("refresh");
        assert_eq!(b.len(), 2);
        b.sweep(t0 + Duration::from_secs(61));
        assert!(b.is_empty());
    }
}
