//! The simulated outside world for `demo` and the tests: the city's procedure system, the Ministry of
//! Justice's centralised system and the National Public Service Portal, each an HTTP server on
//! loopback, plus the truth the portal should end up showing.
//!
//! It is deliberately independent of the rest of the crate (only `crate::clock` is shared): it is
//! the world the bridge is tested against, so it must not share the bridge's understanding of it.
//!
//! Layout:
//! - `catalogue`: procedures, agencies and applicants read from `fixtures/`.
//! - `model`: the simulator's dialect-free dossier.
//! - `city`, `moj`: each upstream system's dialect (parse and render) and HTTP API.
//! - `world`: the records, the cases they form, the change rules and the expected portal truth.
//! - `portal`: the portal contract of `spec/dvcqg-portal.md` and the `/_sim/*` introspection.

mod catalogue;
mod city;
mod model;
mod moj;
mod portal;
mod world;

#[cfg(test)]
mod fixtures_gen;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use crate::clock::{Clock, SimClock};

pub use portal::{AUTH_PATH, INTEGRATION_PATH};

/// Everything that shapes a simulated world.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seeds the change rules, so that runs with the same ticks are the same.
    pub seed: u64,
    pub clock: SimClock,
    /// The `fixtures/` folder: catalogue files and the recorded dossiers of both systems.
    pub fixtures_dir: PathBuf,
    /// Real time between upstream change rounds. Zero turns the automatic changes off
    /// ([`World::change_now`] still makes a round on demand).
    pub tick: Duration,
    /// Status advances and new dossiers per round.
    pub changes_per_tick: u32,
    /// Inject a malformed new record every N new dossiers (`None`: never; the fixtures hold some).
    pub malformed_every: Option<u32>,
    /// The date the ministry took over its procedures (wildcard) for this city.
    pub cutover: Date,
    pub city_api_key: String,
    pub ministry_client_id: String,
    pub ministry_client_secret: String,
    pub portal_username: String,
    pub portal_password: String,
    pub portal_dstcode: String,
    pub portal_madonvi: String,
    /// How long a portal session stays valid, in real time.
    pub portal_session_ttl: Duration,
}

impl SimOptions {
    /// The defaults of `dvc-bridge demo`.
    pub fn demo(fixtures_dir: PathBuf, clock: SimClock) -> Self {
        Self {
            seed: 2026,
            clock,
            fixtures_dir,
            tick: Duration::from_millis(500),
            changes_per_tick: 3,
            malformed_every: Some(40),
            cutover: jiff::civil::date(2026, 1, 15),
            city_api_key: "city-demo-key".to_owned(),
            ministry_client_id: "bridge".to_owned(),
            ministry_client_secret: "bridge-secret".to_owned(),
            portal_username: "hue".to_owned(),
            portal_password: "hue-pass".to_owned(),
            portal_dstcode: "G22.HP".to_owned(),
            portal_madonvi: "000.00.00.H26".to_owned(),
            portal_session_ttl: Duration::from_secs(600),
        }
    }
}

/// The earliest sensible clock start for the committed fixtures: Monday 2026-03-09 07:30 local, just
/// after the last recorded change (the fixtures were recorded up to Friday 2026-03-06).
pub fn fixtures_start() -> Timestamp {
    Timestamp::from_second(1_773_016_200).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What the portal should show for one case once the bridge has caught up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedDossier {
    /// The code of the member received first (ties: the city's).
    pub portal_code: String,
    /// Every member's code, sorted, without repeats (a migrated copy keeps the city's code).
    pub member_codes: Vec<String>,
    pub procedure_code: String,
    pub status: u8,
    /// The earliest receipt among the members.
    pub received_at: Timestamp,
    pub due_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub returned_at: Option<Timestamp>,
}

/// What the portal holds under one `MaHoSo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortalCopy {
    /// The latest object as sent.
    pub dossier: serde_json::Value,
    pub creates: u32,
    pub updates: u32,
    pub progress: Vec<serde_json::Value>,
    /// Sim time the portal first received this copy in an end state (3, 7, 8, 9, 10).
    pub first_seen_ended_at: Option<Timestamp>,
    /// The portal's lateness verdict at the time of the snapshot.
    pub late: bool,
    /// False for a closed duplicate (status 8 with `GhiChu` naming another code): "no dossier
    /// appears twice" means no case has two live codes.
    pub live: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub city_records: usize,
    pub ministry_records: usize,
    pub changes_made: u64,
    pub new_dossiers: u64,
    pub malformed_injected: u64,
    pub portal_dossiers: usize,
    /// Every request to the portal's auth and integration paths, answered or not.
    pub portal_calls: u64,
    /// Calls answered with an error: a non-zero `error_code` (including a batch with any failed
    /// item), or an HTTP error such as 503 during an outage.
    pub rejected_calls: u64,
    pub outage_answers: u64,
    pub paused: bool,
    pub portal_down: bool,
}

