//! The command line as operators use it: check-config diagnostics, and the demo.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dvc-bridge"))
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A folder with the three credentials the reference configuration names.
fn credentials() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for name in [
        "portal-password",
        "city-api-key",
        "moj-client-secret",
        "moc-token",
        "mae-password",
        "mof-password",
        "mps-api-key",
    ] {
        std::fs::write(d.path().join(name), "s3cret\n").unwrap();
    }
    d
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run dvc-bridge");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The reference configuration as an installed service would load it: adapters from their installed
/// folder (here overridden from the environment), secrets as systemd credentials.
fn check_reference(extra_env: &[(&str, &str)], creds: Option<&Path>) -> (i32, String) {
    let mut cmd = bin();
    cmd.args(["check-config", "--config"]).arg(repo("config/dvc-bridge.toml"));
    cmd.env("DVC_BRIDGE__PATHS__ADAPTERS_DIR", repo("adapters")).env_remove("CREDENTIALS_DIRECTORY");
    if let Some(c) = creds {
        cmd.env("CREDENTIALS_DIRECTORY", c);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn the_reference_configuration_is_valid_with_its_credentials() {
    let creds = credentials();
    let (code, out) = check_reference(&[], Some(creds.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("source city") && out.contains("source moj"), "{out}");
    assert!(!out.contains("s3cret"), "a secret must never be printed");
}

#[test]
fn the_verify_settings_are_checked_with_the_key_and_the_reason() {
    let creds = credentials();
    let check = |env: &[(&str, &str)]| check_reference(env, Some(creds.path()));
    // The portal allows 10 calls a second: the sweep may take 5 of them, delivery keeps the rest.
    let (code, out) = check(&[("DVC_BRIDGE__VERIFY__RATE_PER_SEC", "6")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("verify.rate_per_sec") && out.contains("half of portal.rate_limit_per_sec"), "{out}");
    let (code, out) =
        check(&[("DVC_BRIDGE__VERIFY__FULL_CYCLE_HOURS", "0"), ("DVC_BRIDGE__VERIFY__RECENT_INTERVAL_SECS", "0")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("verify.full_cycle_hours") && out.contains("verify.recent_interval_secs"), "{out}");
}

#[test]
fn a_missing_credential_names_the_key_and_where_it_was_looked_for() {
    let (code, out) = check_reference(&[], None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("portal.password") && out.contains("CREDENTIALS_DIRECTORY"), "{out}");
    assert!(out.contains("sources[1].credentials.client_secret"), "every problem at once:\n{out}");
}

#[test]
fn an_environment_override_is_validated_like_the_file() {
    let creds = credentials();
    let (code, out) = check_reference(&[("DVC_BRIDGE__DELIVERY__BATCH_SIZE", "0")], Some(creds.path()));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("delivery.batch_size"), "{out}");
    let (code, out) = check_reference(&[("DVC_BRIDGE__DELIVERY__BATCH_SIZE", "50")], Some(creds.path()));
    assert_eq!(code, 0, "{out}");
}

/// `check-config` on a copy, with the shipped adapters and every credential present.
fn check_copy(config: &Path) -> (i32, String) {
    let creds = credentials();
    run(bin()
        .args(["check-config", "--config"])
        .arg(config)
        .env("DVC_BRIDGE__PATHS__ADAPTERS_DIR", repo("adapters"))
        .env("CREDENTIALS_DIRECTORY", creds.path()))
}

fn broken_copy(from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("config/dvc-bridge.toml")).unwrap();
    assert!(text.contains(from), "the reference config changed: update this test");
    let p = d.path().join("dvc-bridge.toml");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    std::fs::copy(repo("config/cutover.toml"), d.path().join("cutover.toml")).unwrap();
    std::fs::copy(repo("config/calendar.toml"), d.path().join("calendar.toml")).unwrap();
    std::fs::copy(repo("config/procedures.toml"), d.path().join("procedures.toml")).unwrap();
    (d, p)
}

#[test]
fn a_typo_names_the_file_the_key_and_the_line() {
    let (_d, p) = broken_copy("batch_size = 20", "batch_sise = 20");
    let (code, out) = check_copy(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&p.display().to_string()), "names the file:\n{out}");
    assert!(out.contains("delivery") && out.contains("batch_sise"), "names the key:\n{out}");
    assert!(out.contains("line"), "names the line:\n{out}");
}

#[test]
fn an_inline_secret_is_refused_with_the_way_out() {
    let (_d, p) = broken_copy("password = { credential = \"portal-password\" }", "password = \"hunter2\"");
    let (code, out) = check_copy(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("portal.password") && out.contains("never written inline"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn a_calendar_that_contradicts_itself_is_refused_with_its_file_and_key() {
    let (d, p) = broken_copy("batch_size = 20", "batch_size = 20");
    let calendar = d.path().join("calendar.toml");
    let mut text = std::fs::read_to_string(&calendar).unwrap();
    text.push_str("\n[[working_day]]\ndate = 2026-01-01\nname = \"a typo\"\n");
    std::fs::write(&calendar, text).unwrap();
    let (code, out) = check_copy(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("calendar.toml") && out.contains("working_day") && out.contains("2026-01-01"), "{out}");
}

#[test]
fn linking_by_identity_without_a_key_is_refused() {
    let (_d, p) = broken_copy("identity_procedures = []", "identity_procedures = [\"1.001193\"]");
    let (code, out) = check_copy(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("linking.identity_key") && out.contains("needs a key"), "{out}");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "# identity_key = { credential = \"identity-key\" }",
        "identity_key = { credential = \"identity-key\" }",
    );
    std::fs::write(&p, text).unwrap();
    let (code, out) = check_copy(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("linking.identity_key") && out.contains("identity-key"), "the credential is missing: {out}");
}

#[test]
fn a_broken_descriptor_is_reported_with_its_own_file_and_key() {
    let d = tempfile::tempdir().unwrap();
    let adapters = d.path().join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    std::fs::copy(repo("adapters/city-igate.toml"), adapters.join("city-igate.toml")).unwrap();
    let moj = std::fs::read_to_string(repo("adapters/moj.toml"))
        .unwrap()
        .replace("DA_TRA_KET_QUA = 10", "DA_TRA_KET_QUA = 11");
    std::fs::write(adapters.join("moj.toml"), moj).unwrap();
    let creds = credentials();
    let (code, out) =
        check_reference(&[("DVC_BRIDGE__PATHS__ADAPTERS_DIR", adapters.to_str().unwrap())], Some(creds.path()));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("moj.toml") && out.contains("status_map.DA_TRA_KET_QUA") && out.contains("1–10"), "{out}");
}

#[test]
fn the_demo_runs_and_reports_what_it_syncs() {
    let (code, out) = run(bin().args(["demo", "--seconds", "5", "--interval", "1"]));
    assert_eq!(code, 0, "{out}");
    let last = out.lines().rfind(|l| l.contains("pushed")).expect("summary lines");
    let pushed: u64 =
        last.split("pushed").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(pushed > 50, "the demo pushes the fixtures' dossiers within seconds:\n{out}");
}

#[test]
fn the_merge_benchmark_runs_and_reports_its_figures() {
    let (code, out) = run(bin().args(["bench", "merge", "--dossiers", "20000", "--duplicated", "0.5"]));
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("merge:")).unwrap_or_else(|| panic!("no figures:\n{out}"));
    assert!(line.contains("20000 dossiers") && line.contains("dossiers/s"), "{line}");
    let pairs: u64 =
        line.split('(').nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    assert!((9_000..11_000).contains(&pairs), "about half the cases are linked pairs: {line}");
}

#[test]
fn the_ingest_benchmark_runs_and_reports_its_figures() {
    let (code, out) = run(bin().args(["bench", "ingest", "--records", "3000", "--page-size", "200"]));
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("ingest:")).unwrap_or_else(|| panic!("no figures:\n{out}"));
    assert!(line.contains("records/s") && line.contains("peak RSS"), "{line}");
    // The bulk records plus the city fixtures, every one stored (one fixture is malformed).
    assert!(line.contains("records in") && line.contains(" 1 quarantined"), "{line}");
    let stored: u64 =
        line.split('(').nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(stored >= 3000, "{line}");
}

#[test]
fn the_delivery_benchmark_runs_and_reports_its_figures() {
    let (code, out) = run(bin().args([
        "bench",
        "delivery",
        "--dossiers",
        "300",
        // 6 s of real time a day: at 3600× (1.5 s) a machine busy with other builds started the
        // daemon too late to acknowledge anything before the day ended.
        "--speed",
        "900",
        "--day",
        "13:30-15:00",
        "--due",
        "40",
        "--traffic",
        "1",
        "--outage-at",
        "14:00",
        "--outage-minutes",
        "30",
    ]));
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("delivery:")).unwrap_or_else(|| panic!("no figures:\n{out}"));
    let acked: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    // The bulk records plus the city fixtures, but for the malformed one.
    assert!(acked >= 300 && line.contains("dossiers/s") && line.contains("calls of up to 20"), "{line}");
    for order in ["edf", "fifo"] {
        let day = out
            .lines()
            .find(|l| l.starts_with(&format!("delivery day ({order})")))
            .unwrap_or_else(|| panic!("no {order} day:\n{out}"));
        assert!(day.contains("false-late dossier-minutes") && day.contains("during it"), "{day}");
        let before = day.split(" dossier objects acknowledged").next().unwrap_or("");
        let acked: u64 = before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(acked > 100, "the daemon synced the world during the day: {day}");
    }
}

