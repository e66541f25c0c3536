//! Time as the rules see it.
//!
//! No rule reads the system clock directly: the daemon is handed a [`Clock`]. In production it is the
//! system's; in the demo and the tests it is a [`SimClock`] that runs from a chosen start at a chosen
//! speed, anchored to a real instant so that separate processes (the simulator and a daemon that a test
//! kills and restarts) agree on "now" without talking to each other.

use std::sync::Arc;

use jiff::{Timestamp, tz::TimeZone};

/// The time zone every Vietnamese civil-service time is expressed in.
pub fn vn_tz() -> TimeZone {
    // Bundled tzdb (jiff feature `tzdb-bundle-always`): works on hosts without /usr/share/zoneinfo.
    TimeZone::get("Asia/Ho_Chi_Minh").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(7)))
}

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;

    /// What the clock will read after `real` of real time (retry schedules are stored in clock time).
    fn after_real(&self, real: std::time::Duration) -> Timestamp {
        let d = jiff::SignedDuration::try_from(real).unwrap_or(jiff::SignedDuration::MAX);
        self.now().checked_add(d).unwrap_or_else(|_| self.now())
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A simulated clock: reads `start` at the real instant `anchor`, and advances `speed` times faster
/// than real time from there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    pub start: Timestamp,
    pub anchor: Timestamp,
    pub speed: f64,
}

impl SimClock {
    /// A clock that reads `start` now and runs at `speed`.
    pub fn starting_now(start: Timestamp, speed: f64) -> Self {
        Self { start, anchor: Timestamp::now(), speed }
    }

    /// The simulated time at the real instant `real`.
    pub fn at(&self, real: Timestamp) -> Timestamp {
        let elapsed = real.duration_since(self.anchor).as_secs_f64() * self.speed;
        let nanos = (elapsed * 1e9) as i128;
        let span = jiff::SignedDuration::from_nanos_i128(nanos);
        self.start.checked_add(span).unwrap_or(self.start)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        self.at(Timestamp::now())
    }

    fn after_real(&self, real: std::time::Duration) -> Timestamp {
        let sim = jiff::SignedDuration::from_secs_f64(real.as_secs_f64() * self.speed);
        self.now().checked_add(sim).unwrap_or_else(|_| self.now())
    }
}

/// A task's schedule in clock time (which a simulated clock runs faster than real time): due at
/// the first look, then each time `every` has passed since the last run.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    every: jiff::SignedDuration,
    last: Option<Timestamp>,
}

impl Every {
    pub fn new(every: jiff::SignedDuration) -> Every {
        Every { every, last: None }
    }

    /// Whether a run is due at `now`; if so it counts as run, and the answer is the clock time
    /// since the last run (`every` at the first).
    pub fn due(&mut self, now: Timestamp) -> Option<jiff::SignedDuration> {
        let since = self.last.map_or(self.every, |l| now.duration_since(l));
        (self.last.is_none() || since >= self.every).then(|| {
            self.last = Some(now);
            since
        })
    }
}

/// Wait for the next look of an [`Every`] loop: a real second, or until `stop` fires.
pub async fn tick(stop: &tokio_util::sync::CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        _ = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_runs_at_its_speed_from_its_anchor() {
        let anchor: Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        let start: Timestamp = "2026-03-09T00:30:00Z".parse().unwrap();
        let c = SimClock { start, anchor, speed: 60.0 };
        let later = anchor.checked_add(jiff::SignedDuration::from_secs(10)).unwrap();
        assert_eq!(c.at(later), "2026-03-09T00:40:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(c.at(anchor), start);
    }

    #[test]
    fn due_at_the_first_look_then_each_time_the_interval_has_passed() {
        let t = |s: i64| Timestamp::from_second(1_773_000_000 + s).unwrap();
        let mut e = Every::new(jiff::SignedDuration::from_secs(60));
        assert_eq!(e.due(t(0)), Some(jiff::SignedDuration::from_secs(60)), "at once, a full interval");
        assert_eq!(e.due(t(59)), None);
        assert_eq!(e.due(t(75)), Some(jiff::SignedDuration::from_secs(75)), "the time since the last run");
        assert_eq!(e.due(t(100)), None);
    }
}
