//! `dvc-bridge explain CODE [--json]`: why a dossier is what it is. The members and the rule that
//! linked each, the authoritative member and why, where each pushed field came from, the due time
//! the bridge computes with its working-time arithmetic against the source's and the portal's, the
//! supplement pauses, both verdicts and every doubt found, what the portal last acknowledged, and
//! the case's recent sync-log history. Read-only: safe beside the running daemon.

use std::path::Path;

use clap::Args;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::{EXIT_ERROR, EXIT_OK};
use crate::config::Settings;
use crate::core::calendar::{DeadlineCase, Pause, Verdict};
use crate::core::merge::MergeOutcome;
use crate::core::payload;
use crate::core::privacy;
use crate::core::record::SourceRecord;
use crate::core::timefmt::display_time;
use crate::store;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A dossier code: the portal's, or any member's.
    pub code: String,
    /// One JSON object, for tools.
    #[arg(long)]
    pub json: bool,
}

fn time(t: Option<jiff::Timestamp>) -> Value {
    t.map(|t| Value::String(display_time(t))).unwrap_or(Value::Null)
}

/// Which member a pushed value came from: the authoritative one when it holds that value,
/// otherwise the first member (in merge order) that does.
fn origin<T: PartialEq>(
    members: &[&SourceRecord],
    authority: &SourceRecord,
    value: &T,
    get: impl Fn(&SourceRecord) -> T,
) -> String {
    let key = |r: &SourceRecord| format!("{}/{}", r.source, r.native_id);
    if get(authority) == *value {
        return key(authority);
    }
    members.iter().find(|r| get(r) == *value).map(|r| key(r)).unwrap_or_else(|| "(none)".into())
}

