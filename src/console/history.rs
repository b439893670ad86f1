//! Outbox depth over time, per org, for the dashboard's chart: sampled every few seconds while
//! somebody is logged in to the console, the last [`SAMPLES`] kept in memory per org (orgs are
//! provisioned, so the whole is bounded). Lost at restart; Prometheus keeps the long history.
//!
//! Owns the samples and the sampling task; reads the store, writes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::login::Sessions;
use crate::context::Hodi;

/// Samples kept per org: ten minutes at [`EVERY`].
pub const SAMPLES: usize = 120;
pub const EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct History {
    by_org: Mutex<HashMap<String, VecDeque<(i64, i64)>>>,
}

impl History {
    /// Records one sample: `depths` for the orgs with something waiting, 0 for the others shown
    /// and for the `watched` ones (a console is open on them).
    pub fn record(&self, at: i64, depths: &[(String, i64)], watched: &[String]) {
        let mut by_org = self.by_org.lock().unwrap_or_else(|p| p.into_inner());
        for org in depths.iter().map(|(o, _)| o).chain(watched) {
            if !by_org.contains_key(org) {
                by_org.insert(org.clone(), VecDeque::with_capacity(SAMPLES));
            }
        }
        for (org, series) in by_org.iter_mut() {
            let depth = depths.iter().find(|(o, _)| o == org).map_or(0, |(_, d)| *d);
            if series.len() == SAMPLES {
                series.pop_front();
            }
            series.push_back((at, depth));
        }
    }

    /// The org's samples, oldest first: (unix ms, depth).
    pub fn of_org(&self, org_id: &str) -> Vec<(i64, i64)> {
        let by_org = self.by_org.lock().unwrap_or_else(|p| p.into_inner());
        by_org.get(org_id).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// Takes one sample now from the store.
    pub async fn sample(&self, hodi: &Hodi, watched: &[String]) {
        match hodi.store.outbox_by_org().await {
            Ok(depths) => self.record(crate::store::now_ms(), &depths, watched),
            Err(e) => tracing::warn!(error = %e, "console: sampling the outbox"),
        }
    }
}

/// Samples every [`EVERY`] while a console session is open, until `shutdown`.
pub fn start(hodi: Arc<Hodi>, history: Arc<History>, sessions: Arc<Sessions>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let watched = sessions.orgs();
            if !watched.is_empty() {
                history.sample(&hodi, &watched).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded_and_an_emptied_outbox_reads_zero() {
        let h = History::default();
        h.record(1, &[("a".into(), 5)], &[]);
        h.record(2, &[], &["b".into()]);
        assert_eq!(h.of_org("a"), vec![(1, 5), (2, 0)]);
        assert_eq!(h.of_org("b"), vec![(2, 0)], "a watched org with nothing waiting has a point");
        for t in 3..(SAMPLES as i64 + 10) {
            h.record(t, &[("a".into(), t)], &[]);
        }
        let a = h.of_org("a");
        assert_eq!(a.len(), SAMPLES);
        assert_eq!(a.last(), Some(&(SAMPLES as i64 + 9, SAMPLES as i64 + 9)));
        assert!(h.of_org("c").is_empty());
    }
}
