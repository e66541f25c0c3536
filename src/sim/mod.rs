//! The simulated outside world for `demo`, the tests and the benchmarks: the city's procedure
//! system, the centralised systems of five ministries and the National Public Service Portal, each
//! an HTTP server on loopback, plus the truth the portal should end up showing.
//!
//! It is deliberately independent of the rest of the crate (only `crate::clock` is shared): it is
//! the world the bridge is tested against, so it must not share the bridge's understanding of it.
//!
//! Layout:
//! - `catalogue`: procedures, agencies and applicants read from `fixtures/`.
//! - `model`: the simulator's dialect-free dossier, and the list of systems.
//! - `city`, `moj`, `moc`, `mae`, `mof`, `mps`: each upstream system's dialect (parse and render)
//!   and HTTP API; no two alike in pagination, auth, dates, status vocabulary or nesting.
//! - `world`: the records, the cases they form, the change rules, the list order and the expected
//!   portal truth; bulk records for the ingest benchmark.
//! - `faults`: misbehaviour on demand (errors, throttling, hangs, broken bodies, unstable pages,
//!   clock skew, changes that leave the updated time alone), and the portal's own (throttling,
//!   short sessions, slow answers, dossiers it refuses).
//! - `portal`: the portal contract of `spec/dvcqg-portal.md` and the `/_sim/*` introspection.
//! - `self_sync`: systems that write their own dossiers to the portal (a source the bridge only
//!   verifies), with some left out or written stale on demand.
//! - `late`: which dossiers the portal shows late although their sources say on time, summed
//!   over simulated time (scripted dossiers coming due, in `world`, make such moments).

mod catalogue;
pub mod check;
mod city;
mod faults;
mod late;
mod mae;
mod moc;
mod model;
mod mof;
mod moj;
mod mps;
mod portal;
mod self_sync;
mod world;

#[cfg(test)]
mod fixtures_gen;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use crate::clock::{Clock, SimClock};

pub use faults::{Faults, PortalFaults};
pub use late::PortalLateness;
pub use portal::{AUTH_PATH, INTEGRATION_PATH, Receipt};
pub use self_sync::{SelfSync, SelfSynced};
pub use world::{DueWave, ScriptedDossier};

use model::Source;

/// Everything that shapes a simulated world.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seeds the change rules and every fault draw, so that runs with the same ticks and requests
    /// are the same.
    pub seed: u64,
    pub clock: SimClock,
    /// The `fixtures/` folder: catalogue files and the recorded dossiers of every system.
    pub fixtures_dir: PathBuf,
    /// Real time between upstream change rounds. Zero turns the automatic changes off
    /// ([`World::change_now`] still makes a round on demand).
    pub tick: Duration,
    /// Status advances and new dossiers per round.
    pub changes_per_tick: u32,
    /// Inject a malformed new record every N new dossiers (`None`: never; the fixtures hold some).
    pub malformed_every: Option<u32>,
    /// The date the Ministry of Justice took over its procedures (wildcard) for this city.
    pub cutover: Date,
    /// The other ministries' cutover dates (wildcard), by system name: `moc`, `mae`, `mof`, `mps`.
    /// A ministry missing here has taken nothing over.
    pub ministry_cutovers: BTreeMap<String, Date>,
    pub city_api_key: String,
    /// The Ministry of Justice's OAuth2 client.
    pub ministry_client_id: String,
    pub ministry_client_secret: String,
    /// The Ministry of Construction's static bearer token.
    pub moc_token: String,
    /// The Ministry of Agriculture and Environment's Keycloak client and user (password grant).
    pub mae_client_id: String,
    pub mae_username: String,
    pub mae_password: String,
    /// The Ministry of Finance's login.
    pub mof_username: String,
    pub mof_password: String,
    /// How long a Ministry of Finance session stays valid, in real time.
    pub mof_session_ttl: Duration,
    /// The Ministry of Public Security's API key.
    pub mps_api_key: String,
    pub portal_username: String,
    pub portal_password: String,
    pub portal_dstcode: String,
    pub portal_madonvi: String,
    /// How long a portal session stays valid, in real time.
    pub portal_session_ttl: Duration,
    /// Misbehaviour of each upstream system from the start, by system name (default: none).
    pub faults: BTreeMap<String, Faults>,
    /// Upstream systems that write their own dossiers to the portal, by system name, and how they
    /// fail at it (default: none; the bridge writes everything). See `self_sync`.
    pub self_sync: BTreeMap<String, SelfSync>,
}

