//! The command line: one module per verb. Parse first (no I/O), then act.
//!
//! Exit codes: 0 success (`status`: healthy); 1 `status`: degraded; 2 error (bad configuration,
//! unreachable database, `status`: failing).

pub mod attest;
pub mod bench;
pub mod check_config;
pub mod demo;
pub mod explain;
pub mod log;
pub mod resync;
pub mod run;
pub mod simulate;
pub mod split;
pub mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub const EXIT_OK: u8 = 0;
pub const EXIT_DEGRADED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// The default configuration file of an installed service.
pub const DEFAULT_CONFIG: &str = "/etc/dvc-bridge/dvc-bridge.toml";

#[derive(Debug, Parser)]
#[command(
    name = "dvc-bridge",
    version,
    about = "Keeps Cổng DVCQG in sync with the city's and the ministries' procedure systems"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "DVC_BRIDGE_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Log output format (overrides `[log] format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (systemd Type=notify; SIGTERM stops it cleanly).
    Run,
    /// Run the simulated city, ministry and portal with the daemon syncing them.
    Demo(demo::DemoArgs),
    /// Validate the configuration, its descriptors, cutover table and secrets.
    CheckConfig,
    /// Per-source and delivery health (exit 0 healthy, 1 degraded, 2 failing).
    Status(status::StatusArgs),
    /// Read the sync log.
    Log(log::LogArgs),
    /// Why a dossier is what it is: members, links, authority, field origins, due time, verdict.
    Explain(explain::ExplainArgs),
    /// Re-sync dossiers, a source, a procedure, quarantined or parked items, or everything,
    /// without stopping the daemon.
    Resync(resync::ResyncArgs),
    /// Take a wrongly linked record out of its case (logged with who and why).
    Split(split::SplitArgs),
    /// Record a finish the sources do not hold (returned on paper, record unsigned), with who and
    /// why; it is pushed to the portal.
    Attest(attest::AttestArgs),
    /// Run only the simulated systems, on fixed ports (for tests and trying things by hand).
    Simulate(simulate::SimulateArgs),
    /// Measure: `bench ingest` (records per second into the store, peak memory).
    Bench(bench::BenchArgs),
}

/// An operator's change to a case (`split`, `attest`): who and why, for the sync log, and how it
/// is carried out.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Who (for the sync log).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why (for the sync log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// No daemon is running: carry it out in this process.
    #[arg(long)]
    pub now: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

impl OperatorArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.by.trim().is_empty() && !self.reason.trim().is_empty(),
            "--by and --reason must not be empty"
        );
        Ok(())
    }
}

/// Set up tracing to stderr.
pub fn init_tracing(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig => check_config::main(&cli.config),
        Command::Status(ref a) => status::main(&cli.config, a),
        Command::Log(ref a) => log::main(&cli.config, a),
        Command::Explain(ref a) => explain::main(&cli.config, a),
        Command::Resync(ref a) => resync::main(&cli.config, a),
        Command::Split(ref a) => split::main(&cli.config, a),
        Command::Attest(ref a) => attest::main(&cli.config, a),
        Command::Run => run::main(&cli.config, cli.log_format),
        Command::Demo(ref a) => demo::main(a),
        Command::Simulate(ref a) => simulate::main(a),
        Command::Bench(ref a) => bench::main(a),
    };
    ExitCode::from(code)
}

/// Print an error chain for a person and return the error exit code.
pub fn fail(e: &anyhow::Error) -> u8 {
    eprintln!("dvc-bridge: {e:#}");
    EXIT_ERROR
}
