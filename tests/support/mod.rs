//! Test harness: a simulated world in the test process, the real `dvc-bridge` binary as the daemon.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dvc_bridge::cli::demo::{BridgeTuning, demo_start, unpack_fixtures, write_config};
use dvc_bridge::clock::SimClock;
use dvc_bridge::sim::{SimOptions, World};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub world: World,
    pub opts: SimOptions,
    pub config: PathBuf,
    /// Every daemon started, killed when the harness is dropped: a test that fails half-way
    /// must not leave daemons running after it.
    daemons: Reaper,
}

/// The daemons' pids and the configuration they were started with: a pid is killed only while it
/// is still one of them (the test reaps most; their pids may have been reused since).
struct Reaper(std::sync::Mutex<Vec<u32>>, PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let config = self.1.display().to_string();
        for pid in self.0.lock().map(|d| d.clone()).unwrap_or_default() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&config) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

impl Harness {
    /// A world that changes every `tick` (zero: only on demand).
    pub async fn start(tick: Duration) -> Harness {
        Self::start_with(tick, BridgeTuning::default()).await
    }

    /// A world that changes every `tick`, and the bridge tuned as given.
    pub async fn start_with(tick: Duration, tuning: BridgeTuning) -> Harness {
        Self::start_shaped(tick, tuning, |_| {}).await
    }