impl SimOptions {
    /// The defaults of `dvc-bridge demo`.
    pub fn demo(fixtures_dir: PathBuf, clock: SimClock) -> Self {
        let date = jiff::civil::date;
        Self {
            seed: 2026,
            clock,
            fixtures_dir,
            tick: Duration::from_millis(500),
            changes_per_tick: 3,
            malformed_every: Some(40),
            cutover: date(2026, 1, 15),
            ministry_cutovers: [
                ("moc", date(2026, 2, 1)),
                ("mae", date(2026, 1, 20)),
                ("mof", date(2026, 1, 1)),
                ("mps", date(2026, 1, 1)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            city_api_key: "city-demo-key".to_owned(),
            ministry_client_id: "bridge".to_owned(),
            ministry_client_secret: "bridge-secret".to_owned(),
            moc_token: "moc-demo-token".to_owned(),
            mae_client_id: "dvc-bridge".to_owned(),
            mae_username: "haiphong.bridge".to_owned(),
            mae_password: "mae-pass".to_owned(),
            mof_username: "haiphong".to_owned(),
            mof_password: "mof-pass".to_owned(),
            mof_session_ttl: Duration::from_secs(600),
            mps_api_key: "mps-demo-key".to_owned(),
            portal_username: "hue".to_owned(),
            portal_password: "hue-pass".to_owned(),
            portal_dstcode: "G22.HP".to_owned(),
            portal_madonvi: "000.00.00.H26".to_owned(),
            portal_session_ttl: Duration::from_secs(600),
            faults: BTreeMap::new(),
            self_sync: BTreeMap::new(),
        }
    }

    /// The self-syncing systems, checked: unknown names are configuration mistakes.
    fn self_syncing(&self) -> anyhow::Result<BTreeMap<Source, SelfSync>> {
        let mut out = BTreeMap::new();
        for (name, knob) in &self.self_sync {
            let s = source(name).map_err(|e| anyhow::anyhow!("SimOptions.self_sync: {e}"))?;
            out.insert(s, knob.clone());
        }
        Ok(out)
    }

    /// Every ministry's cutover, checked: unknown names are configuration mistakes.
    fn cutovers(&self) -> anyhow::Result<BTreeMap<Source, Date>> {
        let mut out = BTreeMap::from([(Source::Moj, self.cutover)]);
        for (name, date) in &self.ministry_cutovers {
            let source = Source::from_name(name).filter(|s| s.is_ministry() && *s != Source::Moj).with_context(|| {
                format!(
                    "ministry_cutovers: {name:?} is not one of moc, mae, mof, mps (the Ministry of Justice's date is \
                     `cutover`)"
                )
            })?;
            out.insert(source, *date);
        }
        Ok(out)
    }

    /// What a client of `source` needs to authenticate, under the bridge's credential names.
    fn credentials(&self, source: Source) -> BTreeMap<String, String> {
        let pairs: Vec<(&str, &str)> = match source {
            Source::City => vec![("api_key", &self.city_api_key)],
            Source::Moj => {
                vec![("client_id", &self.ministry_client_id), ("client_secret", &self.ministry_client_secret)]
            }
            Source::Moc => vec![("token", &self.moc_token)],
            Source::Mae => vec![
                ("client_id", &self.mae_client_id),
                ("username", &self.mae_username),
                ("password", &self.mae_password),
            ],
            Source::Mof => vec![("username", &self.mof_username), ("password", &self.mof_password)],
            Source::Mps => vec![("api_key", &self.mps_api_key)],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }
}

/// The earliest sensible clock start for the committed fixtures: Monday 2026-03-09 07:30 local, just
/// after the last recorded change (the fixtures were recorded up to Friday 2026-03-06).
pub fn fixtures_start() -> Timestamp {
    Timestamp::from_second(1_773_016_200).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One upstream system, as a client configures it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `"city"`, `"moj"`, `"moc"`, `"mae"`, `"mof"`, `"mps"`: the source name the truth uses.
    pub name: String,
    /// The stem of its descriptor in `adapters/`.
    pub adapter: String,
    /// `"city"` or `"ministry"`.
    pub kind: String,
    pub url: String,
    /// Only what the system's auth style needs, under the keys `api_key`, `token`, `client_id`,
    /// `client_secret`, `username`, `password`.
    pub credentials: BTreeMap<String, String>,
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
    /// How the case came to be in more than one system (`None`: it is in one): what tells the
    /// bridge its members are one case.
    #[serde(default)]
    pub duplication: Option<Duplication>,
    /// Every member of the case, the authoritative one marked.
    #[serde(default)]
    pub members: Vec<ExpectedMember>,
    /// Whether the portal's rule judges the case late on the authoritative member's own times, at
    /// the moment this truth was read: what the portal should show, so that anything else is the
    /// bridge's doing.
    #[serde(default)]
    pub late: bool,
}

/// The ways a case comes to be in two systems during dual running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duplication {
    /// Copied into the ministry's system at its cutover: the same code in both.
    Migrated,
    /// Received at a city desk and transferred: the ministry's copy names the city's code.
    Transferred,
    /// Received at a city desk and typed again into the ministry's system by hand: no shared code
    /// and no reference, only the procedure and the applicant (see [`World::reenter`]).
    Reentered,
}

/// One member of a case, as its system holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedMember {
    /// `"city"`, `"moj"`, …
    pub system: String,
    pub native_id: String,
    pub code: String,
    pub status: u8,
    /// Its own due time: a stale member past it would show late if the portal showed its state.
    pub due_at: Timestamp,
    /// The member whose state the portal must show (the cutover rule).
    pub authoritative: bool,
}

/// One record a silent change moved one step along its life, its updated time left as it was
/// (see [`World::silent_change`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilentChange {
    /// The system holding the record: `"city"`, `"moj"`, …
    pub system: String,
    pub native_id: String,
    /// The record's own dossier code.
    pub code: String,
    /// The code the portal shows its case under (the earliest member's, maybe another system's).
    pub portal_code: String,
    /// The status before and after.
    pub from: u8,
    pub to: u8,
}