/// The due time: the bridge's reckoning with its arithmetic, the source's, what the portal judges
/// against, both verdicts, and every doubt found.
fn deadline(settings: &Settings, state: &SourceRecord, now: jiff::Timestamp) -> Value {
    let rules = &settings.deadlines;
    let check = rules.check(state, now);
    let pauses: Vec<Pause> = state.supplements.iter().map(Pause::from).collect();
    let arithmetic = match (check.limit, state.arrived_at()) {
        (Some(limit), Some(received)) => {
            let case = DeadlineCase {
                received_at: received,
                limit,
                supplements: &pauses,
                ended_at: payload::end_time(state),
                as_of: now,
            };
            match rules.calendar.explain(&case) {
                Ok(a) => {
                    json!({"paused_minutes": a.paused.as_secs() / 60, "uncovered_years": a.uncovered_years, "steps": a.steps})
                }
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        (None, _) => {
            json!({"note": format!("procedure {} has no time limit in the procedures table", state.procedure.code)})
        }
        (_, None) => json!({"note": "no receipt time: nothing to count from"}),
    };
    let verdict = |v: Option<Verdict>, due: Option<jiff::Timestamp>| match (v, due) {
        (Some(v), _) => Value::String(v.name_vi().into()),
        (None, Some(_)) if check.awaiting_supplement => "clock stopped: a supplement is awaited".into(),
        (None, Some(_)) => "not yet due".into(),
        (None, None) => Value::Null,
    };
    json!({
        "limit": check.limit.map(|l| l.to_string()),
        "computed_base": time(check.computed_base),
        "computed_due": time(check.computed_due),
        "source_due": time(check.source_due),
        "pushed_due": time(check.pushed_due),
        "portal_due": time(check.portal_due),
        "supplements": pauses.iter().map(|p| json!({"requested_at": time(Some(p.requested_at)), "received_at": time(p.received_at)})).collect::<Vec<_>>(),
        "verdict": verdict(check.computed_verdict, check.computed_due),
        "portal_verdict": verdict(check.portal_verdict, check.portal_due),
        "findings": check.findings.iter().map(|f| json!({"finding": f.name(), "text": f.describe(&check)})).collect::<Vec<_>>(),
        "arithmetic": arithmetic,
    })
}

/// How many sync-log entries `explain` shows, newest last.
const HISTORY: usize = 20;

/// The case's sync-log history: entries under its portal code and its members' codes.
fn history(conn: &Connection, codes: &[&str]) -> anyhow::Result<Vec<store::synclog::LogRow>> {
    let mut rows = Vec::new();
    for code in codes {
        let f = store::synclog::Filter { dossier: Some(code.to_string()), ..Default::default() };
        rows.extend(store::synclog::query(conn, &f, HISTORY)?);
    }
    rows.sort_by_key(|r| r.seq);
    rows.dedup_by_key(|r| r.seq);
    let skip = rows.len().saturating_sub(HISTORY);
    Ok(rows.split_off(skip))
}

fn explain(settings: &Settings, conn: &Connection, code: &str) -> anyhow::Result<Value> {
    let id: i64 = store::report::cases_with_code(conn, code)?
        .into_iter()
        .min()
        .ok_or_else(|| anyhow::anyhow!("no dossier with the code {code:?} in the store"))?;
    let (portal_code, version, decision, conflict): (String, i64, Option<String>, Option<String>) =
        conn.query_row("SELECT portal_code, version, canonical, conflict FROM dossiers WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    let mut stmt = conn.prepare(
        "SELECT source, native_id, code, link_rule, mapped FROM source_records WHERE dossier_id = ?1 ORDER BY source, native_id",
    )?;
    let rows: Vec<(String, String, String, Option<String>, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let records: Vec<SourceRecord> = rows.iter().map(|r| serde_json::from_str(&r.4)).collect::<Result<_, _>>()?;
    let ctx = crate::daemon::merge_ctx(settings);
    // As the store decides it: the merge, with the attestation in force applied.
    let canonical = match store::ingest::merge_case(conn, &ctx, id, &records, None)? {
        Some(MergeOutcome::Ok(c)) | Some(MergeOutcome::Regression { canonical: c, .. }) => c,
        None => anyhow::bail!("case {portal_code} has no members"),
    };
    let attestations = store::attest::list(conn, id)?;
    let attested = attestations.last();
    let state = &canonical.state;
    let authority = records
        .iter()
        .find(|r| {
            (r.source.as_str(), r.native_id.as_str())
                == (canonical.authority.0.as_str(), canonical.authority.1.as_str())
        })
        .unwrap_or(&records[0]);
    let refs: Vec<&SourceRecord> = records.iter().collect();
    // The finish an operator attested wins over the members' (see core::attest).
    let attested_by = attested.map(|a| format!("attested by {} at {}", a.by, a.at));
    let end_from = |default: String| attested_by.clone().unwrap_or(default);
    let fields = json!({
        "status": {"value": state.status.code(), "from": end_from(origin(&refs, authority, &state.status, |r| r.status))},
        "received_at": {"value": time(state.received_at), "from": origin(&refs, authority, &state.received_at, |r| r.received_at), "rule": "the earliest receipt of any member"},
        "due_at": match state.due_at {
            Some(_) => json!({"value": time(state.due_at), "from": origin(&refs, authority, &state.due_at, |r| r.due_at)}),
            // No member gives one: the bridge pushes its own (see "deadline").
            None => json!({"value": time(settings.deadlines.check(state, settings.clock().now()).pushed_due), "from": "the bridge's reckoning"}),
        },
        "ended_at": {"value": time(payload::end_time(state)), "from": end_from(origin(&refs, authority, &payload::end_time(state), payload::end_time))},
        "code": {"value": state.code, "from": origin(&refs, authority, &state.code, |r| r.code.clone()), "rule": "the code of the earliest-received member"},
        "procedure": {"value": state.procedure.code, "from": origin(&refs, authority, &state.procedure.code, |r| r.procedure.code.clone())},
        "applicant": {"value": state.applicant.name.as_deref().map(privacy::mask_name), "from": origin(&refs, authority, &state.applicant.name, |r| r.applicant.name.clone())},
        "agency": {"value": state.agency.name, "from": origin(&refs, authority, &state.agency.name, |r| r.agency.name.clone())},
    });
    let now = settings.clock().now();
    let deadline = deadline(settings, state, now);
    let portal: Option<Value> = conn
        .query_row(
            "SELECT version, status, live, acked_at FROM portal_state WHERE code = ?1",
            [&portal_code],
            |r| Ok(json!({"version": r.get::<_, i64>(0)?, "status": r.get::<_, i64>(1)?, "live": r.get::<_, bool>(2)?, "acked_at": r.get::<_, String>(3)?})),
        )
        .optional()?;
    let mut codes: Vec<&str> = vec![portal_code.as_str()];
    codes.extend(rows.iter().map(|r| r.2.as_str()).filter(|c| *c != portal_code));
    codes.dedup();
    let history: Vec<Value> = history(conn, &codes)?
        .into_iter()
        .map(|r| json!({"seq": r.seq, "at": r.at.parse().map(display_time).unwrap_or(r.at), "level": r.level, "kind": r.kind, "dossier": r.dossier, "actor": r.actor, "message": r.message}))
        .collect();
    let queued: i64 = conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE dossier_id = ?1 AND code = ?2",
        params![id, portal_code],
        |r| r.get(0),
    )?;
    Ok(json!({
        "code": portal_code,
        "version": version,
        "conflict": conflict,
        "members": rows.iter().zip(&records).map(|(row, r)| json!({
            "record": format!("{}/{}", row.0, row.1),
            "code": row.2,
            "linked_by": row.3,
            "kind": ctx.kind(&row.0),
            "status": r.status.code(),
            "received_at": time(r.arrived_at()),
            "updated_at": time(Some(r.updated_at)),
        })).collect::<Vec<_>>(),
        "authority": {"record": format!("{}/{}", canonical.authority.0, canonical.authority.1), "why": canonical.authority_reason.describe()},
        "stored_decision": decision.and_then(|d| serde_json::from_str::<Value>(&d).ok()),
        "other_codes": canonical.other_codes,
        "fields": fields,
        "deadline": deadline,
        "portal": portal,
        "queued_for_portal": queued,
        "attestations": attestations,
        "history": history,
    }))
}

fn print(v: &Value) {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    println!("Dossier {} (version {})", s(&v["code"]), s(&v["version"]));
    if !v["conflict"].is_null() {
        println!("  CONFLICT: {}", s(&v["conflict"]));
    }
    println!("Members:");
    for m in v["members"].as_array().into_iter().flatten() {
        println!(
            "  {:<32} code {:<24} linked by {:<10} status {:<2} received {}  updated {}",
            s(&m["record"]),
            s(&m["code"]),
            s(&m["linked_by"]),
            s(&m["status"]),
            s(&m["received_at"]),
            s(&m["updated_at"])
        );
    }
    println!("Authoritative: {} — {}", s(&v["authority"]["record"]), s(&v["authority"]["why"]));
    println!("Fields pushed:");
    for (name, f) in v["fields"].as_object().into_iter().flatten() {
        let rule = if f["rule"].is_null() { String::new() } else { format!(" ({})", s(&f["rule"])) };
        println!("  {name:<12} {:<28} from {}{rule}", s(&f["value"]), s(&f["from"]));
    }
    let d = &v["deadline"];
    let a = &d["arithmetic"];
    println!("Due time:");
    println!(
        "  limit {}; the law's due {} (before pauses {}); the source's {}; pushed {}; the portal judges against {}",
        s(&d["limit"]),
        s(&d["computed_due"]),
        s(&d["computed_base"]),
        s(&d["source_due"]),
        s(&d["pushed_due"]),
        s(&d["portal_due"])
    );
    for f in d["findings"].as_array().into_iter().flatten() {
        println!("  ! {}", s(&f["text"]));
    }
    if !a["note"].is_null() || !a["error"].is_null() {
        println!("  {}", s(if a["note"].is_null() { &a["error"] } else { &a["note"] }));
    }
    for step in a["steps"].as_array().into_iter().flatten() {
        println!("    {}", s(step));
    }
    println!("  verdict: by the law's due {}; on the portal {}", s(&d["verdict"]), s(&d["portal_verdict"]));
    match v["portal"].as_object() {
        Some(p) => println!(
            "Portal: version {} status {} {} (acknowledged {}); {} update(s) queued",
            s(&p["version"]),
            s(&p["status"]),
            if p["live"] == Value::Bool(true) { "live" } else { "closed" },
            s(&p["acked_at"]),
            s(&v["queued_for_portal"])
        ),
        None => println!("Portal: not acknowledged yet; {} update(s) queued", s(&v["queued_for_portal"])),
    }
    for a in v["attestations"].as_array().into_iter().flatten() {
        let t = &a["attestation"];
        println!(
            "Attested by {} at {}: finished {}{}; reason: {}",
            s(&a["by"]),
            s(&a["at"]),
            s(&t["finished_at"]),
            if t["returned_at"].is_null() { String::new() } else { format!(", returned {}", s(&t["returned_at"])) },
            s(&t["reason"])
        );
    }
    let history = v["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        println!("Sync log (last {}):", history.len());
        for e in &history {
            println!(
                "  {:>7} {} {:<5} {:<22} {}",
                s(&e["seq"]),
                s(&e["at"]),
                s(&e["level"]),
                s(&e["kind"]),
                s(&e["message"])
            );
        }
    }
}

pub fn main(file: &Path, args: &ExplainArgs) -> u8 {
    let result = (|| -> anyhow::Result<()> {
        let settings =
            crate::config::load(file, false).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))?;
        let conn = store::open_reader(&settings.db_path())?;
        let v = explain(&settings, &conn, &args.code)?;
        if args.json {
            println!("{v}");
        } else {
            print(&v);
        }
        Ok(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dvc-bridge explain: {e:#}");
            EXIT_ERROR
        }
    }
}
