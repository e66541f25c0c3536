//! `dvc-bridge demo`: the simulated city, ministry and portal on loopback, with the daemon syncing
//! them, and one summary line per interval until Ctrl-C.
//!
//! Everything it needs is embedded in the binary (fixtures, adapter descriptors, cutover table), so
//! it runs from anywhere. The configuration it writes is a real one: the daemon does not know it is
//! talking to simulators.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};
use crate::sim::{self, SimOptions, World};
use crate::stats::Counters;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the database and configuration here (default: a temporary folder, removed at exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

const FIXTURES: &[(&str, &str)] = &[
    ("procedures.json", include_str!("../../fixtures/procedures.json")),
    ("agencies.json", include_str!("../../fixtures/agencies.json")),
    ("people.json", include_str!("../../fixtures/people.json")),
    ("businesses.json", include_str!("../../fixtures/businesses.json")),
    ("city.json", include_str!("../../fixtures/city.json")),
    ("moj.json", include_str!("../../fixtures/moj.json")),
    ("moc.json", include_str!("../../fixtures/moc.json")),
    ("mae.json", include_str!("../../fixtures/mae.json")),
    ("mof.json", include_str!("../../fixtures/mof.json")),
    ("mps.json", include_str!("../../fixtures/mps.json")),
];

/// The shipped adapter descriptors, embedded so the demo and the benchmark run from anywhere.
pub const ADAPTERS: &[(&str, &str)] = &[
    ("city-igate.toml", include_str!("../../adapters/city-igate.toml")),
    ("moj.toml", include_str!("../../adapters/moj.toml")),
    ("moc.toml", include_str!("../../adapters/moc.toml")),
    ("mae.toml", include_str!("../../adapters/mae.toml")),
    ("mof.toml", include_str!("../../adapters/mof.toml")),
    ("mps.toml", include_str!("../../adapters/mps.toml")),
];

/// The simulated clock's start for the embedded fixtures (Monday 2026-03-09 07:30, Hải Phòng time).
pub fn demo_start() -> jiff::Timestamp {
    sim::fixtures_start()
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Unpack the embedded fixtures into `dir/fixtures`.
pub fn unpack_fixtures(dir: &Path) -> anyhow::Result<PathBuf> {
    let fixtures = dir.join("fixtures");
    for (name, text) in FIXTURES {
        write(&fixtures.join(name), text)?;
    }
    Ok(fixtures)
}

/// How the bridge is tuned against the simulators.
#[derive(Debug, Clone)]
pub struct BridgeTuning {
    pub poll_interval_secs: u64,
    /// In clock seconds (simulated seconds under a simulated clock).
    pub lookback_secs: u64,
    pub batch_size: usize,
    pub idle_poll_ms: u64,
    pub backoff_secs: u64,
    pub max_backoff_secs: u64,
    /// Per-request timeout for every source (seconds).
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub breaker_cooldown_secs: u64,
}

impl Default for BridgeTuning {
    fn default() -> Self {
        Self {
            poll_interval_secs: 1,
            lookback_secs: 600,
            batch_size: 20,
            idle_poll_ms: 200,
            backoff_secs: 1,
            max_backoff_secs: 5,
            timeout_secs: 10,
            max_retries: 3,
            breaker_cooldown_secs: 5,
        }
    }
}

/// The shipped working-time calendar.
pub const CALENDAR: &str = include_str!("../../config/calendar.toml");

/// The shipped procedure time limits (the simulated systems' procedures).
pub const PROCEDURES: &str = include_str!("../../config/procedures.toml");

/// Write a complete configuration pointing at the simulated world: adapters, the world's cutover
/// table, one secret file per secret, and `config/dvc-bridge.toml` with the database in `dir/data`.
/// Returns the config's path.
pub fn write_config(dir: &Path, world: &World, opts: &SimOptions, t: &BridgeTuning) -> anyhow::Result<PathBuf> {
    for (name, text) in ADAPTERS {
        write(&dir.join("adapters").join(name), text)?;
    }
    let s = |v: &str| toml::Value::String(v.to_string()).to_string();
    let mut cutover = String::from("# Written by dvc-bridge demo: the simulated ministries' cutover dates.\n");
    for (source, procedure, date) in world.cutovers() {
        cutover.push_str(&format!(
            "\n[[cutover]]\nsource = {}\nprocedure = {}\ndate = {date}\n",
            s(&source),
            s(&procedure)
        ));
    }
    write(&dir.join("config/cutover.toml"), &cutover)?;
    write(&dir.join("config/calendar.toml"), CALENDAR)?;
    write(&dir.join("config/procedures.toml"), PROCEDURES)?;
    let secrets = dir.join("secrets");
    write(&secrets.join("portal-password"), &opts.portal_password)?;
    let file = |p: &Path| format!("{{ file = {} }}", s(&p.display().to_string()));
    let mut text = format!(
        r#"# Written by dvc-bridge demo: the simulated world on loopback.
[store]
data_dir = {data}

[paths]
adapters_dir = "../adapters"
cutover_file = "cutover.toml"
calendar_file = "calendar.toml"
procedures_file = "procedures.toml"

[clock]
mode = "simulated"
start = {start}
anchor = {anchor}
speed = {speed}

[log]
level = "warn"

[portal]
base_url = {portal}
auth_path = {auth_path}
integration_path = {integration_path}
dstcode = {dstcode}
madonvi = {madonvi}
username = {username}
password = {password}
timeout_secs = 10

[metrics]
# A free port, logged at start (`dvc-bridge log --kind metrics`).
listen = "127.0.0.1:0"

[delivery]
batch_size = {batch}
idle_poll_ms = {idle}
backoff_secs = {backoff}
max_backoff_secs = {max_backoff}
"#,
        data = s(&dir.join("data").display().to_string()),
        start = s(&opts.clock.start.to_string()),
        anchor = s(&opts.clock.anchor.to_string()),
        speed = opts.clock.speed,
        portal = s(&world.portal_url),
        auth_path = s(sim::AUTH_PATH),
        integration_path = s(sim::INTEGRATION_PATH),
        dstcode = s(&opts.portal_dstcode),
        madonvi = s(&opts.portal_madonvi),
        username = s(&opts.portal_username),
        password = file(&secrets.join("portal-password")),
        batch = t.batch_size,
        idle = t.idle_poll_ms,
        backoff = t.backoff_secs,
        max_backoff = t.max_backoff_secs,
    );
    for system in world.systems() {
        text.push_str(&format!(
            "\n[[sources]]\nname = {}\nadapter = {}\nbase_url = {}\npoll_interval_secs = {}\nlookback_secs = {}\ntimeout_secs = {}\nmax_retries = {}\nbreaker_cooldown_secs = {}\n[sources.credentials]\n",
            s(&system.name),
            s(&system.adapter),
            s(&system.url),
            t.poll_interval_secs,
            t.lookback_secs,
            t.timeout_secs,
            t.max_retries,
            t.breaker_cooldown_secs
        ));
        for (key, value) in &system.credentials {
            // Identifiers are plain values; secrets live in files, as in production.
            let line = if key == "client_id" || key == "username" {
                s(value)
            } else {
                let path = secrets.join(format!("{}-{key}", system.name));
                write(&path, value)?;
                file(&path)
            };
            text.push_str(&format!("{key} = {line}\n"));
        }
    }
    let path = dir.join("config/dvc-bridge.toml");
    write(&path, &text)?;
    Ok(path)
}

fn summary(world: &World, stats: &Counters, db: &Path) -> String {
    let now = world.now().to_zoned_datetime(crate::clock::vn_tz()).strftime("%a %d/%m %H:%M").to_string();
    let (queued, parked) = crate::store::open_reader(db)
        .ok()
        .and_then(|c| crate::store::report::delivery(&c).ok())
        .map(|d| (d.queued, d.parked))
        .unwrap_or((0, 0));
    let portal = world.portal_snapshot();
    let live = portal.values().filter(|p| p.live).count();
    // Shown late, and of those falsely: the sources say the dossier ended on time (or is not due).
    let lateness = world.portal_lateness();
    let (late, falsely) = (lateness.shown_late, lateness.false_late);
    let g = |c: &std::sync::atomic::AtomicU64| Counters::get(c);
    format!(
        "{now} | polled {:>6}  new {:>4}  changed {:>4}  quarantined {:>2} | pushed {:>4}  closed dup {:>2}  queued {:>3}  parked {:>2} | portal {:>4} live, {:>3} shown late, {:>3} falsely",
        g(&stats.polled),
        g(&stats.new),
        g(&stats.changed),
        g(&stats.quarantined),
        g(&stats.pushed),
        g(&stats.closed),
        queued,
        parked,
        live,
        late,
        falsely
    )
}

pub fn main(args: &DemoArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&e.into()),
    };
    match rt.block_on(run(args)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dvc-bridge demo: {e:#}");
            EXIT_ERROR
        }
    }
}