/// One change a change round made (see [`World::change_journal`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The code the portal shows the case under (its earliest member's).
    pub code: String,
    /// The status the portal should show after the change (the authoritative member's).
    pub status: u8,
    /// When the change was made, in world time; the system stamps it to the whole second.
    pub at: Timestamp,
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
    /// Of `creates` and `updates`, the writes the upstream system holding the dossier made itself
    /// (`SimOptions::self_sync`): the bridge made the others.
    #[serde(default)]
    pub source_writes: u32,
    /// The portal's lateness verdict at the time of the snapshot.
    pub late: bool,
    /// False for a closed duplicate (status 8 with `GhiChu` naming another code): "no dossier
    /// appears twice" means no case has two live codes.
    pub live: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub city_records: usize,
    /// The Ministry of Justice's records (every system's count is in `records`).
    pub ministry_records: usize,
    /// Records per system, malformed and bulk ones included.
    #[serde(default)]
    pub records: BTreeMap<String, usize>,
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
    /// Upstream faults that took effect, by kind (`error_5xx`, `throttle_429`, `hang`, `truncated`,
    /// `html_200`, `duplicate_page`, `modify_during_walk`, and `silent_change`: records changed
    /// silently, drawn or asked for).
    #[serde(default)]
    pub faults_fired: BTreeMap<String, u64>,
    pub paused: bool,
    pub portal_down: bool,
    /// Successful portal logins (each issues a session).
    #[serde(default)]
    pub portal_logins: u64,
    /// Portal calls refused because their session had expired or was unknown ("401").
    #[serde(default)]
    pub portal_session_refusals: u64,
    /// Portal calls answered 429 (`PortalFaults::throttle_429`).
    #[serde(default)]
    pub portal_throttled: u64,
    /// Of them, calls that came before the `Retry-After` of an earlier 429 had passed: a client
    /// hammering a portal that asked it to wait.
    #[serde(default)]
    pub portal_early_calls: u64,
    /// Items of early calls (dossier objects or progress steps, exactly as sent before) that a
    /// throttled call carried while its `Retry-After` still held: a client that did not even hold
    /// back what was refused.
    #[serde(default)]
    pub portal_early_items: u64,
    /// `DongBoHoSoMC` items answered "đã tồn tại" (a create of a dossier the portal holds).
    #[serde(default)]
    pub portal_exists_answers: u64,
    /// Items refused because `PortalFaults::reject` names their code.
    #[serde(default)]
    pub portal_refused_by_fault: u64,
    /// `DongBoHoSoMC` calls that reached the service (admitted, with a valid session).
    #[serde(default)]
    pub portal_dong_bo_calls: u64,
}

