//! Typed configuration: one TOML file, then `DVC_BRIDGE__SECTION__KEY` environment overrides, then
//! the adapter descriptors and the cutover table it names.
//!
//! Every problem is reported as file, key and reason, all at once (`check-config`), never as a bare
//! serde message. The file is first read on its own with `toml` (errors carry the line), then layered
//! with the environment through the `config` crate and deserialized through `serde_path_to_error`
//! (the `config` crate's own errors lose the key: config-rs issue 532).

pub mod secret;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clock::{SharedClock, SimClock, SystemClock};
use crate::core::cutover::CutoverTable;
use crate::core::descriptor::Descriptor;
pub use secret::SecretRef;

/// The environment prefix for overrides: `DVC_BRIDGE__PORTAL__BATCH_SIZE=50`.
pub const ENV_PREFIX: &str = "DVC_BRIDGE";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    #[serde(default)]
    pub paths: PathsConfig,
    #[serde(default)]
    pub clock: ClockConfig,
    pub portal: PortalConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub linking: LinkingConfig,
    #[serde(default)]
    pub deadlines: DeadlinesConfig,
    #[serde(default)]
    pub verify: VerifyConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    pub sources: Vec<SourceConfig>,
}

/// Prometheus metrics at `/metrics` and health at `/healthz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_enabled")]
    pub enabled: bool,
    /// Address to listen on; loopback by default (put a proxy in front to expose it). Port 0
    /// picks a free port, logged at start (`metrics.listening`).
    #[serde(default = "default_metrics_listen")]
    pub listen: std::net::SocketAddr,
}

fn default_metrics_enabled() -> bool {
    true
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: default_metrics_listen() }
    }
}

/// The verify sweep: dossiers read back from the portal (`TraCuuHoSo`) and compared with the
/// canonical state; what differs is logged, and repaired where the bridge writes the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// How often (seconds of the [clock]) the dossiers changed since they were last verified are
    /// read back; each round also takes its share of the full cycle.
    #[serde(default = "default_recent_interval_secs")]
    pub recent_interval_secs: u64,
    /// Every dossier is read back once per cycle (hours of the [clock]), spread evenly over it.
    #[serde(default = "default_full_cycle_hours")]
    pub full_cycle_hours: f64,
    /// A source in portal_mode "verify" syncs itself: its change is read back only once it is this
    /// old (seconds of the [clock]), so that the source had its chance.
    #[serde(default = "default_source_grace_secs")]
    pub source_grace_secs: u64,
    /// Look-ups per second at most (real seconds), taken from the portal's own rate limit: at most
    /// half of `portal.rate_limit_per_sec`, so delivery always keeps the larger share.
    #[serde(default = "default_verify_rate")]
    pub rate_per_sec: f64,
}

fn default_recent_interval_secs() -> u64 {
    300
}
fn default_full_cycle_hours() -> f64 {
    24.0
}
fn default_source_grace_secs() -> u64 {
    600
}
fn default_verify_rate() -> f64 {
    2.0
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            enabled: default_enabled(),
            recent_interval_secs: default_recent_interval_secs(),
            full_cycle_hours: default_full_cycle_hours(),
            source_grace_secs: default_source_grace_secs(),
            rate_per_sec: default_verify_rate(),
        }
    }
}

/// The bridge's own due-time reckoning and the watch over open dossiers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesConfig {
    /// An open dossier is at risk when its due time is at most this much working time away.
    #[serde(default = "default_at_risk_working_hours")]
    pub at_risk_working_hours: u32,
    /// When a source's due time agrees with the bridge's: "same_day" or "exact".
    #[serde(default)]
    pub due_tolerance: crate::core::deadline::DueTolerance,
    /// How often (seconds of the [clock]) open dossiers are looked over for a due time coming
    /// near or passing.
    #[serde(default = "default_watch_interval_secs")]
    pub watch_interval_secs: u64,
}

fn default_at_risk_working_hours() -> u32 {
    8
}

