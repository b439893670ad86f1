//! File descriptors: raises the soft `RLIMIT_NOFILE` to the hard limit at start, and lowers the
//! RSocket listeners' connection caps when, together, they could hold more sockets than the
//! process may open (with the default 1,024 a busy server would otherwise hit EMFILE, and then
//! every listener, SIP and the database fail together).
//!
//! Owns that arithmetic and the start-up log line that states it. Does not own the listeners.

use tracing::{info, warn};

use crate::config::Config;

/// Descriptors kept for everything that is not an RSocket connection: the database pool and its
/// WAL files, listening sockets, logs, recordings being written.
const RESERVED: u64 = 256;

/// The process's descriptor limit, after trying to raise the soft limit to the hard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    /// The soft limit found at start, if it was raised.
    pub raised_from: Option<u64>,
}

impl Limit {
    pub fn raise() -> Limit {
        let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024);
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(soft) if soft > before => Limit { soft, raised_from: Some(before) },
            Ok(soft) => Limit { soft, raised_from: None },
            Err(e) => {
                warn!(error = %e, soft = before, "could not raise the file-descriptor limit");
                Limit { soft: before, raised_from: None }
            }
        }
    }
}

/// Each RSocket listener's caps, fitted to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub established: usize,
    pub pending: usize,
    /// Whether the configured caps had to be lowered.
    pub lowered: bool,
}

/// Fits the configured per-listener caps into what `limit` leaves once voice and the reserve
/// have theirs. Both caps shrink in proportion; neither goes below 16.
pub fn fit(config: &Config, limit: u64) -> Caps {
    let r = &config.rsocket;
    let listeners = [&config.listen.tls, &config.listen.tcp, &config.listen.ws, &config.listen.wss]
        .iter()
        .filter(|a| !a.trim().is_empty())
        .count()
        .max(1) as u64;
    let v = &config.voice;
    let voice = if v.sip_udp.trim().is_empty() {
        0
    } else {
        // One RTP socket per call, a recording file at most, and SIP over TCP.
        2 * v.max_calls as u64 + if v.sip_tcp.trim().is_empty() { 0 } else { v.sip_tcp_max_connections as u64 }
    };
    let share = limit.saturating_sub(RESERVED + voice) / listeners;
    let wanted = (r.max_connections + r.max_pending_setups) as u64;
    if wanted <= share {
        return Caps { established: r.max_connections, pending: r.max_pending_setups, lowered: false };
    }
    let established = (share * r.max_connections as u64 / wanted.max(1)).max(16) as usize;
    let pending = (share.saturating_sub(established as u64)).max(16) as usize;
    Caps { established, pending: pending.min(r.max_pending_setups), lowered: true }
}

/// Raises the limit, fits the caps and says so in the log. Returns the listeners' connection
/// settings with the fitted caps.
pub fn fitted(config: &Config) -> hodi_rsocket::Config {
    let limit = Limit::raise();
    let caps = fit(config, limit.soft);
    let mut settings = config.rsocket.connection_config();
    settings.max_connections = caps.established;
    settings.max_pending_setups = caps.pending;
    // Lowering caps nobody set is how the defaults are meant to work; lowering chosen ones is news.
    let chosen = config.rsocket.max_connections != hodi_rsocket::Config::default().max_connections;
    if caps.lowered && chosen {
        warn!(
            fd_limit = limit.soft,
            configured = config.rsocket.max_connections,
            configured_pending = config.rsocket.max_pending_setups,
            max_connections = caps.established,
            max_pending_setups = caps.pending,
            "the file-descriptor limit is too low for the configured connection caps; each RSocket listener now holds fewer (raise `ulimit -n`, or lower rsocket.max_connections)"
        );
    } else {
        info!(
            fd_limit = limit.soft,
            raised_from = limit.raised_from,
            max_connections = caps.established,
            max_pending_setups = caps.pending,
            "file descriptors: each RSocket listener holds up to max_connections established and max_pending_setups before SETUP"
        );
        if caps.lowered {
            info!(
                fd_limit = limit.soft,
                "connection caps fitted to the file-descriptor limit (raise `ulimit -n` for more)"
            );
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_descriptor_limit() {
        let config = Config::default();
        let roomy = fit(&config, 1 << 20);
        assert_eq!(roomy, Caps { established: 10_000, pending: 1_024, lowered: false });
        // 1,024 descriptors, 256 reserved, voice 2 × 1,000 + 1,024: nothing left but the floor.
        assert_eq!(fit(&config, 1024), Caps { established: 16, pending: 16, lowered: true });
        let mut no_voice = Config::default();
        no_voice.voice.sip_udp = String::new();
        let caps = fit(&no_voice, 20_000);
        // (20,000 - 256) / 4 listeners = 4,936, split 10,000 : 1,024.
        assert_eq!(caps, Caps { established: 4_477, pending: 459, lowered: true });
        assert!((caps.established + caps.pending) * 4 + 256 <= 20_000);
    }
}
