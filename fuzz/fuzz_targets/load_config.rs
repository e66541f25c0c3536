//! Configuration files as an operator may write them: the daemon's configuration through the loader
//! (`config::load`, as `check-config` and start use it), and the files it names, each through its
//! parser: a descriptor (`Descriptor::parse`), the calendar (`Calendar::parse`), the procedures'
//! time limits and the cutover table.
//!
//! Input: the first byte picks the file (`byte % 5`: configuration, descriptor, calendar, procedures,
//! cutover); the rest is its text. The configuration is written to `dvc-bridge.toml` in a folder laid
//! out as the shipped one (`config/` with the shipped calendar, procedures and cutover tables,
//! `adapters/` with the shipped descriptors) and loaded with secrets unresolved, as
//! `tests/bad_input.rs` does.
//!
//! Properties: no panic; a refusal carries at least one problem and every problem a reason. What is
//! accepted is used as the daemon would: a descriptor maps a recorded record and writes its
//! updated-since filter; a calendar computes due times, never before the receipt.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use dvc_bridge::cli::demo;
use dvc_bridge::core::calendar::{Calendar, DeadlineCase, Pause, TimeLimit, Verdict};
use dvc_bridge::core::cutover::CutoverTable;
use dvc_bridge::core::descriptor::Descriptor;
use dvc_bridge::core::mapping::Mapper;
use dvc_bridge::core::procedures::ProcedureTable;
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The shipped descriptors are `dvc_bridge::cli::demo::ADAPTERS`; the configuration folder's other
/// files are the shipped ones too.
const CONFIG: [(&str, &str); 3] = [
    ("calendar.toml", demo::CALENDAR),
    ("procedures.toml", demo::PROCEDURES),
    ("cutover.toml", include_str!("../../config/cutover.toml")),
];

/// One recorded record of each shape, for descriptors that parse.
const RECORDS: [&str; 6] = [
    include_str!("../../fixtures/city.json"),
    include_str!("../../fixtures/moj.json"),
    include_str!("../../fixtures/moc.json"),
    include_str!("../../fixtures/mae.json"),
    include_str!("../../fixtures/mof.json"),
    include_str!("../../fixtures/mps.json"),
];

/// The configuration file's path, in a folder written once per process (under `$TMPDIR`).
fn config_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let root = tempfile::Builder::new().prefix("dvc-bridge-fuzz-").tempdir().expect("temp dir").keep();
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::create_dir_all(root.join("adapters")).unwrap();
        for (name, text) in demo::ADAPTERS {
            std::fs::write(root.join("adapters").join(name), text).unwrap();
        }
        for (name, text) in CONFIG {
            std::fs::write(root.join("config").join(name), text).unwrap();
        }
        root.join("config/dvc-bridge.toml")
    })
}

fn records() -> &'static [Value] {
    static RECS: OnceLock<Vec<Value>> = OnceLock::new();
    RECS.get_or_init(|| {
        RECORDS
            .iter()
            .map(|t| serde_json::from_str::<Vec<Value>>(t).unwrap().into_iter().next().expect("a record"))
            .collect()
    })
}

fn configuration(bytes: &[u8]) {
    let file = config_file();
    std::fs::write(file, bytes).expect("write the configuration");
    match dvc_bridge::config::load(file, false) {
        Ok(settings) => assert!(!settings.sources.is_empty(), "loaded without a source"),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without a problem");
            for issue in &errors.0 {
                assert!(!issue.reason.is_empty(), "a problem without a reason: {issue:?}");
            }
        }
    }
}

