//! `dvc-bridge status`: per-source and delivery health, and the dossiers whose due time needs an
//! operator (at risk, shown late, due times in doubt), read from the store while the daemon runs.

use std::path::Path;

use clap::Args;

use super::{EXIT_DEGRADED, EXIT_ERROR, EXIT_OK};
use crate::core::timefmt::display_time;
use crate::store::deadlines::{self, DeadlineOverview};
use crate::store::report::{self, Overview};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object, for monitoring scripts.
    #[arg(long)]
    pub json: bool,
}

/// Health names by exit code.
pub const HEALTH: [&str; 3] = ["healthy", "degraded", "failing"];

/// A source failing this many polls in a row counts as failing, not degraded.
const FAILING_AFTER: i64 = 3;

/// 0 healthy, 1 degraded, 2 failing.
pub fn health(o: &Overview) -> (u8, Vec<String>) {
    let mut why = Vec::new();
    let failing: Vec<&str> =
        o.sources.iter().filter(|s| s.consecutive_errors >= FAILING_AFTER).map(|s| s.name.as_str()).collect();
    if !o.sources.is_empty() && failing.len() == o.sources.len() {
        why.push(format!("every source is failing: {}", failing.join(", ")));
        return (EXIT_ERROR, why);
    }
    for s in &o.sources {
        if s.consecutive_errors > 0 {
            why.push(format!("source {} failed its last {} poll(s)", s.name, s.consecutive_errors));
        }
        if s.breaker != "closed" {
            why.push(format!("source {}: circuit breaker {}", s.name, s.breaker));
        }
        if s.quarantined > 0 {
            why.push(format!("source {} has {} quarantined record(s)", s.name, s.quarantined));
        }
    }
    if o.delivery.parked > 0 {
        why.push(format!("{} dossier(s) parked after a portal rejection", o.delivery.parked));
    }
    if o.conflicts > 0 {
        why.push(format!("{} dossier(s) in conflict (status would regress)", o.conflicts));
    }
    (if why.is_empty() { EXIT_OK } else { EXIT_DEGRADED }, why)
}

/// At-risk dossiers listed by code (all are counted).
const AT_RISK_LISTED: usize = 10;

fn print_deadlines(d: &DeadlineOverview) {
    let n = |name: &str| d.findings.get(name).copied().unwrap_or(0);
    println!(
        "deadlines: {} at risk (due within {} working hours); {} open past the due time the portal holds (quá hạn), \
         {} of them falsely (the law's due time not passed); {} ended on time by the law but late on the portal",
        d.at_risk, d.horizon_working_hours, d.overdue, d.false_late_open, d.false_late_ended
    );
    println!(
        "  sources' due times in doubt: {} earlier than the law's, {} later, {} on a day off, {} with the supplement \
         pause folded in, {} in status 5 with no supplement listed; {} without one (the bridge's pushed)",
        n("earlier"),
        n("later"),
        n("on_day_off"),
        n("pause_folded"),
        n("pause_missing"),
        n("no_source_due")
    );
    if !d.procedures_without_limit.is_empty() {
        println!(
            "  {} dossier(s) of procedures without a time limit (add them to procedures.toml): {}",
            n("no_time_limit"),
            d.procedures_without_limit.join(", ")
        );
    }
    if !d.at_risk_first.is_empty() {
        println!("  at risk, soonest due first:");
        for a in &d.at_risk_first {
            let law = a
                .computed_due
                .as_ref()
                .map(|c| format!("  (the law's: {})", when(&Some(c.clone()))))
                .unwrap_or_default();
            let status = a.status.map_or_else(|| "?".into(), |s| s.to_string());
            println!("    {:<28} status {:<2} due {}{law}", a.code, status, when(&Some(a.due.clone())));
        }
    }
}

