//! Failpoints for the crash campaign: named places where a test can have the daemon killed, at the
//! instants a random kill would rarely hit (inside a store transaction, between a portal call and
//! the record of its answer).
//!
//! `DVC_BRIDGE_FAILPOINTS="delivery.after_call=3,store.ingest.before_commit=10"` kills the process
//! with SIGKILL the 3rd time delivery gets a portal answer, or the 10th time an ingest transaction
//! is about to commit, whichever comes first. SIGKILL, not a panic or an exit: nothing unwinds,
//! no destructor runs, no buffer is flushed, exactly as `kill -9` from outside.
//!
//! Only debug builds (the ones `cargo test` runs) honour the variable: a release build, the one a
//! city installs, compiles every failpoint to nothing. A cargo feature (as the `fail` crate does it)
//! would have made the README's test command carry a feature flag for the same effect.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable that arms failpoints.
pub const ENV: &str = "DVC_BRIDGE_FAILPOINTS";

/// Every failpoint, for the campaign to choose from and for `arm` to check names against.
pub const ALL: &[&str] = &[
    // Inside the transaction that stores a page of records, its links, outbox rows and cursor.
    "store.ingest.before_commit",
    // Rows taken and marked sent; the portal not called yet.
    "delivery.before_call",
    // The portal answered (it applied the batch); nothing of the answer recorded.
    "delivery.after_call",
    // Inside the transaction that records a batch's acknowledgements.
    "store.ack.before_commit",
    // The portal accepted progress steps; not yet marked sent.
    "delivery.progress_after_call",
];

struct Armed {
    name: String,
    /// Hits left before the kill.
    left: AtomicU32,
}

fn armed() -> &'static [Armed] {
    static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(ENV).map(|v| parse(&v)).unwrap_or_default())
}

fn parse(spec: &str) -> Vec<Armed> {
    spec.split(',')
        .filter_map(|item| {
            let (name, n) = item.trim().split_once('=').unwrap_or((item.trim(), "1"));
            let n: u32 = n.trim().parse().ok()?;
            ALL.contains(&name).then(|| Armed { name: name.to_string(), left: AtomicU32::new(n.max(1)) })
        })
        .collect()
}

/// Pass through the failpoint `name`: kills the process here if it is armed and its count is up.
#[inline]
pub fn hit(name: &'static str) {
    if !cfg!(debug_assertions) {
        return;
    }
    debug_assert!(ALL.contains(&name), "failpoint {name} is not in failpoint::ALL");
    for a in armed() {
        if a.name == name && a.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            eprintln!("failpoint {name}: killing the process");
            // SAFETY: kill(2) on our own pid with a constant signal has no memory effects.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_arms_known_points_with_their_counts() {
        let armed = parse("delivery.after_call=3, store.ingest.before_commit ,nonsense=2,delivery.before_call=x");
        let got: Vec<(&str, u32)> = armed.iter().map(|a| (a.name.as_str(), a.left.load(Ordering::SeqCst))).collect();
        assert_eq!(got, [("delivery.after_call", 3), ("store.ingest.before_commit", 1)]);
    }
}