    /// `start_with`, the world's options shaped by `shape` first (e.g. `SimOptions::self_sync`).
    pub async fn start_shaped(tick: Duration, tuning: BridgeTuning, shape: impl FnOnce(&mut SimOptions)) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixtures = unpack_fixtures(dir.path()).expect("fixtures");
        let clock = SimClock::starting_now(demo_start(), 60.0);
        let mut opts = SimOptions::demo(fixtures, clock);
        opts.tick = tick;
        opts.malformed_every = Some(25);
        shape(&mut opts);
        let world = World::start(opts.clone()).await.expect("simulated world");
        let config = write_config(dir.path(), &world, &opts, &tuning).expect("config");
        let daemons = Reaper(Default::default(), config.clone());
        Harness { dir, world, opts, config, daemons }
    }

    /// Sets `key` on every source of the written configuration, for what `BridgeTuning` does not
    /// cover (e.g. `full_sweep_interval_secs`). Call it before the daemon starts: the daemon reads
    /// its configuration at start (and on SIGHUP).
    pub fn set_source_option(&self, key: &str, value: impl Into<toml::Value>) {
        let text = std::fs::read_to_string(&self.config).expect("read the configuration");
        let mut doc: toml::Table = toml::from_str(&text).expect("the configuration is TOML");
        let value = value.into();
        let sources = doc.get_mut("sources").and_then(|s| s.as_array_mut()).expect("[[sources]] in the configuration");
        for source in sources {
            source.as_table_mut().expect("a [[sources]] table").insert(key.to_owned(), value.clone());
        }
        std::fs::write(&self.config, toml::to_string(&doc).expect("the configuration as TOML"))
            .expect("write the configuration");
    }

    /// Rewrites the written configuration through `edit`. Call it before the daemon starts (or
    /// send SIGHUP after).
    pub fn edit_config(&self, edit: impl FnOnce(&mut toml::Table)) {
        let text = std::fs::read_to_string(&self.config).expect("read the configuration");
        let mut doc: toml::Table = toml::from_str(&text).expect("the configuration is TOML");
        edit(&mut doc);
        std::fs::write(&self.config, toml::to_string(&doc).expect("the configuration as TOML"))
            .expect("write the configuration");
    }

    /// Turns on linking by applicant identity for `procedures` (`[linking]`), with a key in a
    /// secret file of its own, as an operator would configure it.
    pub fn enable_identity_linking(&self, procedures: &[&str], window_hours: u64) {
        let key = self.dir.path().join("secrets/identity-key");
        std::fs::write(&key, "test-identity-key\n").expect("write the identity key");
        self.edit_config(|doc| {
            let mut secret = toml::Table::new();
            secret.insert("file".into(), key.display().to_string().into());
            let mut linking = toml::Table::new();
            let procedures = procedures.iter().map(|p| toml::Value::from(*p)).collect();
            linking.insert("identity_procedures".into(), toml::Value::Array(procedures));
            linking.insert("identity_key".into(), secret.into());
            linking.insert("identity_window_hours".into(), toml::Value::from(window_hours as i64));
            doc.insert("linking".into(), linking.into());
        });
    }

    /// A read-only connection to the daemon's store.
    pub fn reader(&self) -> rusqlite::Connection {
        rusqlite_conn(&self.db())
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/dvc-bridge.db")
    }

    pub fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("daemon-{n}.log"))
    }

    /// Start the daemon as its own process; its stderr goes to `daemon-N.log`.
    pub fn spawn_daemon(&self, n: usize) -> Child {
        self.spawn_daemon_logging(n, "dvc_bridge=info,warn")
    }

    /// `spawn_daemon` with a tracing filter of the test's choosing (`RUST_LOG`).
    pub fn spawn_daemon_logging(&self, n: usize, filter: &str) -> Child {
        self.spawn_daemon_with(n, filter, &[])
    }

    /// `spawn_daemon_logging` with extra environment variables (e.g. failpoints).
    pub fn spawn_daemon_with(&self, n: usize, filter: &str, env: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(self.log_path(n)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dvc-bridge"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", filter)
            .envs(env.iter().copied())
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dvc-bridge");
        if let Ok(mut d) = self.daemons.0.lock() {
            d.push(child.id());
        }
        child
    }

    pub fn daemon_logs(&self) -> String {
        (0..8).filter_map(|n| std::fs::read_to_string(self.log_path(n)).ok()).collect::<Vec<_>>().join("\n---\n")
    }

    /// Run the CLI and return (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dvc-bridge"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run dvc-bridge");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Every way the portal differs from what the sources say it should show (empty: in sync).
    pub fn mismatches(&self) -> Vec<String> {
        mismatches(&self.world)
    }

    /// Every invariant against the world and the store (`sim::check`); panics with the report
    /// and the daemon's last log lines when one does not hold.
    pub fn assert_invariants(&self) -> dvc_bridge::sim::check::Report {
        let report = dvc_bridge::sim::check::check(&self.world, &self.db());
        assert!(report.is_clean(), "{report}\ndaemon logs:\n{}", tail(&self.daemon_logs(), 60));
        report
    }

    /// Wait until the portal matches the sources, or panic with what still differs.
    pub async fn wait_converged(&self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let m = self.mismatches();
            if m.is_empty() {
                return;
            }
            if t0.elapsed() > limit {
                panic!(
                    "portal still differs from the sources after {limit:?} ({} problems), first ones:\n{}\n\ndaemon logs:\n{}",
                    m.len(),
                    m.iter().take(15).cloned().collect::<Vec<_>>().join("\n"),
                    tail(&self.daemon_logs(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Wait until the portal matches the sources or `limit` passes; returns what still differs
    /// (empty: in sync), for a test that reports its own part of a failure rather than all of it.
    pub async fn settle(&self, limit: Duration) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            let m = self.mismatches();
            if m.is_empty() || t0.elapsed() > limit {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Wait until `sql` (a count) reaches at least `want`.
    pub async fn wait_count(&self, sql: &str, want: i64, limit: Duration) {
        let t0 = Instant::now();
        loop {
            if std::fs::metadata(self.db()).is_ok() && self.query_i64(sql) >= want {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "`{sql}` never reached {want} in {limit:?}\n{}",
                tail(&self.daemon_logs(), 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn query_i64(&self, sql: &str) -> i64 {
        let c = rusqlite_conn(&self.db());
        c.query_row(sql, [], |r| r.get(0)).expect(sql)
    }
}

fn rusqlite_conn(db: &Path) -> rusqlite::Connection {
    dvc_bridge::store::open_reader(db).expect("open database")
}

/// Send a signal (`-TERM`, `-HUP`, …) to a process.
pub fn kill(sig: &str, pid: u32) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// Wait until `sql` (a count) is exactly `want`.
pub async fn wait_for(h: &Harness, sql: &str, want: i64, limit: Duration) {
    let t0 = Instant::now();
    loop {
        if std::fs::metadata(h.db()).is_ok() && h.query_i64(sql) == want {
            return;
        }
        assert!(t0.elapsed() < limit, "`{sql}` never reached {want}\n{}", tail(&h.daemon_logs(), 40));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Compare the simulated portal with the simulated sources' truth.
pub fn mismatches(world: &World) -> Vec<String> {
    dvc_bridge::sim::check::portal_mismatches(world)
}