fn default_watch_interval_secs() -> u64 {
    60
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig {
            at_risk_working_hours: default_at_risk_working_hours(),
            due_tolerance: Default::default(),
            watch_interval_secs: default_watch_interval_secs(),
        }
    }
}

/// Linking rules beyond shared codes and references.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkingConfig {
    /// Procedures (MaTTHC, or "*") whose records are one case when they name the same applicant
    /// and were received within the window. Empty: no linking by identity.
    #[serde(default)]
    pub identity_procedures: Vec<String>,
    /// The key of the keyed hash applicants are compared by (a secret of the city's).
    pub identity_key: Option<SecretRef>,
    /// How far apart the two receipts may be, in hours.
    #[serde(default = "default_identity_window_hours")]
    pub identity_window_hours: u64,
}

fn default_identity_window_hours() -> u64 {
    72
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Folder holding the database (`dvc-bridge.db`) and the writer lease.
    pub data_dir: PathBuf,
    /// Sync-log entries older than this many days are pruned (the chain stays verifiable from
    /// the last one pruned); 0 keeps them all.
    #[serde(default)]
    pub sync_log_retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Folder of adapter descriptors, relative to the configuration file.
    #[serde(default = "default_adapters_dir")]
    pub adapters_dir: PathBuf,
    /// The cutover table, relative to the configuration file.
    #[serde(default = "default_cutover_file")]
    pub cutover_file: PathBuf,
    /// The working-time calendar (office hours, days off, swapped working days), relative to the
    /// configuration file.
    #[serde(default = "default_calendar_file")]
    pub calendar_file: PathBuf,
    /// Each procedure's time limit, relative to the configuration file.
    #[serde(default = "default_procedures_file")]
    pub procedures_file: PathBuf,
}

fn default_calendar_file() -> PathBuf {
    PathBuf::from("calendar.toml")
}

fn default_procedures_file() -> PathBuf {
    PathBuf::from("procedures.toml")
}

fn default_adapters_dir() -> PathBuf {
    PathBuf::from("../adapters")
}
fn default_cutover_file() -> PathBuf {
    PathBuf::from("cutover.toml")
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            adapters_dir: default_adapters_dir(),
            cutover_file: default_cutover_file(),
            calendar_file: default_calendar_file(),
            procedures_file: default_procedures_file(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    #[default]
    System,
    Simulated,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    #[serde(default)]
    pub mode: ClockMode,
    /// Simulated: the time the clock reads at `anchor`.
    pub start: Option<jiff::Timestamp>,
    /// Simulated: the real instant at which the clock reads `start`.
    pub anchor: Option<jiff::Timestamp>,
    /// Simulated: how many simulated seconds pass per real second.
    pub speed: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    pub base_url: String,
    pub auth_path: String,
    pub integration_path: String,
    #[serde(default)]
    pub share_path: Option<String>,
    /// The `dstcode` routing header.
    pub dstcode: String,
    /// The `madonvi` unit code sent with every call.
    pub madonvi: String,
    pub username: String,
    pub password: SecretRef,
    #[serde(default = "default_portal_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_portal_rate")]
    pub rate_limit_per_sec: u32,
}

fn default_portal_timeout() -> u64 {
    30
}
pub(crate) fn default_portal_rate() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Dossiers per `DongBoHoSoMC` call.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Progress steps per `CapNhatTienDoHoSoMC` call (the portal takes at most 10).
    #[serde(default = "default_progress_chunk")]
    pub progress_chunk: usize,
    /// How often the sender looks for work when the queue is empty, in milliseconds.
    #[serde(default = "default_idle_ms")]
    pub idle_poll_ms: u64,
    /// First retry delay after a transient failure, in seconds (doubles up to `max_backoff_secs`).
    #[serde(default = "default_backoff")]
    pub backoff_secs: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// The order dossiers are sent in: "edf" (most urgent first); "fifo" (oldest change first)
    /// exists as the benchmark's baseline.
    #[serde(default)]
    pub order: crate::store::outbox::Order,
}

