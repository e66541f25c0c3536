//! `dvc-bridge log`: the sync log, newest last; `--follow` keeps printing; `--verify` checks the
//! hash chain.

use std::path::Path;

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};
use crate::core::timefmt::display_time;
use crate::store::synclog::{self, Filter, LogRow};

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only entries about this dossier code.
    #[arg(long)]
    pub dossier: Option<String>,
    /// Only entries about this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this kind (`portal` matches `portal.acked`, `portal.rejected`, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this level: info, warn, error.
    #[arg(long)]
    pub level: Option<String>,
    /// How many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Keep printing new entries.
    #[arg(long)]
    pub follow: bool,
    /// Only entries at or after this time (RFC 3339, local "YYYY-MM-DD HH:MM", or a date).
    #[arg(long, value_parser = super::resync::parse_time)]
    pub since: Option<jiff::Timestamp>,
    /// Only entries before this time.
    #[arg(long, value_parser = super::resync::parse_time)]
    pub until: Option<jiff::Timestamp>,
    /// Check the whole hash chain instead of printing: exit 0 intact, 1 broken (an entry
    /// altered or removed), 2 unreadable.
    #[arg(long)]
    pub verify: bool,
}

fn print(rows: &[LogRow], json: bool) {
    for r in rows {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            let at = r.at.parse::<jiff::Timestamp>().map(display_time).unwrap_or_else(|_| r.at.clone());
            println!(
                "{at}  {:<5} {:<24} {:<8} {:<28} {}",
                r.level,
                r.kind,
                r.source.as_deref().unwrap_or("-"),
                r.dossier.as_deref().unwrap_or("-"),
                r.message
            );
        }
    }
}

fn verify(conn: &rusqlite::Connection) -> u8 {
    match synclog::verify(conn) {
        Ok(Ok(n)) => {
            let from = match synclog::anchor_info(conn) {
                Ok(Some(a)) => format!(
                    "from entry {} ({} older entries pruned, the last of them written {})",
                    a.seq + 1,
                    a.pruned,
                    a.at.parse::<jiff::Timestamp>().map(display_time).unwrap_or(a.at.clone())
                ),
                _ => "from the first entry".into(),
            };
            println!("sync log intact: {n} entries chained {from}");
            EXIT_OK
        }
        Ok(Err(broken)) => {
            println!("sync log BROKEN: {broken}");
            super::EXIT_DEGRADED
        }
        Err(e) => super::fail(&e.into()),
    }
}

pub fn main(file: &Path, args: &LogArgs) -> u8 {
    let settings = match crate::config::load(file, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dvc-bridge: configuration problems:\n{e}");
            return EXIT_ERROR;
        }
    };
    let conn = match crate::store::open_reader(&settings.db_path()) {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    if args.verify {
        return verify(&conn);
    }
    let mut filter = Filter {
        dossier: args.dossier.clone(),
        source: args.source.clone(),
        kind: args.kind.clone(),
        level: args.level.clone(),
        after_seq: None,
        since: args.since,
        until: args.until,
    };
    loop {
        let rows = match synclog::query(&conn, &filter, args.limit) {
            Ok(r) => r,
            Err(e) => return super::fail(&e.into()),
        };
        print(&rows, args.json);
        if !args.follow {
            return EXIT_OK;
        }
        if let Some(last) = rows.last() {
            filter.after_seq = Some(last.seq);
        } else if filter.after_seq.is_none() {
            filter.after_seq = Some(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