/// The number just before `word` in `line`.
fn number_before(line: &str, word: &str) -> Option<f64> {
    line.split(word).next()?.split_whitespace().last()?.parse().ok()
}

#[test]
fn the_freshness_benchmark_runs_and_reports_its_figures() {
    let (code, out) = run(bin().args([
        "bench",
        "freshness",
        "--changes-per-sec",
        "10",
        "--minutes",
        "0.2",
        "--warmup-secs",
        "1",
        "--poll-interval",
        "1",
    ]));
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("freshness")).unwrap_or_else(|| panic!("no figures:\n{out}"));
    assert!(line.contains("poll every 1 s") && line.contains("p50") && line.contains("p99"), "{line}");
    let changes = number_before(line, "changes in").unwrap_or(0.0);
    assert!(changes >= 50.0, "about 10 changes a second for 12 s: {line}");
    assert_eq!(number_before(line, "never reached"), Some(0.0), "every change reached the portal: {line}");
    let max = line.split("max ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse::<f64>().ok());
    assert!(max.is_some_and(|m| m < 30.0), "with 1 s polls a change is on the portal within seconds: {line}");
}

#[test]
fn the_resync_benchmark_runs_and_reports_its_figures() {
    let (code, out) = run(bin().args(["bench", "resync", "--dossiers", "2000"]));
    assert_eq!(code, 0, "{out}");
    let first = out.lines().find(|l| l.starts_with("first sync")).unwrap_or_else(|| panic!("no first sync:\n{out}"));
    assert!(number_before(first, "outbox rows queued").unwrap_or(0.0) >= 2000.0, "{first}");
    let line = out.lines().find(|l| l.starts_with("re-sync")).unwrap_or_else(|| panic!("no figures:\n{out}"));
    assert!(line.contains("dossiers/s") && line.contains("peak RSS") && line.contains("MiB (file + WAL)"), "{line}");
    // The bulk records and the fixtures, every one merged again, and nothing changed: nothing queued.
    assert!(number_before(line, "dossiers merged").unwrap_or(0.0) >= 2000.0, "{line}");
    assert_eq!(number_before(line, "outbox rows queued"), Some(0.0), "{line}");
    assert_eq!(number_before(line, "progress steps"), Some(0.0), "{line}");
}

