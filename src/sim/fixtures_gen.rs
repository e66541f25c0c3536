//! The generator of `fixtures/city.json` and `fixtures/moj.json` (run once, output committed), and the
//! check that the committed files still say what the code reads.
//!
//! Regenerate with `cargo test sim::fixtures_gen -- --ignored`.

use std::path::PathBuf;

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

const CUTOVER: (i16, i8, i8) = (2026, 1, 15);
const MIGRATED: usize = 10;

/// Days the civil service did not work in the recorded period (`spec/calendar-vn.md`).
fn day_off(d: jiff::civil::Date) -> bool {
    let holidays =
        [(2026, 1, 1), (2026, 1, 2), (2026, 2, 16), (2026, 2, 17), (2026, 2, 18), (2026, 2, 19), (2026, 2, 20)];
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        || holidays.iter().any(|&(y, m, dd)| d == jiff::civil::date(y, m, dd))
}

#[test]
#[ignore = "writes fixtures/city.json and fixtures/moj.json"]
fn generate_fixtures() {
    let catalogue = Catalogue::load(&dir()).unwrap();
    let cutover = jiff::civil::date(CUTOVER.0, CUTOVER.1, CUTOVER.2);
    let mut up = Upstream::new(catalogue, cutover, 31);
    up.tuning = Tuning {
        new_rate: 0.22,
        transfer_rate: 0.3,
        stop_rate: 0.03,
        second_supplement_rate: 0.3,
        min_step_gap: jiff::SignedDuration::from_hours(40),
    };
    let tz = vn_tz();
    let mut day = jiff::civil::date(2025, 12, 15);
    let last = jiff::civil::date(2026, 3, 6);
    let mut migrated = false;
    while day <= last {
        if !day_off(day) {
            if day >= cutover && !migrated {
                migrated = true;
                let at = day.at(7, 45, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
                let open: Vec<usize> = up
                    .records(Source::City)
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| match r {
                        Record::Good(d)
                            if matches!(d.status, 2 | 4 | 5)
                                && up.catalogue.procedure(&d.procedure.code).is_some_and(|p| p.owner.is_some()) =>
                        {
                            Some(i)
                        }
                        _ => None,
                    })
                    .collect();
                for &i in open.iter().take(MIGRATED) {
                    assert!(up.migrate(i, at));
                }
            }
            // The city's desks were quieter before the cutover than the two systems together after it.
            let hours: &[i8] = if day < cutover { &[8, 9, 10, 14, 15, 16] } else { &[8, 9, 10, 11, 13, 14, 15, 16] };
            for &hour in hours {
                let (min, sec) = (up.rng.i8(0..60), up.rng.i8(0..60));
                let at = day.at(hour, min, sec, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
                up.round(at, 1, None);
            }
        }
        day = day.checked_add(1.day()).unwrap();
    }
    let end = last.at(16, 58, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
    up.inject_malformed_for_fixtures(end);
    up.inject_malformed_for_fixtures(end);
    for (source, file) in [(Source::City, "city.json"), (Source::Moj, "moj.json")] {
        let records: Vec<Value> = up.records(source).iter().map(Record::render).collect();
        let text = serde_json::to_string_pretty(&records).unwrap() + "\n";
        std::fs::write(dir().join(file), text).unwrap();
    }
}

fn load_committed() -> (Upstream, Vec<Value>, Vec<Value>) {
    let catalogue = Catalogue::load(&dir()).unwrap();
    let city: Vec<Value> = read_json(&dir().join("city.json")).unwrap();
    let moj: Vec<Value> = read_json(&dir().join("moj.json")).unwrap();
    let cutover = jiff::civil::date(CUTOVER.0, CUTOVER.1, CUTOVER.2);
    let mut up = Upstream::new(catalogue, cutover, 31);
    up.load(&city, &moj).unwrap();
    (up, city, moj)
}

#[test]
fn committed_fixtures_round_trip_through_both_dialects() {
    let (up, city, moj) = load_committed();
    for (source, raws) in [(Source::City, &city), (Source::Moj, &moj)] {
        for (record, raw) in up.records(source).iter().zip(raws.iter()) {
            assert_eq!(&record.render(), raw, "{} record {} does not round-trip", source.name(), record.native_id());
        }
    }
}

#[test]
fn committed_fixtures_hold_the_promised_world() {
    let (up, city, moj) = load_committed();
    assert!((50..=75).contains(&city.len()), "city records: {}", city.len());
    assert!((30..=50).contains(&moj.len()), "moj records: {}", moj.len());
    let quarantine = up.quarantine();
    assert_eq!(quarantine.len(), 2, "{quarantine:?}");
    assert_eq!(quarantine[0].0, "city");
    assert_eq!(quarantine[1].0, "moj");
    assert!(moj.iter().any(|r| { r["ngayTiepNhan"].as_str().is_some_and(|s| s.contains("-02-31 ")) }));

    let (mut migrated, mut transferred) = (0, 0);
    for case in up.cases() {
        if case.len() == 2 {
            let a = up.dossier_at(case[0]).unwrap();
            let b = up.dossier_at(case[1]).unwrap();
            if a.code == b.code {
                migrated += 1;
            } else {
                assert_eq!(b.ref_code.as_deref(), Some(a.code.as_str()));
                transferred += 1;
            }
        }
        assert!(case.len() <= 2);
    }
    assert!(migrated >= 5, "migrated pairs: {migrated}");
    assert!(transferred >= 3, "transfer pairs: {transferred}");

    let expected = up.expected();
    let statuses: std::collections::BTreeSet<u8> = expected.values().map(|e| e.status).collect();
    for s in [2, 3, 4, 5, 7, 9, 10] {
        assert!(statuses.contains(&s), "no case in status {s}: {statuses:?}");
    }
    let latest: Timestamp = up.latest_update().unwrap();
    assert!(latest <= fixtures_start(), "{latest} is after {}", fixtures_start());
    let earliest = expected.values().map(|e| e.received_at).min().unwrap();
    assert!(earliest.to_zoned_datetime(vn_tz()).date() >= jiff::civil::date(2025, 12, 15));
}
