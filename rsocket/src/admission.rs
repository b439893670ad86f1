//! Who may hold a connection: a cap in total and per source address, and an accept loop's
//! patience when the process is out of file descriptors.
//!
//! Used by every TCP accept loop Hodi runs (RSocket listeners and SIP over TCP). Owns counting
//! only; what a listener does with a refused peer (close at once, or answer first) is its own.
//!
//! - [`Admission`]: places held, in total and per address.
//! - [`Gate`]: an RSocket connection's two budgets: a pending place from accept to SETUP, then an
//!   established place.
//! - [`Failures`]: addresses whose SETUPs keep being refused wait, doubling, before the next is
//!   looked at (credential guessing is slowed per address).
//! - [`Throttle`], [`AcceptBackoff`]: warnings at most once per interval; patience on EMFILE.
//! - [`AdmittedListener`]: all of it for a plain accept loop (the webhooks, the inbox, SIP over
//!   TCP): the next connection that got a place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
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

/// An RSocket server connection's places. From accept until its SETUP it holds a pending place
/// (silent and slow peers spend that budget only); [`Gate::establish`] then trades it for an
/// established place, held until the connection ends.
#[derive(Debug)]
pub struct Gate {
    address: IpAddr,
    pending: Option<Ticket>,
    established: Admission,
    held: Option<Ticket>,
    failures: Failures,
}

impl Gate {
    pub fn new(address: IpAddr, pending: Ticket, established: Admission, failures: Failures) -> Gate {
        Gate { address, pending: Some(pending), established, held: None, failures }
    }

    /// The source address this gate counts against.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Takes an established place and gives back the pending one.
    pub fn establish(&mut self) -> Result<(), Refused> {
        let ticket = self.established.admit(self.address)?;
        self.held = Some(ticket);
        self.pending = None;
        Ok(())
    }

    /// If this address must wait before its next SETUP is looked at, how long it still has.
    pub fn barred(&self) -> Option<Duration> {
        self.failures.barred(self.address)
    }

    /// A SETUP from this address was refused (bad credentials or the like).
    pub fn failed(&self) {
        self.failures.failed(self.address);
    }

    /// A SETUP from this address was accepted: its record of failures is forgotten.
    pub fn succeeded(&self) {
        self.failures.forgive(self.address);
    }
}

/// Refused SETUPs per source address. After `allowed` refusals in a row, an address waits 1 s
/// before its next SETUP is looked at, doubling with each further refusal to 60 s; a success
/// forgives, and so do ten quiet minutes. Remembers at most [`Failures::REMEMBERED`] addresses.
#[derive(Debug, Clone)]
pub struct Failures {
    allowed: u32,
    seen: Arc<Mutex<HashMap<IpAddr, Record>>>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    count: u32,
    last: Instant,
    until: Option<Instant>,
}

impl Failures {
    pub const REMEMBERED: usize = 65_536;
    const FIRST_WAIT: Duration = Duration::from_secs(1);
    const MAX_WAIT: Duration = Duration::from_secs(60);
    const FORGET_AFTER: Duration = Duration::from_secs(600);

    pub fn new(allowed: u32) -> Failures {
        Failures { allowed, seen: Default::default() }
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn barred(&self, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let until = self.seen().get(&address)?.until?;
        until.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    pub fn failed(&self, address: IpAddr) {
        let now = Instant::now();
        let mut seen = self.seen();
        if seen.len() >= Self::REMEMBERED && !seen.contains_key(&address) {
            seen.retain(|_, r| now.duration_since(r.last) < Self::FORGET_AFTER);
            if seen.len() >= Self::REMEMBERED {
                // Tens of thousands of addresses failing at once: keep the ones serving a wait.
                seen.retain(|_, r| r.until.is_some_and(|u| u > now));
            }
        }
        let record = seen.entry(address).or_insert(Record { count: 0, last: now, until: None });
        if now.duration_since(record.last) >= Self::FORGET_AFTER {
            *record = Record { count: 0, last: now, until: None };
        }
        record.count = record.count.saturating_add(1);
        record.last = now;
        if record.count > self.allowed {
            let doublings = (record.count - self.allowed - 1).min(6);
            let wait = (Self::FIRST_WAIT * 2u32.pow(doublings)).min(Self::MAX_WAIT);
            record.until = Some(now + wait);
        }
    }

    pub fn forgive(&self, address: IpAddr) {
        self.seen().remove(&address);
    }
}

/// Says when a repeated event should be logged: at most once per interval, with how many
/// happened since the last time it was.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None, count: 0 }
    }

