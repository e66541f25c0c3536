//! `dvc-bridge simulate`: only the simulated systems, on fixed loopback ports, until Ctrl-C.

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Ports for the city system, the ministry system and the portal.
    #[arg(long, num_args = 3, default_values_t = [18081u16, 18082, 18083])]
    pub ports: Vec<u16>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Folder to unpack the fixtures into (a temporary folder by default).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

pub fn main(args: &SimulateArgs) -> u8 {
    super::init_tracing("warn", false);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&e.into()),
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let tmp = tempfile::tempdir()?;
        let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        let fixtures = super::demo::unpack_fixtures(&dir)?;
        let clock = crate::clock::SimClock::starting_now(super::demo::demo_start(), args.speed);
        let opts = crate::sim::SimOptions::demo(fixtures, clock);
        let ports = [args.ports[0], args.ports[1], args.ports[2]];
        let world = crate::sim::World::start_on(opts, ports).await?;
        println!("city     {}", world.city_url);
        println!("ministry {}", world.ministry_url);
        println!("portal   {}", world.portal_url);
        println!("clock    start {} anchor {} speed {}", clock.start, clock.anchor, clock.speed);
        println!("Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
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