/// "45s", "12m", "3h05m", "2d".
fn span(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

fn when(t: &Option<String>) -> String {
    t.as_deref().and_then(|s| s.parse::<jiff::Timestamp>().ok()).map(display_time).unwrap_or_else(|| "never".into())
}

pub fn main(file: &Path, args: &StatusArgs) -> u8 {
    let settings = match crate::config::load(file, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dvc-bridge: configuration problems:\n{e}");
            return EXIT_ERROR;
        }
    };
    let now = settings.clock().now();
    let read = || -> anyhow::Result<(Overview, DeadlineOverview, report::Activity)> {
        let conn = crate::store::open_reader(&settings.db_path())?;
        let horizon = settings.config.deadlines.at_risk_working_hours;
        let cutoff = deadlines::at_risk_cutoff(&settings.deadlines.calendar, now, horizon)?;
        Ok((
            report::overview(&conn)?,
            deadlines::overview(&conn, now, cutoff, horizon, AT_RISK_LISTED)?,
            report::activity(&conn, now)?,
        ))
    };
    let (overview, due, activity) = match read() {
        Ok(o) => o,
        Err(e) => return super::fail(&e),
    };
    let (code, why) = health(&overview);
    if args.json {
        let v = serde_json::json!({"health": HEALTH[code as usize], "reasons": why, "overview": overview, "deadlines": due, "activity": activity});
        println!("{v}");
        return code;
    }
    println!(
        "{:<8} {:<9} {:<19} {:>7} {:>8} {:>13} {:>11} {:<10} {:<19}  last error",
        "source", "kind", "last success", "lag", "records", "errors", "quarantined", "breaker", "last full sweep"
    );
    for s in &overview.sources {
        let breaker = match (s.breaker.as_str(), &s.breaker_until) {
            ("open", Some(_)) => format!("open→{}", when(&s.breaker_until).get(11..16).unwrap_or("")),
            (b, _) => b.to_string(),
        };
        let lag =
            s.last_ok_at.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok()).map(|t| now.duration_since(t));
        let errors = match s.polls {
            0 => "—".to_string(),
            n => format!("{} ({:.0} %)", s.poll_errors, 100.0 * s.poll_errors as f64 / n as f64),
        };
        println!(
            "{:<8} {:<9} {:<19} {:>7} {:>8} {:>13} {:>11} {:<10} {:<19}  {}",
            s.name,
            s.kind,
            when(&s.last_ok_at),
            lag.map(span).unwrap_or_else(|| "—".into()),
            s.records,
            errors,
            s.quarantined,
            breaker,
            when(&s.last_full_sweep_at),
            if s.consecutive_errors > 0 { s.last_error.clone().unwrap_or_default() } else { String::new() }
        );
    }
    let d = &overview.delivery;
    println!();
    println!(
        "delivery: {} queued (oldest {}), {} parked, {} progress steps waiting; portal holds {} live dossier(s), {} closed duplicate(s)",
        d.queued,
        when(&d.oldest_queued_at),
        d.parked,
        d.progress_unsent,
        d.live_on_portal,
        d.closed_duplicates
    );
    for p in &d.parked_rows {
        println!(
            "  parked: {} (version {}, queued {}, {} attempt(s)): {}  — fix the cause, then `dvc-bridge resync --parked`",
            p.code,
            p.version,
            when(&Some(p.enqueued_at.clone())),
            p.attempts,
            p.error.as_deref().unwrap_or("no message")
        );
    }
    println!(
        "sending: {:.1} dossier(s) a minute acknowledged over the last 10 minutes",
        activity.acked_last_10_min as f64 / 10.0
    );
    match &activity.verify_last_at {
        Some(_) => println!(
            "verify sweep: last read-back {}; {} dossier(s) read back in the last day; {} differing at their last look",
            when(&activity.verify_last_at),
            activity.verified_last_day,
            activity.verify_divergent
        ),
        None => println!("verify sweep: nothing read back yet"),
    }
    println!(
        "dossiers: {} ({} in conflict); sync log entries: {}",
        overview.dossiers, overview.conflicts, overview.log_entries
    );
    print_deadlines(&due);
    println!();
    match why.is_empty() {
        true => println!("health: healthy"),
        false => {
            println!("health: {}", HEALTH[code as usize]);
            for w in &why {
                println!("  - {w}");
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::report::{DeliveryStatus, SourceStatus};

    fn source(name: &str, consecutive_errors: i64, breaker: &str) -> SourceStatus {
        SourceStatus {
            name: name.into(),
            adapter: name.into(),
            kind: "ministry".into(),
            portal_mode: "push".into(),
            last_poll_at: None,
            last_ok_at: None,
            last_error: None,
            last_error_at: None,
            polls: 10,
            poll_errors: consecutive_errors,
            consecutive_errors,
            records: 5,
            quarantined: 0,
            cursor: None,
            breaker: breaker.into(),
            breaker_until: None,
            last_full_sweep_at: None,
        }
    }

    fn overview(sources: Vec<SourceStatus>) -> Overview {
        Overview { sources, delivery: DeliveryStatus::default(), dossiers: 0, conflicts: 0, log_entries: 0 }
    }

    #[test]
    fn exit_codes_for_monitoring_healthy_degraded_failing() {
        assert_eq!(health(&overview(vec![source("city", 0, "closed"), source("moj", 0, "closed")])).0, EXIT_OK);
        // One system down: the others are served, the bridge is degraded.
        let (code, why) = health(&overview(vec![source("city", 0, "closed"), source("moj", 4, "open")]));
        assert_eq!(code, EXIT_DEGRADED);
        assert!(why.iter().any(|w| w.contains("moj") && w.contains("breaker")), "{why:?}");
        // Every system down: failing.
        let (code, why) = health(&overview(vec![source("city", 3, "open"), source("moj", 5, "open")]));
        assert_eq!(code, EXIT_ERROR);
        assert!(why[0].contains("every source is failing"), "{why:?}");
        // Parked deliveries and conflicts need an operator: degraded.
        let mut o = overview(vec![source("city", 0, "closed")]);
        o.delivery.parked = 1;
        assert_eq!(health(&o).0, EXIT_DEGRADED);
    }
}
