//! Upstream systems that write their own dossiers to the portal, as a real ministry system does:
//! the simulated side of a source the bridge runs in portal_mode "verify" (it must not write them,
//! only read them back). A system named in `SimOptions::self_sync` writes, once at start and after
//! every change to the world, each case whose authoritative record it holds, under the case's
//! portal code (its earliest member's: the system knows it from its reference field), straight into
//! the portal's copies; `PortalCopy::source_writes` counts these writes apart from the bridge's.
//!
//! Its knob (`SelfSync`) makes it fail as such systems do: some dossiers never reach the portal,
//! some are written stale. Which ones is decided per dossier code from the world's seed, so a run
//! and a test know them in advance ([`World::self_synced`](super::World::self_synced)).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::catalogue::ApplicantKind;
use super::model::{Channel, Dossier, Source};
use super::portal::format_time;
use super::world::Upstream;

/// How a self-syncing system fails. Shares are from 0 to 1 of its dossiers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfSync {
    /// Dossiers it never writes to the portal.
    pub missing: f64,
    /// Dossiers it writes stale: half of them with the status left behind (4, or 2 when the
    /// dossier is processing) and no end time; the other half, when ended, without the finish time
    /// (`NgayKetThucXuLy`), else like the first half.
    pub stale: f64,
}

/// What a self-syncing system does with one of its dossiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfSynced {
    /// Written as it is.
    Written,
    /// Never written.
    Missing,
    /// Written with a wrong status and no end time.
    StaleStatus,
    /// Written without its finish time.
    StaleFinish,
}

/// A number in [0, 1) drawn from the seed and a code, the same every run (FNV-1a, then mixed).
fn draw(seed: u64, code: &str, salt: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in code.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl SelfSync {
    /// What the system does with the dossier it holds under `code`, in state `d`.
    pub fn fate(&self, seed: u64, code: &str, d: &Dossier) -> SelfSynced {
        let u = draw(seed, code, 1);
        if u < self.missing {
            SelfSynced::Missing
        } else if u < self.missing + self.stale {
            let finish_only = draw(seed, code, 2) < 0.5 && d.ended_at().is_some();
            if finish_only { SelfSynced::StaleFinish } else { SelfSynced::StaleStatus }
        } else {
            SelfSynced::Written
        }
    }
}

fn put_time(m: &mut Map<String, Value>, key: &str, t: Option<Timestamp>) {
    if let Some(t) = t {
        m.insert(key.to_owned(), Value::String(format_time(t)));
    }
}

/// The portal object a system writes for a case: its authoritative record `d`, under the case's
/// code, received when the case was first received.
fn portal_object(code: &str, received: Timestamp, d: &Dossier) -> Map<String, Value> {
    let channel = match d.channel {
        Channel::InPerson => "1",
        Channel::Online => "2",
        Channel::Postal => "3",
    };
    let kind = match d.applicant.kind {
        ApplicantKind::Citizen => "1",
        ApplicantKind::Business => "2",
    };
    let mut m = Map::new();
    for (k, v) in [
        ("MaHoSo", code),
        ("MaTTHC", &d.procedure.code),
        ("TenTTHC", &d.procedure.name),
        ("MaLinhVuc", &d.procedure.sector_code),
        ("KenhThucHien", channel),
        ("ChuHoSo", &d.applicant.name),
        ("LoaiDoiTuong", kind),
        ("MaDoiTuong", &d.applicant.id_number),
        ("DonViXuLy", &d.agency.name),
        ("NoiNopHoSo", &d.agency.code),
    ] {
        m.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    m.insert("TrangThaiHoSo".into(), Value::String(d.status.to_string()));
    put_time(&mut m, "NgayNopHoSo", Some(d.applied_at));
    put_time(&mut m, "NgayTiepNhan", Some(received));
    put_time(&mut m, "NgayHenTra", Some(d.due_at));
    put_time(&mut m, "NgayKetThucXuLy", d.ended_at());
    if d.status == 10 {
        put_time(&mut m, "NgayTra", d.returned_at);
    }
    if d.status == 3 {
        put_time(&mut m, "NgayTuChoi", d.refused_at);
    }
    if !d.supplements.is_empty() {
        let list: Vec<Value> = d
            .supplements
            .iter()
            .map(|s| {
                let mut o = Map::new();
                o.insert("HoSoBoSungId".into(), json!(s.id));
                o.insert("NoiDungBoSung".into(), json!(s.content));
                put_time(&mut o, "NgayBoSung", Some(s.requested_at));
                put_time(&mut o, "NgayTiepNhanBoSung", s.received_at);
                o.insert("TrangThaiBoSung".into(), json!(if s.received_at.is_some() { "1" } else { "0" }));
                Value::Object(o)
            })
            .collect();
        m.insert("DanhSachHoSoBoSung".into(), Value::Array(list));
    }
    m
}

/// Damage an object the way `fate` says.
fn stale(mut m: Map<String, Value>, fate: SelfSynced, d: &Dossier) -> Map<String, Value> {
    match fate {
        SelfSynced::StaleStatus => {
            let left_behind = if d.status == 4 { "2" } else { "4" };
            m.insert("TrangThaiHoSo".into(), Value::String(left_behind.to_owned()));
            for k in ["NgayKetThucXuLy", "NgayTra", "NgayTuChoi"] {
                m.remove(k);
            }
        }
        SelfSynced::StaleFinish => {
            m.remove("NgayKetThucXuLy");
        }
        SelfSynced::Written | SelfSynced::Missing => {}
    }
    m
}

/// Every self-syncing system's dossiers: code → what the system does with it.
pub fn fates(up: &Upstream, systems: &BTreeMap<Source, SelfSync>, seed: u64) -> BTreeMap<String, SelfSynced> {
    let mut out = BTreeMap::new();
    for (&source, knob) in systems {
        for (code, _, d) in up.authoritative_in(source) {
            out.insert(code.to_owned(), knob.fate(seed, code, d));
        }
    }
    out
}

/// What the self-syncing systems write now: code → object (the missing ones left out).
pub fn writes(up: &Upstream, systems: &BTreeMap<Source, SelfSync>, seed: u64) -> Vec<(String, Map<String, Value>)> {
    let mut out = Vec::new();
    for (&source, knob) in systems {
        for (code, received, d) in up.authoritative_in(source) {
            let fate = knob.fate(seed, code, d);
            if fate != SelfSynced::Missing {
                out.push((code.to_owned(), stale(portal_object(code, received, d), fate, d)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_stable_spread_and_salted() {
        assert_eq!(draw(2026, "BCA-260105-000001", 1), draw(2026, "BCA-260105-000001", 1));
        assert_ne!(draw(2026, "BCA-260105-000001", 1), draw(2026, "BCA-260105-000001", 2));
        let n = 10_000;
        let low = (0..n).filter(|i| draw(7, &format!("C-{i}"), 1) < 0.25).count();
        assert!((2_000..3_000).contains(&low), "about a quarter below 0.25: {low}");
        assert!((0..n).all(|i| (0.0..1.0).contains(&draw(7, &format!("C-{i}"), 1))));
    }
}