fn descriptor(text: &str) {
    match Descriptor::parse(text) {
        Err(issue) => assert!(!issue.reason.is_empty(), "{issue:?}"),
        Ok(d) => {
            // The poller writes its updated-since filter with the descriptor's formats...
            let t: Timestamp = "2026-03-09T01:15:00.5Z".parse().unwrap();
            let (_, read) = dvc_bridge::source::fetch::since_filter(&d, t);
            assert!(read <= t);
            // ... and maps records with it.
            let mapper = Mapper::new(d);
            for rec in records() {
                if let Err(e) = mapper.map("fuzz", rec) {
                    assert!(!e.field.is_empty() && !e.reason.is_empty(), "{e:?}");
                }
            }
        }
    }
}

fn calendar(text: &str) {
    match Calendar::parse(text) {
        Err(issues) => {
            assert!(!issues.is_empty());
            assert!(issues.iter().all(|i| !i.reason.is_empty()), "{issues:?}");
        }
        Ok(cal) => {
            for received in ["2026-03-09T01:15:00Z", "2026-02-14T09:59:59Z", "2025-04-29T23:00:00Z"] {
                let received: Timestamp = received.parse().unwrap();
                let _ = cal.next_working_instant(received);
                for limit in
                    [TimeLimit::SameDay, TimeLimit::Hours(4), TimeLimit::WorkingDays(3), TimeLimit::CalendarDays(15)]
                {
                    if let Ok(due) = cal.due(received, limit) {
                        assert!(due >= received, "{limit}: due {due} before the receipt {received}");
                        let _ = cal.working_time_between(received, due);
                        verdicts(&cal, received, limit, due);
                    }
                }
            }
        }
    }
}

/// The verdict the calendar gives (as `explain` computes it, every step written out): a dossier that
/// ended at its due time is not late, one a second later is; with a supplement requested and
/// answered before the due time, the due time moves later by the paused working time, never earlier.
fn verdicts(cal: &Calendar, received: Timestamp, limit: TimeLimit, due: Timestamp) {
    let second = jiff::SignedDuration::from_secs(1);
    let judge = |ended: Timestamp, pauses: &[Pause]| {
        let case =
            DeadlineCase { received_at: received, limit, supplements: pauses, ended_at: Some(ended), as_of: ended };
        let explained = cal.explain(&case);
        if let Ok(a) = &explained {
            assert!(!a.steps.is_empty(), "{limit}: an explanation without steps");
            assert_eq!(Ok(a.due), cal.assess(&case).map(|b| b.due), "{limit}: explain and assess disagree");
        }
        explained.ok()
    };
    if let Some(a) = judge(due, &[]) {
        assert_eq!(a.due, due, "{limit}: assess and due disagree");
        assert!(
            a.verdict.is_some_and(Verdict::is_on_time),
            "{limit}: ended at its due time {due}, judged {:?}",
            a.verdict
        );
    }
    if let Some(a) = due.checked_add(second).ok().and_then(|end| judge(end, &[])) {
        assert!(
            matches!(a.verdict, Some(Verdict::Late(_))),
            "{limit}: ended after its due time, judged {:?}",
            a.verdict
        );
    }
    if due > received {
        let pause = Pause { requested_at: received, received_at: Some(due) };
        if let Some(a) = judge(due, &[pause]) {
            assert!(a.due >= due, "{limit}: a supplement's pause moved the due time earlier: {} < {due}", a.due);
            let _ = cal.judge(due, &[pause], Some(due), due);
        }
    }
}

fn procedures(text: &str) {
    match toml::from_str::<ProcedureTable>(text) {
        Err(e) => assert!(!e.to_string().trim().is_empty()),
        Ok(t) => {
            for (key, reason) in t.problems() {
                assert!(!key.is_empty() && !reason.is_empty());
            }
            let _ = t.limit_for("1.000894");
        }
    }
}

fn cutover(text: &str) {
    match toml::from_str::<CutoverTable>(text) {
        Err(e) => assert!(!e.to_string().trim().is_empty()),
        Ok(t) => {
            let _ = t.date_for("moj", "1.000894");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => configuration(rest),
        1 => descriptor(&text),
        2 => calendar(&text),
        3 => procedures(&text),
        _ => cutover(&text),
    }
});