async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("dvc-bridge-demo-").tempdir()?;
    let dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            std::path::absolute(d)?
        }
        None => tmp.path().to_path_buf(),
    };
    let fixtures = unpack_fixtures(&dir)?;
    let clock = crate::clock::SimClock::starting_now(demo_start(), args.speed);
    let opts = SimOptions::demo(fixtures, clock);
    let world = World::start(opts.clone()).await?;
    let config = write_config(&dir, &world, &opts, &BridgeTuning::default())?;
    let settings =
        crate::config::load(&config, true).map_err(|e| anyhow::anyhow!("demo configuration invalid:\n{e}"))?;
    let db = settings.db_path();
    println!(
        "dvc-bridge demo — the simulated Hải Phòng city system, five ministries' systems and Cổng DVCQG on loopback"
    );
    for system in world.systems() {
        println!("  {:<6} {:<9} {}", system.name, system.kind, system.url);
    }
    println!("  portal           {}", world.portal_url);
    println!("  clock            simulated, {}× real time", args.speed);
    println!("  configuration    {}", config.display());
    println!(
        "  in another terminal: dvc-bridge status --config {0}   |   dvc-bridge log --config {0}",
        config.display()
    );
    println!("Ctrl-C to stop.\n");

    let (stop, reload) = crate::daemon::signals()?;
    if let Some(secs) = args.seconds {
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            s.cancel();
        });
    }
    let stats = Arc::new(Counters::default());
    let daemon = tokio::spawn(crate::daemon::run(settings, stop.clone(), reload, stats.clone()));
    let mut tick = tokio::time::interval(Duration::from_secs(args.interval.max(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => println!("{}", summary(&world, &stats, &db)),
            _ = stop.cancelled() => break,
        }
    }
    daemon.await??;
    println!("{}", summary(&world, &stats, &db));
    world.shutdown().await;
    if args.data_dir.is_some() {
        println!("state kept in {}", dir.display());
    }
    Ok(())
}