fn default_batch() -> usize {
    20
}
fn default_progress_chunk() -> usize {
    10
}
fn default_idle_ms() -> u64 {
    500
}
fn default_backoff() -> u64 {
    2
}
fn default_max_backoff() -> u64 {
    300
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            progress_chunk: default_progress_chunk(),
            idle_poll_ms: default_idle_ms(),
            backoff_secs: default_backoff(),
            max_backoff_secs: default_max_backoff(),
            order: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// The journal's native fields when systemd connected stderr to it (`JOURNAL_STREAM`), text
    /// otherwise.
    #[default]
    Auto,
    Text,
    /// One JSON object per line.
    Json,
    /// Straight to journald, with structured fields.
    Journald,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `dvc_bridge=debug,info`); `RUST_LOG` overrides it.
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: default_level(), format: LogFormat::default() }
    }
}

/// Whether the bridge writes a source's dossiers to the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalMode {
    /// The bridge writes this source's dossiers.
    Push,
    /// The source synchronises itself; the bridge only reads back and repairs duplicates.
    Verify,
    /// Read and stored, never sent.
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name in logs, the store and the cutover table.
    pub name: String,
    /// The descriptor file in the adapters folder, without `.toml`.
    pub adapter: String,
    /// Overrides the descriptor's base URL.
    pub base_url: Option<String>,
    #[serde(default = "default_mode")]
    pub portal_mode: PortalMode,
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// How far behind the cursor each poll re-reads: covers clock skew and late commits upstream.
    #[serde(default = "default_lookback")]
    pub lookback_secs: u64,
    /// Overrides the descriptor's per-request timeout (seconds) for this deployment.
    pub timeout_secs: Option<u64>,
    /// Overrides the descriptor's retries of one request within a poll.
    pub max_retries: Option<u32>,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A full sweep re-reads everything this often (clock seconds; 0 = never): it catches what an
    /// incremental poll cannot see, such as a record changed without its updated time moving.
    #[serde(default = "default_full_sweep")]
    pub full_sweep_interval_secs: u64,
    /// Failed or slow polls in a row that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// First cooling-off period of an open breaker (doubles per failed probe, up to 30 minutes).
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_secs: u64,
    /// A poll whose pages take longer than this on average counts as unhealthy for the breaker.
    #[serde(default = "default_slow_page")]
    pub slow_page_secs: u64,
    #[serde(default)]
    pub credentials: Credentials,
}

fn default_full_sweep() -> u64 {
    86_400
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_cooldown() -> u64 {
    60
}
fn default_slow_page() -> u64 {
    15
}

fn default_mode() -> PortalMode {
    PortalMode::Push
}
fn default_poll_interval() -> u64 {
    60
}
fn default_lookback() -> u64 {
    300
}
fn default_enabled() -> bool {
    true
}

/// What a source's auth style needs (see the descriptor's `[auth] style`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub api_key: Option<SecretRef>,
    pub token: Option<SecretRef>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretRef>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
}

impl Credentials {
    /// Whether the named credential is given, and the secret to check if it is one.
    fn get(&self, name: &str) -> (bool, Option<&SecretRef>) {
        match name {
            "api_key" => (self.api_key.is_some(), self.api_key.as_ref()),
            "token" => (self.token.is_some(), self.token.as_ref()),
            "client_secret" => (self.client_secret.is_some(), self.client_secret.as_ref()),
            "password" => (self.password.is_some(), self.password.as_ref()),
            "client_id" => (self.client_id.as_deref().is_some_and(|s| !s.is_empty()), None),
            "username" => (self.username.as_deref().is_some_and(|s| !s.is_empty()), None),
            _ => (false, None),
        }
    }
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: key `{}`: {}", self.file.display(), self.key, self.reason)
        }
    }
}