/// The state the three servers and the ticker share.
#[derive(Debug)]
pub(crate) struct Shared {
    opts: SimOptions,
    upstream: Mutex<world::Upstream>,
    portal: Mutex<portal::PortalState>,
    tokens: Mutex<moj::Tokens>,
    portal_down: AtomicBool,
}

/// A poisoned lock only means a handler panicked mid-request; the simulator's state is still the
/// best description of the world it has, so it carries on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn lock_upstream(&self) -> MutexGuard<'_, world::Upstream> {
        lock(&self.upstream)
    }

    fn lock_portal(&self) -> MutexGuard<'_, portal::PortalState> {
        lock(&self.portal)
    }

    fn lock_tokens(&self) -> MutexGuard<'_, moj::Tokens> {
        lock(&self.tokens)
    }

    fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }

    /// Taking the upstream lock also waits for a round in progress, so once this returns no change
    /// happens until resumed.
    fn set_paused(&self, paused: bool) {
        self.lock_upstream().paused = paused;
    }

    /// One round of changes stamped with the current sim second, unless paused (or forced).
    fn round(&self, force: bool) -> u32 {
        let now = model::whole_second(self.now());
        let mut up = self.lock_upstream();
        if up.paused && !force {
            return 0;
        }
        up.round(now, self.opts.changes_per_tick, self.opts.malformed_every)
    }

    fn expected_portal(&self) -> BTreeMap<String, ExpectedDossier> {
        self.lock_upstream().expected()
    }

    fn expected_quarantine(&self) -> Vec<(String, String)> {
        self.lock_upstream().quarantine()
    }

    fn portal_snapshot(&self) -> BTreeMap<String, PortalCopy> {
        let now = self.now();
        self.lock_portal().snapshot(now)
    }

    fn stats(&self) -> SimStats {
        let mut stats = {
            let up = self.lock_upstream();
            SimStats {
                city_records: up.records(model::Source::City).len(),
                ministry_records: up.records(model::Source::Moj).len(),
                changes_made: up.changes_made,
                new_dossiers: up.new_dossiers,
                malformed_injected: up.malformed_injected,
                paused: up.paused,
                ..SimStats::default()
            }
        };
        let portal = self.lock_portal();
        stats.portal_dossiers = portal.copies.len();
        stats.portal_calls = portal.calls;
        stats.rejected_calls = portal.rejected_calls;
        stats.outage_answers = portal.outage_answers;
        stats.portal_down = self.portal_down.load(Ordering::SeqCst);
        stats
    }
}

