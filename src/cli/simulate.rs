//! `dvc-bridge simulate`: only the simulated systems, on loopback, until Ctrl-C or SIGTERM. For
//! trying things by hand, and for the benchmark, which runs it as a process of its own so that its
//! memory is not counted as the bridge's.

use std::io::Write;

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Ports for the city system, the Ministry of Justice's system and the portal (0: any free
    /// port; the other ministries always take free ports). All addresses are printed.
    #[arg(long, num_args = 3, default_values_t = [18081u16, 18082, 18083])]
    pub ports: Vec<u16>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Milliseconds between upstream change rounds (0: the world does not change by itself).
    #[arg(long, default_value_t = 500)]
    pub tick_ms: u64,
    /// Add synthetic records to a system before serving, e.g. `--bulk city=200000` (repeatable).
    #[arg(long, value_parser = parse_bulk)]
    pub bulk: Vec<(String, usize)>,
    /// Folder to unpack the fixtures into (a temporary folder by default).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn parse_bulk(s: &str) -> Result<(String, usize), String> {
    let (system, n) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected SYSTEM=COUNT"))?;
    Ok((system.to_string(), n.parse().map_err(|e| format!("{s:?}: {e}"))?))
}

pub fn main(args: &SimulateArgs) -> u8 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&e.into()),
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let tmp = tempfile::tempdir()?;
        let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        let fixtures = super::demo::unpack_fixtures(&dir)?;
        let clock = crate::clock::SimClock::starting_now(super::demo::demo_start(), args.speed);
        let mut opts = crate::sim::SimOptions::demo(fixtures, clock);
        opts.tick = std::time::Duration::from_millis(args.tick_ms);
        let ports = [args.ports[0], args.ports[1], args.ports[2]];
        let world = crate::sim::World::start_on(opts, ports).await?;
        for (system, n) in &args.bulk {
            world.bulk_load(system, *n)?;
        }
        let mut out = std::io::stdout().lock();
        for system in world.systems() {
            writeln!(out, "{:<6} {:<9} {}", system.name, system.kind, system.url)?;
        }
        writeln!(out, "portal           {}", world.portal_url)?;
        writeln!(out, "clock  start {} anchor {} speed {}", clock.start, clock.anchor, clock.speed)?;
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        let (stop, _reload) = crate::daemon::signals()?;
        stop.cancelled().await;
        world.shutdown().await;
        Ok(())
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dvc-bridge simulate: {e:#}");
            EXIT_ERROR
        }
    }
}