/// Bearer tokens or sessions a system issued, with their real-time expiry.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Instant>,
    rng: Option<fastrand::Rng>,
}

impl Tokens {
    fn issue(&mut self, ttl: Duration) -> String {
        let now = Instant::now();
        self.issued.retain(|_, exp| *exp > now);
        let rng = self.rng.get_or_insert_with(fastrand::Rng::new);
        let token = format!("{:016x}{:016x}", rng.u64(..), rng.u64(..));
        self.issued.insert(token.clone(), now + ttl);
        token
    }

    fn valid(&self, token: &str) -> bool {
        self.issued.get(token).is_some_and(|exp| *exp > Instant::now())
    }
}

/// The state the servers and the ticker share.
#[derive(Debug)]
pub(crate) struct Shared {
    opts: SimOptions,
    upstream: Mutex<world::Upstream>,
    portal: Mutex<portal::PortalState>,
    /// Per system (indexed like `Source::ALL`): the tokens or sessions it issued.
    tokens: Mutex<Vec<Tokens>>,
    faults: Mutex<faults::FaultBook>,
    portal_down: AtomicBool,
    /// The false-late meter, sampled at each tick.
    late: Mutex<late::LateMeter>,
    /// Turns true when the world stops: what a hanging request waits for besides its timeout.
    stop: watch::Receiver<bool>,
    /// The upstream systems as clients see them, known once every server is bound.
    systems: OnceLock<Vec<SystemInfo>>,
    /// The systems that write their own dossiers to the portal (`SimOptions::self_sync`, checked).
    self_syncing: BTreeMap<Source, SelfSync>,
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

