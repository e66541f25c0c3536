//! The generator of the recorded fixtures of every system (`fixtures/city.json`, `moj.json`,
//! `moc.json`, `mae.json`, `mof.json`, `mps.json`; run once, output committed), and the check that
//! the committed files still say what the code reads.
//!
//! Regenerate with `cargo test sim::fixtures_gen -- --ignored`.

use std::{collections::BTreeMap, path::PathBuf};

use jiff::{Timestamp, ToSpan, civil::Weekday};
use serde_json::Value;

use super::{
    catalogue::{Catalogue, read_json},
    fixtures_start,
    model::Source,
    world::{Record, Tuning, Upstream},
};
use crate::clock::vn_tz;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Each ministry's cutover for Hải Phòng (the same as `SimOptions::demo`).
pub fn cutovers() -> BTreeMap<Source, jiff::civil::Date> {
    let date = jiff::civil::date;
    BTreeMap::from([
        (Source::Moj, date(2026, 1, 15)),
        (Source::Moc, date(2026, 2, 1)),
        (Source::Mae, date(2026, 1, 20)),
        (Source::Mof, date(2026, 1, 1)),
        (Source::Mps, date(2026, 1, 1)),
    ])
}

/// Open city dossiers each ministry's migration copies at its cutover (a case (a) pair each).
const MIGRATED: usize = 4;
const FIRST_SEED: u64 = 31;

/// Days the civil service did not work in the recorded period (`spec/calendar-vn.md`).
fn day_off(d: jiff::civil::Date) -> bool {
    let holidays =
        [(2026, 1, 1), (2026, 1, 2), (2026, 2, 16), (2026, 2, 17), (2026, 2, 18), (2026, 2, 19), (2026, 2, 20)];
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        || holidays.iter().any(|&(y, m, dd)| d == jiff::civil::date(y, m, dd))
}

/// The recorded history from one seed: 2025-12-15 to 2026-03-06, each ministry migrating at its
/// cutover, one malformed record per system last.
fn record_history(catalogue: Catalogue, seed: u64) -> Upstream {
    let cutovers = cutovers();
    let mut up = Upstream::new(catalogue, cutovers.clone(), seed);
    up.tuning = Tuning {
        new_rate: 0.2,
        transfer_rate: 0.3,
        stop_rate: 0.03,
        second_supplement_rate: 0.3,
        min_step_gap: jiff::SignedDuration::from_hours(40),
    };
    let tz = vn_tz();
    let mut day = jiff::civil::date(2025, 12, 15);
    let last = jiff::civil::date(2026, 3, 6);
    let mut migrated: Vec<Source> = Vec::new();
    while day <= last {
        if !day_off(day) {
            // Each ministry migrates on the first working day on or after its cutover, a few
            // minutes apart, before the desks open.
            for (k, (&ministry, &cutover)) in cutovers.iter().enumerate() {
                if day < cutover || migrated.contains(&ministry) {
                    continue;
                }
                migrated.push(ministry);
                let at = day.at(7, 30 + 3 * k as i8, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
                let open: Vec<usize> = up
                    .records(Source::City)
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| match r {
                        Record::Good(d)
                            if matches!(d.status, 2 | 4 | 5)
                                && up.catalogue.owner(&d.procedure.code) == Some(ministry) =>
                        {
                            Some(i)
                        }
                        _ => None,
                    })
                    .collect();
                for &i in open.iter().take(MIGRATED) {
                    assert!(up.migrate(i, ministry, at));
                }
            }
            // The desks work 8–11 and 13–17; three rounds an hour, in order.
            for hour in [8, 9, 10, 11, 13, 14, 15, 16] {
                for third in [0, 20, 40] {
                    let (min, sec) = (third + up.rng.i8(0..20), up.rng.i8(0..60));
                    let at = day.at(hour, min, sec, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
                    up.round(at, 1, None, None);
                }
            }
        }
        day = day.checked_add(1.day()).unwrap();
    }
    // After the desks close, so that they are each system's newest record.
    let end = last.at(17, 30, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
    for _ in Source::ALL {
        up.inject_malformed_for_fixtures(end);
    }
    up
}

/// What the fixtures promise (and `fixtures/README.md` says): why a world falls short, if it does.
fn check_promises(up: &Upstream) -> Result<(), String> {
    let city = up.records(Source::City).len();
    if !(100..=200).contains(&city) {
        return Err(format!("city records: {city}"));
    }
    for ministry in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
        let n = up.records(ministry).len();
        if !(25..=40).contains(&n) {
            return Err(format!("{} records: {n}", ministry.name()));
        }
    }
    let quarantine = up.quarantine();
    let systems: Vec<&str> = quarantine.iter().map(|(s, _)| s.as_str()).collect();
    if systems != ["city", "moj", "moc", "mae", "mof", "mps"] {
        return Err(format!("malformed records: {quarantine:?}"));
    }
    let mut pairs: BTreeMap<Source, (usize, usize)> = BTreeMap::new();
    for case in up.cases() {
        if case.len() > 2 {
            return Err(format!("a case of {} members", case.len()));
        }
        if let [a, b] = case[..] {
            let (Some(a), Some(b)) = (up.dossier_at(a), up.dossier_at(b)) else {
                return Err("a case member is not a dossier".to_owned());
            };
            let entry = pairs.entry(b.source).or_default();
            if a.source == Source::City && a.code == b.code {
                entry.0 += 1;
            } else if a.source == Source::City && b.ref_code.as_deref() == Some(a.code.as_str()) {
                entry.1 += 1;
            } else {
                return Err(format!("{} and {} are no pair", a.code, b.code));
            }
        }
    }
    for ministry in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
        let (migrated, transferred) = pairs.get(&ministry).copied().unwrap_or_default();
        if migrated < 2 || transferred < 2 {
            return Err(format!("{}: {migrated} migrated and {transferred} transfer pairs", ministry.name()));
        }
    }
    let expected = up.expected(fixtures_start());
    let statuses: std::collections::BTreeSet<u8> = expected.values().map(|e| e.status).collect();
    if let Some(s) = [2, 3, 4, 5, 7, 9, 10].into_iter().find(|s| !statuses.contains(s)) {
        return Err(format!("no case in status {s}: {statuses:?}"));
    }
    for ministry in Source::ALL.into_iter().filter(|s| s.is_ministry()) {
        let open = up.records(ministry).iter().any(|r| matches!(r, Record::Good(d) if matches!(d.status, 2 | 4 | 5)));
        let ended = up.records(ministry).iter().any(|r| matches!(r, Record::Good(d) if matches!(d.status, 9 | 10)));
        if !open || !ended {
            return Err(format!("{}: open records {open}, finished records {ended}", ministry.name()));
        }
    }
    Ok(())
}

