//! A system that writes its own dossiers to the portal, faults included.

use super::*;
use crate::sim::{SelfSync, SelfSynced};

fn self_syncing(missing: f64, stale: f64) -> SimOptions {
    let mut o = opts();
    o.self_sync.insert("mps".into(), SelfSync { missing, stale });
    o
}

#[tokio::test]
async fn a_self_syncing_system_writes_its_dossiers_leaving_out_and_spoiling_what_it_is_told() {
    let w = World::start(self_syncing(0.15, 0.25)).await.unwrap();
    let fates = w.self_synced();
    let expected = w.expected_portal();
    let portal = w.portal_snapshot();
    assert!(fates.len() > 20, "the Ministry of Public Security is authoritative for its cases: {fates:?}");
    for kind in [SelfSynced::Written, SelfSynced::Missing, SelfSynced::StaleStatus, SelfSynced::StaleFinish] {
        assert!(fates.values().any(|f| *f == kind), "{kind:?} among {fates:?}");
    }
    assert_eq!(portal.len(), fates.values().filter(|f| **f != SelfSynced::Missing).count(), "nothing else is written");
    for (code, fate) in &fates {
        let e = &expected[code];
        let Some(copy) = portal.get(code) else {
            assert_eq!(*fate, SelfSynced::Missing, "{code}");
            continue;
        };
        assert_eq!((copy.creates, copy.updates, copy.source_writes), (1, 0, 1), "{code}");
        let d = &copy.dossier;
        let status: u8 = d["TrangThaiHoSo"].as_str().unwrap().parse().unwrap();
        let finish = d.get("NgayKetThucXuLy").and_then(Value::as_str);
        let want_finish = e.ended_at.map(crate::sim::portal::format_time);
        assert_eq!(d["NgayTiepNhan"], crate::sim::portal::format_time(e.received_at), "{code}");
        assert_eq!(d["NgayHenTra"], crate::sim::portal::format_time(e.due_at), "{code}");
        match fate {
            SelfSynced::Written => {
                assert_eq!((status, finish), (e.status, want_finish.as_deref()), "{code}");
            }
            SelfSynced::StaleStatus => assert!(status != e.status && finish.is_none(), "{code}: {d}"),
            SelfSynced::StaleFinish => {
                assert!(status == e.status && want_finish.is_some() && finish.is_none(), "{code}: {d}")
            }
            SelfSynced::Missing => panic!("{code} is left out"),
        }
    }
    // A change is written at once; what did not change is not written again.
    for _ in 0..20 {
        w.change_now();
    }
    let after = w.portal_snapshot();
    let expected = w.expected_portal();
    let mut rewritten = 0;
    for (code, fate) in w.self_synced() {
        let (Some(before), Some(now)) = (portal.get(&code), after.get(&code)) else { continue };
        if fate == SelfSynced::Written {
            assert_eq!(now.dossier["TrangThaiHoSo"], expected[&code].status.to_string(), "{code}");
        }
        if before.dossier == now.dossier {
            assert_eq!(now.source_writes, 1, "{code} unchanged, not written again");
        } else {
            rewritten += 1;
            assert!(now.source_writes >= 2 && now.updates == now.source_writes - 1, "{code}: an update each change");
        }
    }
    assert!(rewritten > 0, "some of the ministry's dossiers changed in 20 rounds");
    w.shutdown().await;
}

#[tokio::test]
async fn without_self_sync_the_portal_starts_empty_and_an_unknown_system_is_refused() {
    let w = World::start(opts()).await.unwrap();
    assert!(w.portal_snapshot().is_empty());
    assert!(w.self_synced().is_empty());
    w.shutdown().await;
    let mut o = opts();
    o.self_sync.insert("ministry-of-magic".into(), SelfSync::default());
    let e = World::start(o).await.unwrap_err().to_string();
    assert!(e.contains("self_sync") && e.contains("ministry-of-magic"), "{e}");
}
