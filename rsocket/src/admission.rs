//! Who may hold a connection: a cap in total and per source address, and an accept loop's
//! patience when the process is out of file descriptors.
//!
//! Used by every TCP accept loop Hodi runs (RSocket listeners and SIP over TCP). Owns counting
//! only; what a listener does with a refused peer (close at once, or answer first) is its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

/// Counts connections held, in total and per source address.
#[derive(Debug, Clone)]
pub struct Admission {
    what: &'static str,
    total: usize,
    per_address: usize,
    held: Arc<Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A held place; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    held: Arc<Mutex<Held>>,
    address: IpAddr,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{what}: {limit} connections held, the limit")]
    Full { what: &'static str, limit: usize },
    #[error("{what}: {limit} connections from this address, the limit per address")]
    Address { what: &'static str, limit: usize },
}

impl Admission {
    /// `what` names the budget in refusals and logs ("sip_tcp", "listen.tcp setup" …).
    pub fn new(what: &'static str, total: usize, per_address: usize) -> Admission {
        Admission { what, total: total.max(1), per_address: per_address.max(1), held: Default::default() }
    }

    pub fn admit(&self, address: IpAddr) -> Result<Ticket, Refused> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.total >= self.total {
            return Err(Refused::Full { what: self.what, limit: self.total });
        }
        let mine = held.by_address.entry(address).or_insert(0);
        if *mine >= self.per_address {
            return Err(Refused::Address { what: self.what, limit: self.per_address });
        }
        *mine += 1;
        held.total += 1;
        Ok(Ticket { held: self.held.clone(), address })
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

/// What an accept loop does after `accept()` fails: EMFILE/ENFILE/ENOMEM do not clear by
/// retrying at once, so it waits 10 ms, doubling to 1 s while failures go on, and warns once per
/// 10 s with how many there were (a full descriptor table would otherwise spin and flood logs).
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    wait: Duration,
    failures: u64,
    warned: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(10);

    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff { listener, wait: Self::FIRST, failures: 0, warned: None }
    }

    /// An accept succeeded: the next failure starts over.
    pub fn accepted(&mut self) {
        self.wait = Self::FIRST;
    }

    /// An accept failed: logs (rate-limited) and sleeps.
    pub async fn failed(&mut self, error: &std::io::Error) {
        self.failures += 1;
        if self.warned.is_none_or(|at| at.elapsed() >= Self::WARN_EVERY) {
            warn!(listener = self.listener, %error, failures = self.failures, backoff_ms = self.wait.as_millis() as u64, "accept failing; backing off");
            self.warned = Some(Instant::now());
            self.failures = 0;
        }
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(Self::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_and_given_back() {
        let a = Admission::new("test", 3, 2);
        let (one, two): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t1 = a.admit(one).expect("first");
        let t2 = a.admit(one).expect("second");
        assert_eq!(a.admit(one).unwrap_err(), Refused::Address { what: "test", limit: 2 });
        let t3 = a.admit(two).expect("another address");
        assert_eq!(a.admit(two).unwrap_err(), Refused::Full { what: "test", limit: 3 });
        drop(t1);
        let _t4 = a.admit(one).expect("a place given back");
        drop((t2, t3));
        assert_eq!(a.held(), 1);
    }
}