/// A running simulated world. Dropping it stops its servers and ticker too, but without waiting.
#[derive(Debug)]
pub struct World {
    pub city_url: String,
    pub ministry_url: String,
    pub portal_url: String,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl World {
    /// Starts the world on ephemeral loopback ports.
    pub async fn start(opts: SimOptions) -> anyhow::Result<World> {
        Self::start_on(opts, [0, 0, 0]).await
    }

    /// Starts the world on the given loopback ports (city, ministry, portal; 0 = any free port), for
    /// a `simulate` process whose address the daemon's configuration names.
    pub async fn start_on(opts: SimOptions, ports: [u16; 3]) -> anyhow::Result<World> {
        let dir = &opts.fixtures_dir;
        let catalogue = catalogue::Catalogue::load(dir)?;
        let city_raw: Vec<serde_json::Value> = catalogue::read_json(&dir.join("city.json"))?;
        let moj_raw: Vec<serde_json::Value> = catalogue::read_json(&dir.join("moj.json"))?;
        let mut upstream = world::Upstream::new(catalogue, opts.cutover, opts.seed);
        upstream.load(&city_raw, &moj_raw)?;
        if let Some(latest) = upstream.latest_update() {
            let now = opts.clock.now();
            anyhow::ensure!(
                now >= latest,
                "the simulated clock reads {now}, before the fixtures' last recorded change ({latest}): \
                 start it at {latest} or later, or changes would go back in time"
            );
        }
        let shared = Arc::new(Shared {
            opts,
            upstream: Mutex::new(upstream),
            portal: Mutex::new(portal::PortalState::default()),
            tokens: Mutex::new(moj::Tokens::default()),
            portal_down: AtomicBool::new(false),
        });
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut urls = Vec::new();
        let routers = [
            ("city", city::router(shared.clone())),
            ("ministry", moj::router(shared.clone())),
            ("portal", portal::router(shared.clone())),
        ];
        for ((name, router), port) in routers.into_iter().zip(ports) {
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .with_context(|| format!("binding the simulated {name} on 127.0.0.1:{port}"))?;
            let addr = listener.local_addr()?;
            urls.push(format!("http://{addr}"));
            let mut stopped = stop.subscribe();
            tasks.push(tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    // Also ends when the World is dropped (the sender goes away).
                    let _ = stopped.wait_for(|s| *s).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(server = name, error = %e, "simulated server failed");
                }
            }));
        }
        if !shared.opts.tick.is_zero() {
            tasks.push(tokio::spawn(ticker(shared.clone(), stop.subscribe())));
        }
        let [city_url, ministry_url, portal_url]: [String; 3] =
            urls.try_into().map_err(|_| anyhow::anyhow!("expected three simulated servers"))?;
        tracing::info!(%city_url, %ministry_url, %portal_url, "simulated world started");
        Ok(World { city_url, ministry_url, portal_url, shared, stop, tasks })
    }

    pub fn pause_changes(&self) {
        self.shared.set_paused(true);
    }

    pub fn resume_changes(&self) {
        self.shared.set_paused(false);
    }

    /// Makes one round of changes now, even while paused; returns how many changes were made.
    pub fn change_now(&self) -> u32 {
        self.shared.round(true)
    }

    /// While down, the portal answers HTTP 503 with `Retry-After: 1` to every call.
    pub fn set_portal_outage(&self, down: bool) {
        self.shared.portal_down.store(down, Ordering::SeqCst);
    }

    pub fn expected_portal(&self) -> BTreeMap<String, ExpectedDossier> {
        self.shared.expected_portal()
    }

    /// `(source, native id)` of every malformed record: `"city"` with iGate's `id`, `"moj"` with the
    /// ministry's `hoSoId`.
    pub fn expected_quarantine(&self) -> Vec<(String, String)> {
        self.shared.expected_quarantine()
    }

    pub fn portal_snapshot(&self) -> BTreeMap<String, PortalCopy> {
        self.shared.portal_snapshot()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Stops the servers (letting requests in flight finish) and the ticker.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn ticker(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(shared.opts.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the world's first change comes one tick after start.
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                shared.round(false);
            }
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Runs the world as a process of its own (the `simulate` verb) until Ctrl-C.
pub async fn run_standalone(opts: SimOptions, ports: [u16; 3]) -> anyhow::Result<()> {
    let world = World::start_on(opts, ports).await?;
    println!("city     {}", world.city_url);
    println!("ministry {}", world.ministry_url);
    println!("portal   {}  (introspection under /_sim/)", world.portal_url);
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    world.shutdown().await;
    Ok(())
}
