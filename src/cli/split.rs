//! `dvc-bridge split SOURCE/NATIVE_ID --by NAME --reason TEXT`: correct a wrong link. The record
//! leaves its case for a case of its own and is never linked with the case's other members again;
//! both cases are merged again and queued for the portal. Safe beside a running daemon: it is one
//! transaction, which the store orders with the daemon's.

use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};
use crate::store::ingest;

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The record to take out of its case, as SOURCE/NATIVE_ID (see `explain` or `log --dossier`).
    pub record: String,
    /// Who splits it (for the sync log).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why (for the sync log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn main(file: &Path, args: &SplitArgs) -> u8 {
    super::init_tracing("warn", false);
    let result = (|| -> anyhow::Result<()> {
        let (source, native_id) = args
            .record
            .split_once('/')
            .filter(|(s, n)| !s.is_empty() && !n.is_empty())
            .ok_or_else(|| anyhow::anyhow!("name the record as SOURCE/NATIVE_ID, e.g. moj/BTP-2026-000123"))?;
        anyhow::ensure!(
            !args.by.trim().is_empty() && !args.reason.trim().is_empty(),
            "--by and --reason must not be empty"
        );
        let settings =
            crate::config::load(file, false).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))?;
        let ctx = Arc::new(crate::daemon::merge_ctx(&settings));
        let mut conn = super::resync::open(&settings)?;
        let s = ingest::split(&mut conn, &ctx, source, native_id, &args.by, &args.reason, settings.clock().now())?;
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!(
                "{source}/{native_id} is now case {} of its own; case {} keeps {}",
                s.new_case,
                s.from_case,
                s.apart_from.join(", ")
            );
        }
        Ok(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dvc-bridge split: {e:#}");
            EXIT_ERROR
        }
    }
}
