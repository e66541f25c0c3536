//! In-process counters the demo's live line reads (and, later, the metrics endpoint).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from sources.
    pub polled: AtomicU64,
    pub new: AtomicU64,
    pub changed: AtomicU64,
    pub quarantined: AtomicU64,
    /// Dossier objects the portal acknowledged.
    pub pushed: AtomicU64,
    /// Duplicate codes closed on the portal.
    pub closed: AtomicU64,
    /// Progress steps the portal acknowledged.
    pub steps: AtomicU64,
    pub parked: AtomicU64,
    pub poll_errors: AtomicU64,
    pub push_errors: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