#[test]
fn every_shipped_descriptor_maps_its_systems_recorded_records() {
    use dvc_bridge::core::descriptor::Descriptor;
    use dvc_bridge::core::mapping::Mapper;
    for (source, adapter) in
        [("city", "city-igate"), ("moj", "moj"), ("moc", "moc"), ("mae", "mae"), ("mof", "mof"), ("mps", "mps")]
    {
        let text = std::fs::read_to_string(repo(&format!("adapters/{adapter}.toml"))).unwrap();
        let mapper = Mapper::new(Descriptor::parse(&text).unwrap_or_else(|e| panic!("{adapter}: {e:?}")));
        let records: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(repo(&format!("fixtures/{source}.json"))).unwrap()).unwrap();
        let failures: Vec<String> =
            records.iter().filter_map(|r| mapper.map(source, r).err().map(|e| e.to_string())).collect();
        // Each system's fixtures hold exactly one deliberately malformed record.
        assert_eq!(failures.len(), 1, "{source}: {failures:#?}");
        let ok: Vec<_> = records.iter().filter_map(|r| mapper.map(source, r).ok()).collect();
        assert!(ok.len() >= 20, "{source}: {} records mapped", ok.len());
        assert!(ok.iter().any(|r| r.status.is_end()), "{source}: some dossiers ended");
        assert!(ok.iter().all(|r| r.received_at.is_some() && r.due_at.is_some()), "{source}: times mapped");
        assert!(ok.iter().any(|r| !r.steps.is_empty()), "{source}: progress steps mapped");
    }
}
