//! `dvc-bridge attest CODE --finished-at T [--returned-at T] --by NAME --reason TEXT`: record a
//! finish the sources do not hold (the result was returned on paper on time, the electronic record
//! never got its finish). The attested finish goes to the portal; the sync log says who and why;
//! `explain` shows it.
//!
//! Like `split`, a request the running daemon carries out (followed here to its end), or, with
//! `--now` and no daemon running, carried out in this process under the writer lease.

use std::path::Path;

use clap::Args;
use jiff::Timestamp;

use super::EXIT_ERROR;
use super::resync::parse_time;
use crate::core::attest::Attestation;
use crate::core::resync::{AttestRequest, Scope};

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The dossier: the portal's code or any member's.
    pub code: String,
    /// When it was really finished (RFC 3339, or local time "YYYY-MM-DD HH:MM").
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub finished_at: Timestamp,
    /// When the result was really handed over, if it was.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub returned_at: Option<Timestamp>,
    #[command(flatten)]
    pub op: super::OperatorArgs,
}

pub fn main(file: &Path, args: &AttestArgs) -> u8 {
    let result = (|| -> anyhow::Result<u8> {
        let op = &args.op;
        op.check()?;
        let attestation =
            Attestation { finished_at: args.finished_at, returned_at: args.returned_at, reason: op.reason.clone() };
        let settings =
            crate::config::load(file, op.now).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))?;
        // What can be refused without the store is refused before a request is stored.
        attestation.check(None, settings.clock().now()).map_err(|e| anyhow::anyhow!(e))?;
        let scope = Scope { attest: Some(AttestRequest { code: args.code.clone(), attestation }), ..Scope::default() };
        super::resync::submit(settings, scope, &op.by, true, op.now, op.json)
    })();
    result.unwrap_or_else(|e| {
        eprintln!("dvc-bridge attest: {e:#}");
        EXIT_ERROR
    })
}
