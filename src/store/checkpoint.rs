//! WAL checkpoints off the writer's thread.
//!
//! SQLite's automatic checkpoint runs on the connection that commits, after the commit: with one
//! writer thread, every few hundred pages of ingest waited while the WAL was copied into the
//! database (an eighth of the writer's time in a first sync). A checkpointer thread with its own
//! connection copies the WAL in the background instead: a PASSIVE checkpoint never blocks the
//! writer, nor readers.
//!
//! A WAL is only rewound (written again from its start) by a commit that finds every frame
//! already copied, which a checkpoint racing a busy writer rarely leaves: the WAL would grow
//! without end. So the writer keeps SQLite's automatic checkpoint, at [`WRITER_PAGES`]: by the
//! time it runs, this thread has copied nearly all of the WAL, so the writer's own checkpoint
//! has little left to do, finishes, and the next commit rewinds the WAL.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Between two passive checkpoints (each syncs the files): about one per commit under load.
/// Measured with `bench ingest`: 200 ms let the WAL outgrow the writer's threshold, so the writer
/// copied most of it after all; 20 ms leaves the writer little.
const EVERY: Duration = Duration::from_millis(20);
/// The writer's own automatic checkpoint, in pages (128 MiB of 16 KiB pages).
pub const WRITER_PAGES: i64 = 8_192;

/// Run until `commits` disconnects (the writer thread ended).
pub fn run(db: PathBuf, commits: Receiver<()>) {
    let conn = match Connection::open(&db) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no background checkpoints: the writer will checkpoint itself");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_secs(10));
    let mut last = Instant::now();
    // Whether the writer ran a job since the last checkpoint: an idle store is left alone.
    let mut dirty = false;
    loop {
        match commits.recv_timeout(EVERY) {
            Ok(()) => dirty = true,
            // Quiet for a while: copy what the last commits left, if any.
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !dirty || last.elapsed() < EVERY {
            continue;
        }
        (last, dirty) = (Instant::now(), false);
        // The result row (busy, frames in the WAL, frames copied) matters only when it fails.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed; the writer's own checkpoints remain");
        }
    }
}