    fn lock_faults(&self) -> MutexGuard<'_, faults::FaultBook> {
        lock(&self.faults)
    }

    fn issue_token(&self, source: Source, ttl: Duration) -> String {
        lock(&self.tokens)[source.index()].issue(ttl)
    }

    fn token_valid(&self, source: Source, token: &str) -> bool {
        lock(&self.tokens)[source.index()].valid(token)
    }

    fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }

    /// Taking the upstream lock also waits for a round in progress, so once this returns no change
    /// happens until resumed.
    fn set_paused(&self, paused: bool) {
        self.lock_upstream().paused = paused;
    }

    /// One round of changes stamped with the current sim second, unless paused (or forced), and
    /// the silent changes the `silent_change` faults draw for it.
    fn round(&self, force: bool) -> u32 {
        let at = self.now();
        let now = model::whole_second(at);
        // Drawn, and counted, outside the upstream lock: nesting the two locks would give them an
        // order to keep, and the faults lock held through a round would stall every request's gate.
        let silent = self.lock_faults().silent_draws();
        let mut up = self.lock_upstream();
        if up.paused && !force {
            return 0;
        }
        let scripted = up.play_script(now);
        let made = scripted + up.round(at, self.opts.changes_per_tick, self.opts.malformed_every, None);
        let quiet: usize = silent.into_iter().map(|s| up.silent_change(s, 1, now, false).len()).sum();
        drop(up);
        self.lock_faults().count_n("silent_change", quiet as u64);
        self.self_sync();
        made + quiet as u32
    }

    /// The self-syncing systems write what changed to the portal (see `self_sync`). The two locks
    /// are taken one after the other, never nested.
    fn self_sync(&self) {
        if self.self_syncing.is_empty() {
            return;
        }
        let now = model::whole_second(self.now());
        let writes = self_sync::writes(&self.lock_upstream(), &self.self_syncing, self.opts.seed);
        let mut portal = self.lock_portal();
        for (code, obj) in writes {
            portal.write_from_source(&code, obj, now);
        }
    }

    /// Changes up to `n` of `source`'s records without moving their updated time, the ones updated
    /// longest ago first; even while paused, because it was asked for.
    fn silent_change(&self, source: Source, n: usize) -> Vec<SilentChange> {
        let now = model::whole_second(self.now());
        let changed = self.lock_upstream().silent_change(source, n, now, true);
        self.lock_faults().count_n("silent_change", changed.len() as u64);
        self.self_sync();
        changed
    }

    /// A forced round confined to one system's records (or all): the `modify_during_walk` fault.
    /// It happens even while paused, because it was asked for.
    fn change_round(&self, only: Option<Source>) -> u32 {
        let made = self.lock_upstream().round(self.now(), self.opts.changes_per_tick.max(1), None, only);
        self.self_sync();
        made
    }

    fn set_faults(&self, source: Source, faults: Faults) {
        let faults = faults.clamped();
        let skew = jiff::SignedDuration::from_secs(faults.clock_skew_secs);
        self.lock_faults().set(source, faults);
        self.lock_upstream().set_skew(source, skew);
    }

    fn set_portal_faults(&self, faults: PortalFaults) {
        self.lock_portal().faults = faults.clamped();
    }

    /// The live copies the portal shows late at `now`, and of them those falsely late. The portal
    /// and the world are locked one after the other, never together.
    fn judge_lateness(&self, now: Timestamp) -> (usize, Vec<String>) {
        let late: BTreeSet<String> = self
            .lock_portal()
            .copies
            .iter()
            .filter(|(_, c)| !portal::is_closed_duplicate(&c.dossier) && portal::judge(c, now))
            .map(|(code, _)| code.clone())
            .collect();
        let verdicts = self.lock_upstream().source_verdicts(&late, now);
        let falsely = late.iter().filter(|code| verdicts.get(*code) == Some(&false)).cloned().collect();
        (late.len(), falsely)
    }

    /// One sample of the false-late meter (at each tick).
    fn sample_lateness(&self) {
        let now = self.now();
        let (_, falsely) = self.judge_lateness(now);
        lock(&self.late).sample(now, falsely.len());
    }

    fn portal_lateness(&self) -> PortalLateness {
        let now = self.now();
        let (shown, falsely) = self.judge_lateness(now);
        lock(&self.late).reading(now, shown, falsely)
    }

    fn expected_portal(&self) -> BTreeMap<String, ExpectedDossier> {
        let now = self.now();
        self.lock_upstream().expected(now)
    }

    fn expected_quarantine(&self) -> Vec<(String, String)> {
        self.lock_upstream().quarantine()
    }

    fn source_ids(&self) -> Vec<(String, String, bool)> {
        self.lock_upstream().all_ids()
    }

    fn portal_snapshot(&self) -> BTreeMap<String, PortalCopy> {
        let now = self.now();
        self.lock_portal().snapshot(now)
    }

    fn stats(&self) -> SimStats {
        let mut stats = {
            let up = self.lock_upstream();
            SimStats {
                city_records: up.count(Source::City),
                ministry_records: up.count(Source::Moj),
                records: Source::ALL.iter().map(|s| (s.name().to_owned(), up.count(*s))).collect(),
                changes_made: up.changes_made,
                new_dossiers: up.new_dossiers,
                malformed_injected: up.malformed_injected,
                paused: up.paused,
                ..SimStats::default()
            }
        };
        stats.faults_fired = self.lock_faults().fired();
        let portal = self.lock_portal();
        stats.portal_dossiers = portal.copies.len();
        stats.portal_calls = portal.calls;
        stats.rejected_calls = portal.rejected_calls;
        stats.outage_answers = portal.outage_answers;
        stats.portal_logins = portal.counts.logins;
        stats.portal_session_refusals = portal.counts.session_refusals;
        stats.portal_throttled = portal.counts.throttled;
        stats.portal_early_calls = portal.counts.early_calls;
        stats.portal_early_items = portal.counts.early_items;
        stats.portal_exists_answers = portal.counts.exists_answers;
        stats.portal_refused_by_fault = portal.counts.refused_by_fault;
        stats.portal_dong_bo_calls = portal.counts.dong_bo_calls;
        stats.portal_down = self.portal_down.load(Ordering::SeqCst);
        stats
    }

    fn systems_at(&self, urls: &BTreeMap<Source, String>) -> Vec<SystemInfo> {
        Source::ALL
            .iter()
            .map(|&s| SystemInfo {
                name: s.name().to_owned(),
                adapter: s.adapter().to_owned(),
                kind: if s.is_ministry() { "ministry" } else { "city" }.to_owned(),
                url: urls.get(&s).cloned().unwrap_or_default(),
                credentials: self.opts.credentials(s),
            })
            .collect()
    }
}

