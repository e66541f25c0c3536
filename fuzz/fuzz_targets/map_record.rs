//! Records mapped through the shipped descriptors (`Mapper::map`, as the poller does).
//!
//! Input: the first byte picks the system (`byte % 6`) and the mode (`byte & 0x80`):
//! - clear: the rest is a record as JSON text (what a source sends), parsed with serde_json;
//! - set: the rest drives edits of one of the system's recorded fixture records: a place in the
//!   record gets a value built from the bytes (null, numbers, date-like and vocabulary strings,
//!   arrays, objects with the records' own keys), so the mapper sees damage deep in valid records.
//!
//! Properties: no panic; a refusal names the field and the reason (`MapError.field`, `.reason`
//! non-empty); a mapped record carries the source's name, and its native id and updated time agree
//! with `Mapper::native_id` / `Mapper::updated_at`.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use dvc_bridge::core::descriptor::Descriptor;
use dvc_bridge::core::mapping::Mapper;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

#[path = "../../tests/support/places.rs"]
mod places;
use places::place;

struct System {
    name: &'static str,
    mapper: Mapper,
    records: Vec<Value>,
    /// Every object key in the records (for objects the generator builds).
    keys: Vec<String>,
    /// Strings worth trying here: vocabulary keys of the descriptor, times in its format.
    words: Vec<String>,
}

const SOURCES: [(&str, &str, &str); 6] = [
    ("city", include_str!("../../adapters/city-igate.toml"), include_str!("../../fixtures/city.json")),
    ("moj", include_str!("../../adapters/moj.toml"), include_str!("../../fixtures/moj.json")),
    ("moc", include_str!("../../adapters/moc.toml"), include_str!("../../fixtures/moc.json")),
    ("mae", include_str!("../../adapters/mae.toml"), include_str!("../../fixtures/mae.json")),
    ("mof", include_str!("../../adapters/mof.toml"), include_str!("../../fixtures/mof.json")),
    ("mps", include_str!("../../adapters/mps.toml"), include_str!("../../fixtures/mps.json")),
];

/// Times in every dialect the systems speak, and near misses.
const TIMES: &[&str] = &[
    "2026-03-09T01:15:00.000Z",
    "2026-03-09T08:15:00+07:00",
    "1773018900000",
    "1773018900",
    "09/03/2026 08:15:00",
    "2026-01-16 08:00:00",
    "20260309081500",
    "2026-02-30 25:61:00",
    "31/02/2026 10:00:00",
    "20261340256100",
    "9999-12-31T23:59:59Z",
    "-009999-01-01T00:00:00Z",
    "1e400",
    "-1",
    " ",
    "",
    "\u{0}",
    "Tết",
];

fn collect_keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                out.insert(k.clone());
                collect_keys(c, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_keys(c, out)),
        _ => {}
    }
}

fn systems() -> &'static [System] {
    static SYSTEMS: OnceLock<Vec<System>> = OnceLock::new();
    SYSTEMS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(name, descriptor, fixtures)| {
                let d = Descriptor::parse(descriptor).expect("shipped descriptor");
                let records: Vec<Value> = serde_json::from_str(fixtures).expect("recorded fixtures");
                let mut keys = BTreeSet::new();
                records.iter().for_each(|r| collect_keys(r, &mut keys));
                let mut words: Vec<String> = TIMES.iter().map(|s| s.to_string()).collect();
                for m in [&d.status_map, &d.channel_map, &d.applicant_type_map, &d.fee_method_map, &d.paid_online_map] {
                    words.extend(m.keys().cloned());
                }
                words.extend(d.agency_level_map.keys().cloned());
                System { name, mapper: Mapper::new(d), records, keys: keys.into_iter().collect(), words }
            })
            .collect()
    })
}

/// A JSON value built from the bytes, at most `depth` levels deep.
fn value(u: &mut Unstructured, s: &System, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 7 } else { 9 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::String(u.choose(&s.words)?.clone()),
        6 => Value::String(u.arbitrary()?),
        7 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array((0..n).map(|_| value(u, s, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=3)?;
            let mut m = Map::new();
            for _ in 0..n {
                let k = if u.arbitrary()? { u.choose(&s.keys)?.clone() } else { u.arbitrary()? };
                m.insert(k, value(u, s, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// A fixture record with a few places replaced.
fn damaged_record(u: &mut Unstructured, s: &System) -> Result<Value> {
    let mut rec = u.choose(&s.records)?.clone();
    for _ in 0..u.int_in_range(1..=4)? {
        let at = u.arbitrary::<u32>()? as usize;
        let target = place(&mut rec, at);
        *target = if u.ratio(1, 4)? {
            // Where a string was, a text that is almost right: the same one with garbage around it.
            match target {
                Value::String(t) => Value::String(format!("{}{t}{}", u.arbitrary::<&str>()?, u.arbitrary::<&str>()?)),
                _ => value(u, s, 2)?,
            }
        } else {
            value(u, s, 2)?
        };
    }
    Ok(rec)
}

fn check(s: &System, rec: &Value) {
    match s.mapper.map(s.name, rec) {
        Ok(r) => {
            assert_eq!(r.source, s.name);
            assert_eq!(s.mapper.native_id(rec).as_deref(), Some(r.native_id.as_str()), "native id disagrees");
            assert_eq!(s.mapper.updated_at(rec), Some(r.updated_at), "updated time disagrees");
        }
        Err(e) => {
            assert!(!e.field.is_empty() && !e.reason.is_empty(), "a refusal without a field or reason: {e:?}");
            // The poller still asks for these on a refused record (quarantine, the walk).
            let _ = s.mapper.native_id(rec);
            let _ = s.mapper.updated_at(rec);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let s = &systems()[usize::from(first & 0x7f) % SOURCES.len()];
    if first & 0x80 == 0 {
        if let Ok(rec) = serde_json::from_slice::<Value>(rest) {
            check(s, &rec);
        }
    } else if let Ok(rec) = damaged_record(&mut Unstructured::new(rest), s) {
        check(s, &rec);
    }
});