    /// Counts one event; `Some(n)` when it is time to log the `n` counted since the last log.
    pub fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_none_or(|at| at.elapsed() >= self.every) {
            self.last = Some(Instant::now());
            return Some(std::mem::take(&mut self.count));
        }
        None
    }
}

/// What an accept loop does after `accept()` fails: EMFILE/ENFILE/ENOMEM do not clear by
/// retrying at once, so it waits 10 ms, doubling to 1 s while failures go on, and warns once per
/// 10 s with how many there were (a full descriptor table would otherwise spin and flood logs).
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    wait: Duration,
    warnings: Throttle,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff { listener, wait: Self::FIRST, warnings: Throttle::new(Duration::from_secs(10)) }
    }

    /// An accept succeeded: the next failure starts over.
    pub fn accepted(&mut self) {
        self.wait = Self::FIRST;
    }

    /// An accept failed: logs (rate-limited) and sleeps.
    pub async fn failed(&mut self, error: &std::io::Error) {
        if let Some(failures) = self.warnings.hit() {
            warn!(listener = self.listener, %error, failures, backoff_ms = self.wait.as_millis() as u64, "accept failing; backing off");
        }
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(Self::MAX);
    }
}

/// A listening socket whose connections must each hold a place of an [`Admission`]: one without a
/// place is closed at once (counted, and warned of at most once per 10 s), and failing accepts
/// back off ([`AcceptBackoff`]).
#[derive(Debug)]
pub struct AdmittedListener {
    name: &'static str,
    socket: tokio::net::TcpListener,
    admission: Admission,
    backoff: AcceptBackoff,
    refusals: Throttle,
}

impl AdmittedListener {
    pub fn new(name: &'static str, socket: tokio::net::TcpListener, admission: Admission) -> AdmittedListener {
        AdmittedListener {
            name,
            socket,
            admission,
            backoff: AcceptBackoff::new(name),
            refusals: Throttle::new(Duration::from_secs(10)),
        }
    }

    /// The next connection that got a place, and the place; None once `shutdown` is cancelled.
    pub async fn next(
        &mut self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Option<(tokio::net::TcpStream, std::net::SocketAddr, Ticket)> {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return None,
                accepted = self.socket.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    self.backoff.failed(&e).await;
                    continue;
                }
            };
            self.backoff.accepted();
            match self.admission.admit(peer.ip()) {
                Ok(ticket) => return Some((stream, peer, ticket)),
                Err(refused) => {
                    if let Some(count) = self.refusals.hit() {
                        warn!(listener = self.name, %peer, %refused, count,
                            "connections closed at accept (count since the last warning)");
                    }
                    // Dropping `stream` closes it.
                }
            }
        }
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

    #[test]
    fn a_gate_trades_its_pending_place_for_an_established_one() {
        let pending = Admission::new("pending", 10, 10);
        let established = Admission::new("established", 1, 1);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut first = Gate::new(ip, pending.admit(ip).expect("pending"), established.clone(), Failures::new(1));
        assert_eq!(pending.held(), 1);
        first.establish().expect("a place");
        assert_eq!((pending.held(), established.held()), (0, 1));
        let mut second = Gate::new(ip, pending.admit(ip).expect("pending"), established.clone(), Failures::new(1));
        assert!(second.establish().is_err(), "the established budget is full");
        assert_eq!(pending.held(), 1, "a refused gate keeps its pending place until it is dropped");
        drop((first, second));
        assert_eq!((pending.held(), established.held()), (0, 0));
    }

    #[test]
    fn failures_past_the_allowance_bar_an_address_and_success_forgives() {
        let f = Failures::new(2);
        let (ip, other): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        f.failed(ip);
        f.failed(ip);
        assert_eq!(f.barred(ip), None, "two refusals are allowed");
        f.failed(ip);
        let wait = f.barred(ip).expect("the third refusal bars the address");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        f.failed(ip);
        assert!(f.barred(ip).expect("still barred") > Duration::from_secs(1), "each refusal doubles the wait");
        assert_eq!(f.barred(other), None, "another address is not affected");
        f.forgive(ip);
        assert_eq!(f.barred(ip), None);
    }

    #[test]
    fn a_throttle_reports_counts_once_per_interval() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(), Some(1));
        assert_eq!((t.hit(), t.hit()), (None, None));
        t.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(t.hit(), Some(3));
    }
}
