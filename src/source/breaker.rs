//! A circuit breaker per source: a system that keeps failing, or answers too slowly, is left alone
//! for a cooling-off period and then probed with one poll. The seeds: ministry systems hang at peak
//! hours; the bridge must never hammer them and never give up on them.
//!
//! Pure: the caller passes the instants, so tests drive it without sleeping.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Failed (or slow) polls in a row that open the breaker.
    pub failures_to_open: u32,
    /// The first cooling-off period; doubles each time a probe fails, up to `max_cooldown`.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Polling normally; counts failures in a row.
    Closed { failures: u32 },
    /// Not polling until `until`.
    Open { until: Instant, cooldown: Duration },
    /// The next poll is a probe: success closes, failure reopens for longer.
    HalfOpen { cooldown: Duration },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }
}

/// What a poll's outcome did to the breaker, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cooldown: Duration },
    Probing,
    Closed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: State,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self { cfg, state: State::Closed { failures: 0 } }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How long to wait before the next poll is allowed (zero: poll now). Moves an open breaker
    /// whose time is up to half-open.
    pub fn wait(&mut self, now: Instant) -> (Duration, Option<Transition>) {
        match self.state {
            State::Open { until, cooldown } if now >= until => {
                self.state = State::HalfOpen { cooldown };
                (Duration::ZERO, Some(Transition::Probing))
            }
            State::Open { until, .. } => (until - now, None),
            _ => (Duration::ZERO, None),
        }
    }

    /// Record a poll: `healthy` is false for a failure or a poll slower than allowed.
    pub fn record(&mut self, now: Instant, healthy: bool) -> Option<Transition> {
        match (self.state, healthy) {
            (State::Closed { .. }, true) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, false) if failures + 1 >= self.cfg.failures_to_open => {
                self.open(now, self.cfg.cooldown)
            }
            (State::Closed { failures }, false) => {
                self.state = State::Closed { failures: failures + 1 };
                None
            }
            (State::HalfOpen { .. }, true) | (State::Open { .. }, true) => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen { cooldown }, false) | (State::Open { cooldown, .. }, false) => {
                self.open(now, (cooldown * 2).min(self.cfg.max_cooldown))
            }
        }
    }

    fn open(&mut self, now: Instant, cooldown: Duration) -> Option<Transition> {
        self.state = State::Open { until: now + cooldown, cooldown };
        Some(Transition::Opened { cooldown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig { failures_to_open: 3, cooldown: Duration::from_secs(60), max_cooldown: Duration::from_secs(600) }
    }

    #[test]
    fn opens_after_repeated_failures_probes_then_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        assert_eq!(b.record(t0, false), None);
        assert_eq!(b.record(t0, false), None);
        assert_eq!(b.record(t0, false), Some(Transition::Opened { cooldown: Duration::from_secs(60) }));
        assert_eq!(b.wait(t0 + Duration::from_secs(10)), (Duration::from_secs(50), None));
        assert_eq!(b.wait(t0 + Duration::from_secs(60)), (Duration::ZERO, Some(Transition::Probing)));
        assert_eq!(b.record(t0 + Duration::from_secs(61), true), Some(Transition::Closed));
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_doubles_the_cooling_off_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.record(t0, false);
        }
        let mut cooldown = Duration::from_secs(60);
        let mut t = t0;
        for _ in 0..6 {
            t += cooldown;
            assert_eq!(b.wait(t).1, Some(Transition::Probing));
            let next = (cooldown * 2).min(Duration::from_secs(600));
            assert_eq!(b.record(t, false), Some(Transition::Opened { cooldown: next }));
            cooldown = next;
        }
        assert_eq!(cooldown, Duration::from_secs(600));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg());
        b.record(t0, false);
        b.record(t0, false);
        b.record(t0, true);
        b.record(t0, false);
        b.record(t0, false);
        assert_eq!(b.state(), State::Closed { failures: 2 });
    }
}