/// Every problem found, so an operator fixes them in one go.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A source with its descriptor loaded.
#[derive(Debug, Clone)]
pub struct LoadedSource {
    pub config: SourceConfig,
    pub descriptor: Descriptor,
    pub descriptor_path: PathBuf,
    pub base_url: String,
}

/// The configuration with everything it names loaded and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub file: PathBuf,
    pub config: Config,
    pub sources: Vec<LoadedSource>,
    pub cutover: CutoverTable,
    /// The calendar, the procedures' time limits and the tolerance, for due times.
    pub deadlines: crate::core::deadline::DeadlineRules,
}

impl Settings {
    pub fn db_path(&self) -> PathBuf {
        self.config.store.data_dir.join("dvc-bridge.db")
    }

    /// The clock the rules read.
    pub fn clock(&self) -> SharedClock {
        let c = &self.config.clock;
        match (c.mode, c.start, c.anchor, c.speed) {
            (ClockMode::Simulated, Some(start), Some(anchor), speed) => {
                std::sync::Arc::new(SimClock { start, anchor, speed: speed.unwrap_or(1.0) })
            }
            _ => std::sync::Arc::new(SystemClock),
        }
    }
}

/// Read a data file the configuration names (`key` says which setting named it): its problems
/// go to `issues`, each with the file and the key inside it.
fn read_table<T: serde::de::DeserializeOwned>(
    config_file: &Path,
    key: &str,
    path: &Path,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            issues.push(ConfigIssue {
                file: config_file.to_path_buf(),
                key: key.into(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
            return None;
        }
    };
    let de = match toml::Deserializer::parse(&text) {
        Ok(de) => de,
        Err(e) => {
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                key: String::new(),
                reason: e.to_string().trim_end().to_string(),
            });
            return None;
        }
    };
    serde_path_to_error::deserialize(de).map_err(|e| issues.push(toml_issue(path, e))).ok()
}

fn toml_issue(file: &Path, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigIssue {
    ConfigIssue {
        file: file.to_path_buf(),
        key: e.path().to_string().trim_start_matches('.').to_string(),
        reason: e.inner().to_string().trim_end().replace('\n', "\n    "),
    }
}

/// Parse the file alone (for precise line numbers), then layered with the environment.
fn parse_config(file: &Path, text: &str) -> Result<Config, ConfigIssue> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigIssue {
        file: file.to_path_buf(),
        key: String::new(),
        reason: e.to_string().trim_end().replace('\n', "\n    "),
    })?;
    let _: Config = serde_path_to_error::deserialize(de).map_err(|e| toml_issue(file, e))?;

    let layered = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").try_parsing(true),
        )
        .build()
        .map_err(|e| ConfigIssue {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("with {ENV_PREFIX}__* environment overrides: {e}"),
        })?;
    let value: serde_json::Value = layered.try_deserialize().map_err(|e| ConfigIssue {
        file: file.to_path_buf(),
        key: String::new(),
        reason: format!("with {ENV_PREFIX}__* environment overrides: {e}"),
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| ConfigIssue {
        file: file.to_path_buf(),
        key: e.path().to_string(),
        reason: format!("{} (after {ENV_PREFIX}__* environment overrides)", e.inner()),
    })
}

/// An inline secret is always an error; the others are read only when asked (check-config, start).
fn check_secret(secret: &SecretRef, resolve: bool) -> Result<(), String> {
    match secret {
        SecretRef::Inline(_) => secret.resolve().map(drop),
        _ if resolve => secret.resolve().map(drop),
        _ => Ok(()),
    }
}

fn relative_to(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{url:?} is not an http(s) URL"))
    }
}