fn source(name: &str) -> anyhow::Result<Source> {
    Source::from_name(name)
        .with_context(|| format!("unknown system {name:?}: expected one of city, moj, moc, mae, mof, mps"))
}

/// A running simulated world. Dropping it stops its servers and ticker too, but without waiting.
#[derive(Debug)]
pub struct World {
    pub city_url: String,
    /// The Ministry of Justice's system (every system's address is in [`World::systems`]).
    pub ministry_url: String,
    pub portal_url: String,
    systems: Vec<SystemInfo>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl World {
    /// Starts the world on ephemeral loopback ports.
    pub async fn start(opts: SimOptions) -> anyhow::Result<World> {
        Self::start_on_ports(opts, &BTreeMap::new()).await
    }

    /// Starts the world with the city, the Ministry of Justice and the portal on the given loopback
    /// ports (0 = any free port) and the other ministries on any free ports.
    pub async fn start_on(opts: SimOptions, ports: [u16; 3]) -> anyhow::Result<World> {
        let ports = BTreeMap::from([
            ("city".to_owned(), ports[0]),
            ("moj".to_owned(), ports[1]),
            ("portal".to_owned(), ports[2]),
        ]);
        Self::start_on_ports(opts, &ports).await
    }

    /// Starts the world on the given loopback ports, by server name (`city`, `moj`, `moc`, `mae`,
    /// `mof`, `mps`, `portal`; missing or 0 = any free port), for a `simulate` process whose
    /// addresses the daemon's configuration names.
    pub async fn start_on_ports(opts: SimOptions, ports: &BTreeMap<String, u16>) -> anyhow::Result<World> {
        for name in ports.keys() {
            anyhow::ensure!(name == "portal" || Source::from_name(name).is_some(), "ports: unknown server {name:?}");
        }
        let cutovers = opts.cutovers()?;
        let dir = &opts.fixtures_dir;
        let catalogue = catalogue::Catalogue::load(dir)?;
        let mut raws = BTreeMap::new();
        for s in Source::ALL {
            let raw: Vec<serde_json::Value> = catalogue::read_json(&dir.join(format!("{}.json", s.name())))?;
            raws.insert(s, raw);
        }
        let mut upstream = world::Upstream::new(catalogue, cutovers, opts.seed);
        upstream.load(&raws)?;
        if let Some(latest) = upstream.latest_update() {
            let now = opts.clock.now();
            anyhow::ensure!(
                now >= latest,
                "the simulated clock reads {now}, before the fixtures' last recorded change ({latest}): \
                 start it at {latest} or later, or changes would go back in time"
            );
        }
        let mut initial_faults = Vec::new();
        for (name, f) in &opts.faults {
            let s = source(name).map_err(|e| anyhow::anyhow!("SimOptions.faults: {e}"))?;
            initial_faults.push((s, f.clone()));
        }
        let self_syncing = opts.self_syncing()?;
        let (stop, stopped) = watch::channel(false);
        let seed = opts.seed;
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults::FaultBook::new(opts.seed)),
            opts,
            upstream: Mutex::new(upstream),
            portal: Mutex::new(portal::PortalState::new(seed)),
            tokens: Mutex::new(Source::ALL.iter().map(|_| Tokens::default()).collect()),
            portal_down: AtomicBool::new(false),
            late: Mutex::new(late::LateMeter::default()),
            stop: stopped,
            systems: OnceLock::new(),
            self_syncing,
        });
        for (s, f) in initial_faults {
            shared.set_faults(s, f);
        }
        // The self-syncing systems' dossiers are on the portal before anything else happens.
        shared.self_sync();
        let mut tasks = Vec::new();
        let mut urls = BTreeMap::new();
        let mut portal_url = String::new();
        let routers = Source::ALL.into_iter().map(|s| (Some(s), upstream_router(s, shared.clone())));
        for (system, router) in routers.chain([(None, portal::router(shared.clone()))]) {
            let name = system.map_or("portal", Source::name);
            let port = ports.get(name).copied().unwrap_or(0);
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .with_context(|| format!("binding the simulated {name} on 127.0.0.1:{port}"))?;
            let url = format!("http://{}", listener.local_addr()?);
            match system {
                Some(s) => {
                    urls.insert(s, url);
                }
                None => portal_url = url,
            }
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
        let systems = shared.systems_at(&urls);
        // Only ever set here, once: the introspection serves it to tests in other processes.
        let _ = shared.systems.set(systems.clone());
        let url_of = |s: Source| urls.get(&s).cloned().unwrap_or_default();
        let (city_url, ministry_url) = (url_of(Source::City), url_of(Source::Moj));
        tracing::info!(%city_url, %ministry_url, %portal_url, "simulated world started");
        Ok(World { city_url, ministry_url, portal_url, systems, shared, stop, tasks })
    }

    /// Every upstream system, the city first: address, adapter and credentials.
    pub fn systems(&self) -> Vec<SystemInfo> {
        self.systems.clone()
    }

    /// `(ministry source name, "*", date)`: each ministry's cutover for every procedure it owns.
    pub fn cutovers(&self) -> Vec<(String, String, Date)> {
        self.shared.lock_upstream().cutovers.iter().map(|(s, d)| (s.name().to_owned(), "*".to_owned(), *d)).collect()
    }

    /// Changes how an upstream system misbehaves from now on. An unknown system name is logged and
    /// ignored.
    pub fn set_faults(&self, system: &str, faults: Faults) {
        match source(system) {
            Ok(s) => self.shared.set_faults(s, faults),
            Err(e) => tracing::warn!(error = %e, "set_faults ignored"),
        }
    }

    /// Adds `n` synthetic well-formed records to one system, updated one second apart up to now
    /// (the ingest benchmark's world). They never change, and each is a case of its own in
    /// [`World::expected_portal`].
    pub fn bulk_load(&self, system: &str, n: usize) -> anyhow::Result<()> {
        let s = source(system)?;
        let now = self.shared.now();
        self.shared.lock_upstream().bulk_load(s, n, now)
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

    /// Changes up to `n` of a system's open (or finished, not yet returned) records one step along
    /// their life, as a change round would, but leaves their updated time as it was: a change
    /// incremental polls by updated time do not look for, which a full sweep reads (and a walk that
    /// re-reads the record anyway, such as the first page of a system listed newest first). The
    /// records updated longest ago are taken first, so no poll's lookback reaches them. Happens even
    /// while paused (it was asked for); only authoritative records are changed, so
    /// [`World::expected_portal`] moves with each. Returns what changed (fewer than `n` when the
    /// system has fewer such records).
    pub fn silent_change(&self, system: &str, n: usize) -> anyhow::Result<Vec<SilentChange>> {
        Ok(self.shared.silent_change(source(system)?, n))
    }

    /// Adds `n` re-entered pairs of `procedure` (a centralised one), received days ago: the city
    /// desk's copy, left as the desk left it and past its due time, and the ministry's copy, typed
    /// in again by hand under its own code without the city's, authoritative and finished on time.
    /// Only the procedure and the applicant tell them apart from other dossiers, so from now on no
    /// applicant files `procedure` twice in this world, and the bridge must link it by identity.
    /// Call it before the bridge's first poll: the records' updated times are in the past. Returns
    /// the cases' portal codes (the desk copies' codes); refuses a procedure no ministry has taken
    /// over, or whose recorded dossiers already show one applicant in two cases.
    pub fn reenter(&self, procedure: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let now = model::whole_second(self.shared.now());
        self.shared.lock_upstream().reenter(procedure, n, now)
    }

    /// What each self-syncing system (`SimOptions::self_sync`) does with each of its dossiers now,
    /// by the case's portal code.
    pub fn self_synced(&self) -> BTreeMap<String, SelfSynced> {
        self_sync::fates(&self.shared.lock_upstream(), &self.shared.self_syncing, self.shared.opts.seed)
    }

    /// Changes the portal's copy of a dossier behind everyone's back (an operator's hand edit, a
    /// portal-side fault); `None` when the portal does not hold the code.
    pub fn tamper_portal<R>(
        &self,
        code: &str,
        f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> R,
    ) -> Option<R> {
        self.shared.lock_portal().copies.get_mut(code).map(|c| f(&mut c.dossier))
    }

    /// Removes a dossier from the portal behind everyone's back (a portal-side loss); whether it
    /// was there.
    pub fn remove_from_portal(&self, code: &str) -> bool {
        self.shared.lock_portal().copies.remove(code).is_some()
    }

    /// While down, the portal answers HTTP 503 with `Retry-After: 1` to every call.
    pub fn set_portal_outage(&self, down: bool) {
        self.shared.portal_down.store(down, Ordering::SeqCst);
    }

    /// Changes how the portal misbehaves from now on (`PortalFaults::default()` stops it).
    pub fn set_portal_faults(&self, faults: PortalFaults) {
        self.shared.set_portal_faults(faults);
    }

    /// Every dossier object the portal accepted, in the order it applied them (a batch's items in
    /// the order sent).
    pub fn portal_receipts(&self) -> Vec<Receipt> {
        self.shared.lock_portal().receipts.clone()
    }

    /// The changes the change rounds made since the last call (the ticker's and
    /// [`World::change_now`]'s; not scripted or silent ones), oldest first: for each, the case's
    /// portal code, the status the portal should then show, and when it was made. What nobody
    /// takes is kept up to the latest 100,000.
    pub fn change_journal(&self) -> Vec<Change> {
        self.shared.lock_upstream().take_journal()
    }

    /// Which dossiers the portal shows late now, which of them falsely (the sources' own times
    /// say the case is not late: ended on time, or not yet due), and the false-late
    /// dossier-minutes and peak count over the ticks so far (see `late`). Also at `/_sim/late`.
    pub fn portal_lateness(&self) -> PortalLateness {
        self.shared.portal_lateness()
    }

    /// Starts the false-late totals again from now.
    pub fn reset_lateness(&self) {
        let now = self.shared.now();
        lock(&self.shared.late).reset(now);
    }

    /// Adds a wave of dossiers coming due on a schedule (see [`DueWave`]): received earlier today,
    /// being processed, each finishing at its scripted time (before its due time, or after it for
    /// `late_share` of them) at the first change round after that time, and left alone by the
    /// random changes until then. A paused world does not play the script. Returns them in due
    /// order.
    pub fn due_wave(&self, wave: &DueWave) -> anyhow::Result<Vec<ScriptedDossier>> {
        let now = model::whole_second(self.shared.now());
        self.shared.lock_upstream().due_wave(wave, now)
    }

    pub fn expected_portal(&self) -> BTreeMap<String, ExpectedDossier> {
        self.shared.expected_portal()
    }

    /// `(source, native id)` of every malformed record, e.g. `"city"` with iGate's `id`, `"moj"`
    /// with the ministry's `hoSoId`.
    pub fn expected_quarantine(&self) -> Vec<(String, String)> {
        self.shared.expected_quarantine()
    }

    pub fn portal_snapshot(&self) -> BTreeMap<String, PortalCopy> {
        self.shared.portal_snapshot()
    }

    /// `(system, native id, malformed)` of every record every system holds now.
    pub fn source_ids(&self) -> Vec<(String, String, bool)> {
        self.shared.source_ids()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Stops the servers (letting requests in flight finish, hanging ones included) and the ticker.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn upstream_router(source: Source, shared: Arc<Shared>) -> axum::Router {
    match source {
        Source::City => city::router(shared),
        Source::Moj => moj::router(shared),
        Source::Moc => moc::router(shared),
        Source::Mae => mae::router(shared),
        Source::Mof => mof::router(shared),
        Source::Mps => mps::router(shared),
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
                shared.sample_lateness();
            }
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Runs the world as a process of its own (the `simulate` verb) until Ctrl-C.
pub async fn run_standalone(opts: SimOptions, ports: [u16; 3]) -> anyhow::Result<()> {
    let world = World::start_on(opts, ports).await?;
    for s in world.systems() {
        println!("{:<8} {}  (adapters/{}.toml)", s.name, s.url, s.adapter);
    }
    println!("portal   {}  (introspection under /_sim/)", world.portal_url);
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    world.shutdown().await;
    Ok(())
}
