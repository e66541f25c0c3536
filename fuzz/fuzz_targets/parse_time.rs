//! Time values through every date format (`timefmt::parse_time`, as the mapper and the poller use it)
//! and the formatting the poller sends (`format_time`, `fetch::since_filter`).
//!
//! Input: byte 0 picks the format (rfc3339, epoch_millis, epoch_seconds, each pattern the adapters
//! use, or a pattern taken from the input, as a descriptor may carry any), byte 1 the time zone,
//! byte 2 the shape of the value (the rest of the input as a string, or a number made of its first
//! bytes, or a non-scalar); then 12 bytes make an instant for the round trips.
//!
//! Properties: no panic; a refusal has a reason; what a format writes, it reads back (exactly for
//! rfc3339 and the epochs, to the second for the adapters' patterns, text-stable in zones whose
//! clocks went back); the portal's time reads back; `since_filter` never reads back a later time.
#![no_main]

use arbitrary::{Result, Unstructured};
use dvc_bridge::core::descriptor::Descriptor;
use dvc_bridge::core::timefmt::{DateFormat, format_time, parse_portal_time, parse_time, portal_time};
use jiff::tz::TimeZone;
use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use libfuzzer_sys::fuzz_target;
use serde_json::{Number, Value};

/// The patterns the shipped adapters use, and one date-only pattern.
const PATTERNS: [&str; 4] = ["%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%d/%m/%Y"];

/// Vietnam's zone, zones with daylight saving (gaps and folds, one of half an hour), UTC.
const ZONES: [&str; 6] =
    ["Asia/Ho_Chi_Minh", "UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"];

/// A minimal descriptor, to drive `since_filter` with each format.
const DESCRIPTOR: &str = r#"
name = "t"
title = "fuzz"
kind = "ministry"
[auth]
style = "none"
[list]
path = "/x"
page_size = 10
[pagination]
style = "page_number"
order = "updated_asc"
page_param = "page"
size_param = "size"
updated_since_param = "since"
[response]
records = "items"
[dates]
format = "rfc3339"
[fields]
native_id = "id"
code = "code"
procedure_code = "proc"
updated_at = "updated"
received_at = "received"
status = "status"
[status_map]
"A" = 2
"#;

fn descriptor() -> &'static Descriptor {
    static D: std::sync::OnceLock<Descriptor> = std::sync::OnceLock::new();
    D.get_or_init(|| Descriptor::parse(DESCRIPTOR).expect("the fuzz descriptor"))
}

fn floor_to_second(t: Timestamp) -> Timestamp {
    t.round(TimestampRound::new().smallest(Unit::Second).mode(RoundMode::Floor)).expect("in range")
}

/// Whether `t` falls, in `tz`, in the years 0 to 9999 (four digits for `%Y`).
fn in_years(t: Timestamp, tz: &TimeZone) -> bool {
    (0..=9999).contains(&t.to_zoned_datetime(tz.clone()).year())
}