/// Load and check everything. With `resolve_secrets`, also check that every secret can be read (the
/// values are dropped; this only proves they are there).
pub fn load(file: &Path, resolve_secrets: bool) -> Result<Settings, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigIssue {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read the configuration file: {e}"),
        }])
    })?;
    let config = parse_config(file, &text).map_err(|i| ConfigErrors(vec![i]))?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut issues = Vec::new();
    let issue = |key: String, reason: String| ConfigIssue { file: file.to_path_buf(), key, reason };

    if let Err(r) = check_url(&config.portal.base_url) {
        issues.push(issue("portal.base_url".into(), r));
    }
    for (k, v) in [
        ("portal.dstcode", &config.portal.dstcode),
        ("portal.madonvi", &config.portal.madonvi),
        ("portal.username", &config.portal.username),
    ] {
        if v.trim().is_empty() {
            issues.push(issue(k.into(), "must not be empty".into()));
        }
    }
    if let Err(r) = check_secret(&config.portal.password, resolve_secrets) {
        issues.push(issue("portal.password".into(), r));
    }
    match (&config.linking.identity_key, config.linking.identity_procedures.is_empty()) {
        (None, false) => issues.push(issue(
            "linking.identity_key".into(),
            "linking by identity (identity_procedures) needs a key: identity_key = { credential = \"identity-key\" }"
                .into(),
        )),
        (Some(k), _) => {
            if let Err(r) = check_secret(k, resolve_secrets) {
                issues.push(issue("linking.identity_key".into(), r));
            }
        }
        (None, true) => {}
    }
    let v = &config.verify;
    if v.recent_interval_secs == 0 {
        issues.push(issue("verify.recent_interval_secs".into(), "must be at least 1".into()));
    }
    if !(v.full_cycle_hours.is_finite() && v.full_cycle_hours > 0.0) {
        issues.push(issue(
            "verify.full_cycle_hours".into(),
            format!("{} must be a number of hours above 0", v.full_cycle_hours),
        ));
    }
    let half = f64::from(config.portal.rate_limit_per_sec.max(1)) / 2.0;
    if !(v.rate_per_sec.is_finite() && v.rate_per_sec > 0.0 && v.rate_per_sec <= half) {
        issues.push(issue(
            "verify.rate_per_sec".into(),
            format!(
                "{} is out of range (above 0, at most half of portal.rate_limit_per_sec = {half}: delivery keeps the rest)",
                v.rate_per_sec
            ),
        ));
    }
    if config.deadlines.watch_interval_secs == 0 {
        issues.push(issue("deadlines.watch_interval_secs".into(), "must be at least 1".into()));
    }
    if config.linking.identity_window_hours == 0 && !config.linking.identity_procedures.is_empty() {
        issues.push(issue("linking.identity_window_hours".into(), "must be at least 1".into()));
    }
    if !(1..=100).contains(&config.delivery.batch_size) {
        issues.push(issue(
            "delivery.batch_size".into(),
            format!("{} is out of range (1–100)", config.delivery.batch_size),
        ));
    }
    if !(1..=10).contains(&config.delivery.progress_chunk) {
        issues.push(issue(
            "delivery.progress_chunk".into(),
            format!(
                "{} is out of range (1–10: the portal takes at most 10 steps a call)",
                config.delivery.progress_chunk
            ),
        ));
    }
    if config.clock.mode == ClockMode::Simulated && (config.clock.start.is_none() || config.clock.anchor.is_none()) {
        issues.push(issue("clock".into(), "mode = \"simulated\" needs `start` and `anchor`".into()));
    }
    if config.sources.is_empty() {
        issues.push(issue("sources".into(), "at least one source is needed".into()));
    }

    let adapters_dir = relative_to(&base, &config.paths.adapters_dir);
    let mut seen = BTreeMap::new();
    let mut sources = Vec::new();
    for (i, s) in config.sources.iter().enumerate() {
        let key = |k: &str| format!("sources[{i}].{k}");
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            issues
                .push(issue(key("name"), format!("{:?} must be non-empty ASCII letters, digits, '-' or '_'", s.name)));
        }
        if let Some(prev) = seen.insert(s.name.clone(), i) {
            issues.push(issue(key("name"), format!("{:?} is already the name of sources[{prev}]", s.name)));
        }
        if s.poll_interval_secs == 0 {
            issues.push(issue(key("poll_interval_secs"), "must be at least 1".into()));
        }
        let path = adapters_dir.join(format!("{}.toml", s.adapter));
        let descriptor = match std::fs::read_to_string(&path) {
            Err(e) => {
                issues.push(issue(key("adapter"), format!("cannot read descriptor {}: {e}", path.display())));
                continue;
            }
            Ok(text) => match Descriptor::parse(&text) {
                Ok(d) => d,
                Err(d) => {
                    issues.push(ConfigIssue { file: path.clone(), key: d.key, reason: d.reason });
                    continue;
                }
            },
        };
        let Some(base_url) = s.base_url.clone().or_else(|| descriptor.http.base_url.clone()) else {
            issues
                .push(issue(key("base_url"), format!("needed: descriptor {} has no default base_url", path.display())));
            continue;
        };
        if let Err(r) = check_url(&base_url) {
            issues.push(issue(key("base_url"), r));
        }
        for name in descriptor.auth.needs() {
            let (given, secret) = s.credentials.get(name);
            let problem = match (given, secret) {
                (false, _) => Some(format!("required by descriptor {}'s auth style", descriptor.name)),
                (true, Some(sec)) => check_secret(sec, resolve_secrets).err(),
                (true, None) => None,
            };
            if let Some(reason) = problem {
                issues.push(issue(key(&format!("credentials.{name}")), reason));
            }
        }
        // A secret given but not needed is checked too: an inline one is always an error.
        for sec in [&s.credentials.api_key, &s.credentials.token, &s.credentials.client_secret, &s.credentials.password]
            .into_iter()
            .flatten()
        {
            if let SecretRef::Inline(_) = sec
                && let Err(r) = check_secret(sec, false)
            {
                issues.push(issue(key("credentials"), r));
            }
        }
        sources.push(LoadedSource { config: s.clone(), descriptor, descriptor_path: path, base_url });
    }

    let cutover_path = relative_to(&base, &config.paths.cutover_file);
    let cutover: CutoverTable = read_table(file, "paths.cutover_file", &cutover_path, &mut issues).unwrap_or_default();
    for (i, row) in cutover.cutover.iter().enumerate() {
        if !config.sources.iter().any(|s| s.name == row.source) {
            issues.push(ConfigIssue {
                file: cutover_path.clone(),
                key: format!("cutover[{i}].source"),
                reason: format!("{:?} is not a configured source", row.source),
            });
        }
    }

    let calendar_path = relative_to(&base, &config.paths.calendar_file);
    let calendar = match std::fs::read_to_string(&calendar_path) {
        Err(e) => {
            issues.push(ConfigIssue {
                file: file.to_path_buf(),
                key: "paths.calendar_file".into(),
                reason: format!("cannot read {}: {e}", calendar_path.display()),
            });
            None
        }
        Ok(text) => match crate::core::calendar::Calendar::parse(&text) {
            Ok(c) => Some(c),
            Err(problems) => {
                issues.extend(problems.into_iter().map(|p| ConfigIssue {
                    file: calendar_path.clone(),
                    key: p.key,
                    reason: p.reason,
                }));
                None
            }
        },
    };

    let procedures_path = relative_to(&base, &config.paths.procedures_file);
    let procedures: crate::core::procedures::ProcedureTable =
        read_table(file, "paths.procedures_file", &procedures_path, &mut issues).unwrap_or_default();
    for (key, reason) in procedures.problems() {
        issues.push(ConfigIssue { file: procedures_path.clone(), key, reason });
    }

    if let (true, Some(calendar)) = (issues.is_empty(), calendar) {
        let deadlines = crate::core::deadline::DeadlineRules {
            tolerance: config.deadlines.due_tolerance,
            ..crate::core::deadline::DeadlineRules::new(calendar, procedures)
        };
        Ok(Settings { file: file.to_path_buf(), config, sources, cutover, deadlines })
    } else {
        Err(ConfigErrors(issues))
    }
}
