//! The portal's lateness against the sources' own: which dossiers the portal shows late, and how
//! many of them are **falsely** late (the case's authoritative record, judged by the same rule,
//! is not late: it ended on time, or its due time has not passed). What the bridge is for is
//! keeping that number at zero (architecture invariant 3); while the portal is down, or while a
//! finish waits in the bridge's queue, it is not, and the meter here adds it up over simulated
//! time.
//!
//! The meter is sampled at each tick of the world (`SimOptions::tick`): the false-late count at a
//! sample is taken to have held since the previous sample. Each sample judges every portal copy,
//! so it costs about as much as a `/_sim/portal` read, without the copying.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The portal's lateness now, and the false-late total since the meter started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortalLateness {
    /// Simulated time of the reading.
    pub at: Option<Timestamp>,
    /// Live copies the portal shows late now (closed duplicates are never late).
    pub shown_late: usize,
    /// Of them, those whose case the sources do not judge late: shown late falsely.
    pub false_late: usize,
    /// Their codes, sorted.
    pub false_late_codes: Vec<String>,
    /// Sum over the world's ticks of the false-late count times the simulated minutes since the
    /// previous tick: the false-late dossier-minutes since `since`.
    pub false_late_dossier_minutes: f64,
    /// The highest false-late count a tick saw.
    pub peak_false_late: usize,
    /// Ticks sampled.
    pub samples: u64,
    /// Simulated time of the first sample (or of the last reset).
    pub since: Option<Timestamp>,
}

/// The running totals between readings.
#[derive(Debug, Default)]
pub struct LateMeter {
    since: Option<Timestamp>,
    last: Option<Timestamp>,
    dossier_minutes: f64,
    peak: usize,
    samples: u64,
}

impl LateMeter {
    /// A sample at `now`: `false_late` dossiers are shown late falsely. A sample earlier than the
    /// previous one (it cannot happen with one clock) adds nothing.
    pub fn sample(&mut self, now: Timestamp, false_late: usize) {
        if let Some(last) = self.last {
            let minutes = now.duration_since(last).as_secs_f64() / 60.0;
            if minutes > 0.0 {
                self.dossier_minutes += false_late as f64 * minutes;
            }
        }
        self.since.get_or_insert(now);
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        self.peak = self.peak.max(false_late);
        self.samples += 1;
    }

    /// Start counting again from `now` (the benchmark leaves out the bridge's first catching up).
    pub fn reset(&mut self, now: Timestamp) {
        *self = LateMeter { since: Some(now), last: Some(now), ..LateMeter::default() };
    }

    /// A reading: the counts of now with the totals so far.
    pub fn reading(&self, now: Timestamp, shown_late: usize, false_late_codes: Vec<String>) -> PortalLateness {
        PortalLateness {
            at: Some(now),
            shown_late,
            false_late: false_late_codes.len(),
            false_late_codes,
            false_late_dossier_minutes: self.dossier_minutes,
            peak_false_late: self.peak,
            samples: self.samples,
            since: self.since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_adds_each_count_over_the_time_since_the_previous_sample() {
        let t = |m: i64| "2026-03-09T01:00:00Z".parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_mins(m);
        let mut m = LateMeter::default();
        m.sample(t(0), 5);
        m.sample(t(10), 2);
        m.sample(t(15), 0);
        m.sample(t(20), 3);
        let r = m.reading(t(20), 4, vec!["A".into(), "B".into(), "C".into()]);
        assert_eq!(r.false_late_dossier_minutes, 2.0 * 10.0 + 3.0 * 5.0);
        assert_eq!((r.peak_false_late, r.samples, r.false_late, r.shown_late), (5, 4, 3, 4));
        assert_eq!(r.since, Some(t(0)));
        m.reset(t(30));
        m.sample(t(31), 1);
        let r = m.reading(t(31), 1, vec!["A".into()]);
        assert_eq!((r.false_late_dossier_minutes, r.peak_false_late, r.since), (1.0, 1, Some(t(30))));
    }
}
