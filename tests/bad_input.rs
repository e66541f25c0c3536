//! Bad input, generated: every record of every system's recorded fixtures mapped through its
//! descriptor after random damage (a value replaced by anything JSON can hold, a field removed),
//! time values of every shape in every date format, and descriptor, calendar and configuration
//! files with lines dropped, repeated or garbled. Nothing panics, and every rejection names what
//! and why. `PROPTEST_CASES=100000 cargo test --release --test bad_input` for a long run.

use std::path::Path;

use dvc_bridge::core::calendar::Calendar;
use dvc_bridge::core::descriptor::Descriptor;
use dvc_bridge::core::mapping::Mapper;
use dvc_bridge::core::timefmt::{DateFormat, parse_time};
use proptest::prelude::*;
use serde_json::Value;

#[path = "support/places.rs"]
mod places;
use places::place;

const SYSTEMS: [(&str, &str); 6] =
    [("city", "city-igate"), ("moj", "moj"), ("moc", "moc"), ("mae", "mae"), ("mof", "mof"), ("mps", "mps")];

fn repo(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).expect(p)
}

/// Each system's mapper and its recorded records (read once).
fn systems() -> &'static [(&'static str, Mapper, Vec<Value>)] {
    static SYSTEMS_READ: std::sync::OnceLock<Vec<(&'static str, Mapper, Vec<Value>)>> = std::sync::OnceLock::new();
    SYSTEMS_READ.get_or_init(|| {
        SYSTEMS
            .iter()
            .map(|(system, adapter)| {
                let d = Descriptor::parse(&repo(&format!("adapters/{adapter}.toml"))).expect("shipped descriptor");
                let records: Vec<Value> = serde_json::from_str(&repo(&format!("fixtures/{system}.json"))).unwrap();
                (*system, Mapper::new(d), records)
            })
            .collect()
    })
}

/// Any JSON value, a few levels deep, with the strings and numbers that break parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".*".prop_map(Value::String),
        prop_oneof![
            Just("2026-02-30 25:61:00"),
            Just("9999-12-31T23:59:59Z"),
            Just("-1"),
            Just("1e400"),
            Just("31/12/2025"),
            Just(""),
            Just("\u{0}"),
            Just("Tết"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A text with one line dropped, repeated, or garbled at one character.
fn damaged(text: &str, line: usize, how: u8, garbage: char) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = line % lines.len().max(1);
    match how % 3 {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        _ => {
            let l = &mut lines[i];
            let at = l.char_indices().map(|(k, _)| k).nth(line % (l.chars().count() + 1)).unwrap_or(l.len());
            l.insert(at, garbage);
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_record_maps_or_is_refused_with_the_field_and_the_reason(
        system in 0usize..6,
        record in any::<usize>(),
        at in any::<usize>(),
        remove in any::<bool>(),
        value in any_json(),
    ) {
        let (name, mapper, records) = &systems()[system];
        let mut rec = records[record % records.len()].clone();
        let target = place(&mut rec, at);
        if remove {
            *target = Value::Null;
        } else {
            *target = value;
        }
        match mapper.map(name, &rec) {
            Ok(r) => prop_assert_eq!(&r.source, name),
            Err(e) => prop_assert!(!e.field.is_empty() && !e.reason.is_empty(), "{e:?}"),
        }
    }

    #[test]
    fn any_value_in_any_date_format_parses_or_says_why(value in any_json(), format in 0usize..6) {
        let formats = [
            DateFormat::Rfc3339,
            DateFormat::EpochMillis,
            DateFormat::EpochSeconds,
            DateFormat::Pattern("%Y-%m-%d %H:%M:%S".into()),
            DateFormat::Pattern("%d/%m/%Y".into()),
            DateFormat::Pattern("%Y%m%d%H%M%S".into()),
        ];
        if let Err(reason) = parse_time(&value, &formats[format], &dvc_bridge::clock::vn_tz()) {
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn a_damaged_descriptor_or_calendar_is_read_or_refused_with_a_reason(
        which in 0usize..7,
        line in any::<usize>(),
        how in any::<u8>(),
        garbage in any::<char>(),
    ) {
        if which == 6 {
            let text = damaged(&repo("config/calendar.toml"), line, how, garbage);
            if let Err(issues) = Calendar::parse(&text) {
                prop_assert!(!issues.is_empty());
                prop_assert!(issues.iter().all(|i| !i.reason.is_empty()), "{issues:?}");
            }
        } else {
            let text = damaged(&repo(&format!("adapters/{}.toml", SYSTEMS[which].1)), line, how, garbage);
            if let Err(issue) = Descriptor::parse(&text) {
                prop_assert!(!issue.reason.is_empty(), "{issue:?}");
            }
        }
    }
}

proptest! {
    // Each case writes a configuration folder and loads it: fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_configuration_is_loaded_or_every_problem_is_named(
        line in any::<usize>(),
        how in any::<u8>(),
        garbage in any::<char>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["cutover.toml", "calendar.toml", "procedures.toml"] {
            std::fs::write(dir.path().join(f), repo(&format!("config/{f}"))).unwrap();
        }
        let adapters = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters");
        let text = damaged(&repo("config/dvc-bridge.toml"), line, how, garbage)
            .replace("/usr/share/dvc-bridge/adapters", &adapters.display().to_string());
        let file = dir.path().join("dvc-bridge.toml");
        std::fs::write(&file, text).unwrap();
        // Secrets are not resolved: the damage is what is judged.
        if let Err(errors) = dvc_bridge::config::load(&file, false) {
            prop_assert!(!errors.0.is_empty());
            for issue in &errors.0 {
                prop_assert!(!issue.reason.is_empty(), "{issue}");
            }
        }
    }
}