#[test]
#[ignore = "writes fixtures/<system>.json for every system"]
fn generate_fixtures() {
    // Thirty-odd records per system is too few for the change rules' chances to even out, so the
    // first seed whose history keeps every promise is the one recorded (deterministically).
    let (seed, up) = (FIRST_SEED..FIRST_SEED + 500)
        .find_map(|seed| {
            let up = record_history(Catalogue::load(&dir()).unwrap(), seed);
            check_promises(&up).is_ok().then_some((seed, up))
        })
        .expect("no seed in 500 keeps the fixtures' promises: loosen them or retune the catalogue's weights");
    println!("recorded the history of seed {seed}");
    for source in Source::ALL {
        let records: Vec<Value> = up.records(source).iter().map(|r| up.render(source, r)).collect();
        let text = serde_json::to_string_pretty(&records).unwrap() + "\n";
        std::fs::write(dir().join(format!("{}.json", source.name())), text).unwrap();
    }
}

fn load_committed() -> (Upstream, BTreeMap<Source, Vec<Value>>) {
    let catalogue = Catalogue::load(&dir()).unwrap();
    let raws: BTreeMap<Source, Vec<Value>> =
        Source::ALL.iter().map(|s| (*s, read_json(&dir().join(format!("{}.json", s.name()))).unwrap())).collect();
    let mut up = Upstream::new(catalogue, cutovers(), FIRST_SEED);
    up.load(&raws).unwrap();
    (up, raws)
}

#[test]
fn committed_fixtures_round_trip_through_every_dialect() {
    let (up, raws) = load_committed();
    for (source, raws) in &raws {
        assert_eq!(up.records(*source).len(), raws.len());
        for (record, raw) in up.records(*source).iter().zip(raws.iter()) {
            assert_eq!(
                &up.render(*source, record),
                raw,
                "{} record {} does not round-trip",
                source.name(),
                record.native_id(*source)
            );
        }
    }
}

#[test]
fn committed_fixtures_hold_the_promised_world() {
    let (up, raws) = load_committed();
    check_promises(&up).unwrap();
    assert!(raws[&Source::Moj].iter().any(|r| r["ngayTiepNhan"].as_str().is_some_and(|s| s.contains("-02-31 "))));
    let latest: Timestamp = up.latest_update().unwrap();
    assert!(latest <= fixtures_start(), "{latest} is after {}", fixtures_start());
    let earliest = up.expected(fixtures_start()).values().map(|e| e.received_at).min().unwrap();
    assert!(earliest.to_zoned_datetime(vn_tz()).date() >= jiff::civil::date(2025, 12, 15));
}