/// Whether the zone ever turns its clocks back (a local time can then be read as two instants).
fn has_folds(zone: &str) -> bool {
    zone != "UTC"
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let which = u.arbitrary::<u8>()?;
    let zone = ZONES[usize::from(u.arbitrary::<u8>()?) % ZONES.len()];
    let tz = TimeZone::get(zone).expect("bundled zone");
    let shape = u.arbitrary::<u8>()?;
    let instant = (u.arbitrary::<i64>()?, u.arbitrary::<i32>()?);
    let fixed_format = match which % 8 {
        0 => Some(DateFormat::Rfc3339),
        1 => Some(DateFormat::EpochMillis),
        2 => Some(DateFormat::EpochSeconds),
        n @ 3..=6 => Some(DateFormat::Pattern(PATTERNS[usize::from(n - 3)].into())),
        _ => None,
    };
    let format = match &fixed_format {
        Some(f) => f.clone(),
        // A pattern of the input's own: up to the first NUL, the rest is the value.
        None => {
            let rest = u.peek_bytes(u.len()).unwrap_or_default();
            let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let p = String::from_utf8_lossy(&rest[..cut]).into_owned();
            u.bytes(cut.min(u.len()))?;
            let _ = u.arbitrary::<u8>();
            DateFormat::Pattern(p)
        }
    };
    let rest = u.take_rest();
    let text = String::from_utf8_lossy(rest).into_owned();
    let value = match shape % 8 {
        0..=3 => Value::String(text),
        4 => Value::from(i64::from_le_bytes(pad(rest))),
        5 => Value::from(u64::from_le_bytes(pad(rest))),
        6 => Number::from_f64(f64::from_le_bytes(pad(rest))).map_or(Value::Null, Value::Number),
        _ => [Value::Null, Value::Bool(true), Value::Array(vec![Value::String(text)])][rest.len() % 3].clone(),
    };

    // Parse what a source sent.
    match parse_time(&value, &format, &tz) {
        Err(reason) => assert!(!reason.is_empty(), "a refusal without a reason"),
        // Written back in the same format, it reads back as itself (to the format's precision). A
        // pattern is held to this for years 0 to 9999 only: jiff writes the year -1 with `%Y` as
        // "-001" and reads "-0010" back (a dossier's times are far inside those years).
        Ok(t) if fixed_format.is_some() && (!matches!(format, DateFormat::Pattern(_)) || in_years(t, &tz)) => {
            let written = format_time(t, &format, &tz);
            let again = parse_time(&Value::String(written.clone()), &format, &tz)
                .unwrap_or_else(|e| panic!("{t} written as {written:?} does not read back: {e}"));
            match &format {
                DateFormat::Pattern(_) => {
                    assert_eq!(format_time(again, &format, &tz), written, "{t}: the text changed")
                }
                _ => assert_eq!(again, t, "{t} written as {written:?}"),
            }
        }
        Ok(_) => {}
    }

    // Format an instant as the poller does (`since_filter`: the text sent, and the instant the source
    // reads from it), and read the text back.
    let Ok(t) = Timestamp::new(instant.0 % 253_402_207_200, instant.1 % 1_000_000_000) else { return Ok(()) };
    let written = format_time(t, &format, &tz);
    let mut d = descriptor().clone();
    d.dates.format = format;
    d.dates.time_zone = zone.to_string();
    let (sent, read) = dvc_bridge::source::fetch::since_filter(&d, t);
    // Epoch formats travel as numbers (in a JSON body), everything else as the text written.
    let sent_text = match (&sent, &d.dates.format) {
        (Value::String(s), _) => s.clone(),
        (Value::Number(n), DateFormat::EpochMillis | DateFormat::EpochSeconds) => n.to_string(),
        (other, f) => panic!("a filter in {f:?} sent as {other}"),
    };
    assert_eq!(sent_text, written, "the filter sent is not the time written");
    assert!(read <= t, "the filter sent for {t} reads back later: {read}");
    if let Some(f) = &fixed_format {
        // What a source reads from the text sent (a number for the epochs reads the same).
        let back = parse_time(&Value::String(written.clone()), f, &tz);
        let expected = match f {
            DateFormat::Rfc3339 => Some(t),
            DateFormat::EpochMillis => Some(Timestamp::from_millisecond(t.as_millisecond()).unwrap()),
            DateFormat::EpochSeconds => Some(Timestamp::from_second(t.as_second()).unwrap()),
            DateFormat::Pattern(p) if p.contains("%S") && in_years(t, &tz) => {
                let back =
                    back.as_ref().unwrap_or_else(|e| panic!("{t} written as {written:?} does not read back: {e}"));
                assert_eq!(&format_time(*back, f, &tz), &written, "{t}: the text changed");
                // Where clocks went back, the text may name the earlier of two instants.
                (!has_folds(zone)).then(|| floor_to_second(t))
            }
            DateFormat::Pattern(_) => None,
        };
        if let Some(e) = expected {
            assert_eq!(back, Ok(e), "{t} written as {written:?}");
        }
        if let Ok(back) = back {
            assert_eq!(read, back.min(t), "since_filter: {t} sent as {written:?} reads back as {back}, not {read}");
        }
    }

    // The portal's own format, local time in Vietnam, from 1976 (no clock change since).
    if t.as_second() >= 200_000_000 && t.to_zoned_datetime(TimeZone::UTC).year() <= 9998 {
        let p = portal_time(t);
        assert_eq!(parse_portal_time(&p), Ok(floor_to_second(t)), "{t} as the portal's {p:?}");
    }
    Ok(())
}

/// Up to 8 bytes, zero-padded.
fn pad(b: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    let n = b.len().min(8);
    out[..n].copy_from_slice(&b[..n]);
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
