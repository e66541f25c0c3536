//! The invariant checker against a world no bridge has synced: it must find every case missing and
//! every record unaccounted for, and a damaged store.

use super::*;
use crate::sim::check::{Invariant, check};

#[tokio::test]
async fn a_bridge_that_did_nothing_breaks_the_invariants_the_checker_names() {
    let w = World::start(opts()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    drop(crate::store::open_writer(&db).unwrap());
    let report = check(&w, &db);
    let count = |inv| report.violations.iter().filter(|v| v.invariant == inv).count();
    assert_eq!(count(Invariant::Missing), w.expected_portal().len(), "{report}");
    assert_eq!(count(Invariant::Quarantine), w.source_ids().len(), "{report}");
    assert_eq!(count(Invariant::Store) + count(Invariant::SyncLog) + count(Invariant::Twice), 0, "{report}");
    assert!(report.to_string().contains("missing on the portal"), "{report}");

    // A file that is not a store at all.
    std::fs::write(&db, b"not a database").unwrap();
    let report = check(&w, &db);
    assert!(report.violations.iter().any(|v| v.invariant == Invariant::Store), "{report}");
    w.shutdown().await;
}
