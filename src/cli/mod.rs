//! The command line: one module per verb. Parse first (no I/O), then act.
//!
//! Exit codes: 0 success (`status`: healthy); 1 `status`: degraded; 2 error (bad configuration,
//! unreachable database, `status`: failing).

pub mod attest;
pub mod bench;
mod bench_freshness;
mod bench_resync;
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
    Journald,
}

/// Where and how tracing output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Text,
    Json,
    Journald,
}

impl LogOutput {
    /// The command line wins over the configuration; `auto` is the journal when systemd connected
    /// stderr to it.
    pub fn choose(arg: Option<LogFormatArg>, config: crate::config::LogFormat) -> LogOutput {
        use crate::config::LogFormat;
        match (arg, config) {
            (Some(LogFormatArg::Text), _) | (None, LogFormat::Text) => LogOutput::Text,
            (Some(LogFormatArg::Json), _) | (None, LogFormat::Json) => LogOutput::Json,
            (Some(LogFormatArg::Journald), _) | (None, LogFormat::Journald) => LogOutput::Journald,
            (None, LogFormat::Auto) if std::env::var_os("JOURNAL_STREAM").is_some() => LogOutput::Journald,
            (None, LogFormat::Auto) => LogOutput::Text,
        }
    }
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
    /// Measure the bridge: ingest, merge, delivery, freshness and a full re-sync (figures in BENCHMARKS.md).
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

/// Set up tracing: to stderr (text or JSON lines), or to journald with structured fields. When the
/// journal cannot be reached the output falls back to stderr, and says so.
pub fn init_logging(level: &str, output: LogOutput) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let journal_error = match output {
        LogOutput::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(layer.with_syslog_identifier("dvc-bridge".into()))
                    .try_init();
                return;
            }
            Err(e) => Some(e),
        },
        _ => None,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr);
    let _ = if output == LogOutput::Json { builder.json().try_init() } else { builder.try_init() };
    if let Some(e) = journal_error {
        tracing::warn!(error = %e, "journald cannot be reached: logging to stderr");
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` sets its logging up from the configuration it loads; every other command logs warnings
    // and errors only, as text on a terminal unless `--log-format` says otherwise.
    if !matches!(cli.command, Command::Run) {
        init_logging("warn", LogOutput::choose(cli.log_format, crate::config::LogFormat::Text));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;

    #[test]
    fn the_command_line_wins_and_auto_is_the_journal_only_under_systemd() {
        assert_eq!(LogOutput::choose(Some(LogFormatArg::Json), LogFormat::Journald), LogOutput::Json);
        assert_eq!(LogOutput::choose(None, LogFormat::Journald), LogOutput::Journald);
        assert_eq!(LogOutput::choose(Some(LogFormatArg::Journald), LogFormat::Text), LogOutput::Journald);
        // JOURNAL_STREAM is what systemd sets when a service's output goes to the journal.
        let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
        let auto = LogOutput::choose(None, LogFormat::Auto);
        assert_eq!(auto, if under_systemd { LogOutput::Journald } else { LogOutput::Text });
    }
}
