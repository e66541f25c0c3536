//! `dvc-bridge split SOURCE/NATIVE_ID --by NAME --reason TEXT`: correct a wrong link. The record
//! leaves its case for a case of its own and is never linked with the case's other members again;
//! both cases are merged again and queued for the portal, and the sync log says who and why.
//!
//! Like `resync`, it is a request the running daemon carries out (followed here to its end), or,
//! with `--now` and no daemon running, carried out in this process under the writer lease.

use std::path::Path;

use clap::Args;

use super::EXIT_ERROR;
use crate::core::resync::{Scope, SplitRequest};

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The record to take out of its case, as SOURCE/NATIVE_ID (see `log --dossier`).
    pub record: String,
    #[command(flatten)]
    pub op: super::OperatorArgs,
}

pub fn main(file: &Path, args: &SplitArgs) -> u8 {
    let result = (|| -> anyhow::Result<u8> {
        let (source, native_id) = args
            .record
            .split_once('/')
            .filter(|(s, n)| !s.is_empty() && !n.is_empty())
            .ok_or_else(|| anyhow::anyhow!("name the record as SOURCE/NATIVE_ID, e.g. moj/BTP-2026-000123"))?;
        let op = &args.op;
        op.check()?;
        let settings =
            crate::config::load(file, op.now).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))?;
        let split = SplitRequest { source: source.into(), native_id: native_id.into(), reason: op.reason.clone() };
        let scope = Scope { split: Some(split), ..Scope::default() };
        super::resync::submit(settings, scope, &op.by, true, op.now, op.json)
    })();
    result.unwrap_or_else(|e| {
        eprintln!("dvc-bridge split: {e:#}");
        EXIT_ERROR
    })
}
