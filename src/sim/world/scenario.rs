//! What the delivery tests and benchmark need from the world: dossiers that come due on a
//! schedule and finish when the script says (on time, or late), and the sources' own verdict on
//! the cases behind portal codes (for the false-late meter, `super::super::late`).
//!
//! The world's random changes pick dossiers at any time, with due times days away; whether a
//! finish reaches the portal before its due time then never matters. A wave of scripted dossiers
//! due within the hour, each finished shortly before (or after) its due time, is what makes a
//! portal outage or a slow queue show dossiers late that ended on time.

use std::collections::{BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};

use super::{Member, Upstream, draw_weighted};
use crate::sim::model::{ResultDoc, Source, Step, is_end, whole_second};
use crate::sim::portal::late_by_rule;

/// Dossiers that come due on a schedule (see `World::due_wave`).
#[derive(Debug, Clone)]
pub struct DueWave {
    /// How many.
    pub n: usize,
    /// Due times are spread evenly over `[due_from, due_to]` (whole seconds).
    pub due_from: Timestamp,
    pub due_to: Timestamp,
    /// Each finishes this long before its due time, drawn evenly from the range.
    pub lead: (SignedDuration, SignedDuration),
    /// The share that finish late instead: this long *after* the due time, drawn the same way.
    pub late_share: f64,
    /// The systems the dossiers may be held in, by name (`"city"`, `"moj"`, …); empty: any, as
    /// their procedures fall.
    pub systems: Vec<String>,
}

/// One dossier of a wave, as the script will take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedDossier {
    /// `"city"`, `"moj"`, …: the system holding it (it is a case of its own).
    pub system: String,
    /// Its code: the portal code of its case.
    pub code: String,
    pub due_at: Timestamp,
    /// When its system records it finished (status 9).
    pub finish_at: Timestamp,
}

impl ScriptedDossier {
    pub fn on_time(&self) -> bool {
        self.finish_at <= self.due_at
    }
}

/// The finishes still to come, and the dossiers the world's random changes leave alone until then.
#[derive(Debug, Default)]
pub struct Script {
    /// `(finish time, member)`, soonest first.
    pending: Vec<(Timestamp, Member)>,
    held: BTreeSet<Member>,
}

impl Script {
    /// Whether a random change must leave this dossier alone: its script is not played out yet.
    pub fn holds(&self, m: &Member) -> bool {
        self.held.contains(m)
    }
}

impl Upstream {
    /// Adds the wave's dossiers, received earlier today and being processed now, each in the
    /// system that owns its procedure (drawn by weight, as new dossiers are); they finish at their
    /// scripted time at the first change round after it (see [`Upstream::play_script`]), and
    /// until then no random change touches them. Returns them in due order.
    pub fn due_wave(&mut self, wave: &DueWave, now: Timestamp) -> anyhow::Result<Vec<ScriptedDossier>> {
        anyhow::ensure!(wave.due_from <= wave.due_to, "due_wave: due_from is after due_to");
        let (lo, hi) = wave.lead;
        anyhow::ensure!(
            SignedDuration::ZERO <= lo && lo <= hi,
            "due_wave: the lead must be a range of positive lengths"
        );
        let wanted: Vec<Source> = wave
            .systems
            .iter()
            .map(|n| Source::from_name(n).ok_or_else(|| anyhow::anyhow!("due_wave: unknown system {n:?}")))
            .collect::<anyhow::Result<_>>()?;
        let procedures: Vec<_> = self
            .catalogue
            .procedures
            .iter()
            .filter(|p| wanted.is_empty() || wanted.contains(&self.owner_at(&p.code, now)))
            .cloned()
            .collect();
        let span = wave.due_to.duration_since(wave.due_from).as_secs_f64();
        let mut out = Vec::with_capacity(wave.n);
        for i in 0..wave.n {
            let due = whole_second(
                wave.due_from + SignedDuration::from_secs_f64(span * (i as f64 + 0.5) / wave.n.max(1) as f64),
            );
            let lead = lo + SignedDuration::from_secs_f64((hi - lo).as_secs_f64() * self.rng.f64());
            let late = self.rng.f64() < wave.late_share;
            let finish = whole_second(if late { due + lead } else { due - lead });
            let proc = draw_weighted(&mut self.rng, &procedures)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("due_wave: the catalogue has no procedure"))?;
            // Received a few hours ago, and before its finish whatever the lead.
            let received = whole_second(now.min(finish) - SignedDuration::from_mins(self.rng.i64(60..=240)));
            let owner = self.owner_at(&proc.code, received);
            let stamp = self.stamp(owner, now);
            let mut d = self.build(owner, &proc, received, stamp);
            d.due_at = due;
            let official = self.official();
            let department = proc.department.clone();
            for step in &mut d.steps {
                step.due = due;
            }
            let started = d.steps.last().map(|s| s.at);
            d.steps.push(Step {
                id: (owner == Source::City).then(|| self.object_id(received)),
                assignee: official,
                position: "Chuyên viên".to_owned(),
                department,
                content: "Thẩm định hồ sơ".to_owned(),
                started_at: started,
                at: received.max(stamp.min(finish)),
                due,
                status: 4,
            });
            d.status = 4;
            out.push(ScriptedDossier {
                system: owner.name().to_owned(),
                code: d.code.clone(),
                due_at: due,
                finish_at: finish,
            });
            let m = self.push(d);
            self.cases.push(vec![m]);
            self.script.held.insert(m);
            self.script.pending.push((finish, m));
        }
        self.script.pending.sort();
        Ok(out)
    }

    /// Finishes every scripted dossier whose time has come by `now`, stamped as its system
    /// records it now, finished at its scripted time. Returns how many.
    pub fn play_script(&mut self, now: Timestamp) -> u32 {
        let due = self.script.pending.partition_point(|(at, _)| *at <= now);
        let ready: Vec<(Timestamp, Member)> = self.script.pending.drain(..due).collect();
        let mut made = 0;
        for (finish, m) in ready {
            self.script.held.remove(&m);
            let stamp = self.stamp(m.0, now);
            let official = self.official();
            let city = m.0 == Source::City;
            let result_id = self.object_id(finish);
            let step_id = city.then(|| self.object_id(finish));
            let (_, results_host) = m.0.hosts();
            let Some(d) = self.dossier(m) else { continue };
            if is_end(d.status) {
                continue;
            }
            let result = self.catalogue.procedure(&d.procedure.code).map(|p| p.result.clone());
            let department = self.catalogue.procedure(&d.procedure.code).map(|p| p.department.clone());
            let old_updated = d.updated_at;
            let Some(d) = self.dossier_mut(m) else { continue };
            d.completed_at = Some(finish);
            if let Some(kind) = result {
                d.results.push(ResultDoc {
                    id: city.then_some(result_id),
                    url: format!("{results_host}/{}/{}.pdf", d.code, kind.code),
                    code: format!("{}-{}", kind.code, d.code),
                    name: kind.name,
                    electronic: true,
                });
            }
            let started = d.steps.last().map(|s| s.at);
            d.steps.push(Step {
                id: step_id,
                assignee: official,
                position: "Lãnh đạo phòng".to_owned(),
                department: department.unwrap_or_else(|| "Bộ phận chuyên môn".to_owned()),
                content: "Phê duyệt và ký kết quả giải quyết".to_owned(),
                started_at: started,
                at: finish,
                due: d.due_at,
                status: 9,
            });
            d.status = 9;
            d.updated_at = stamp.max(old_updated);
            self.reindex(m, Some(old_updated));
            made += 1;
        }
        self.changes_made += u64::from(made);
        made
    }

    /// For each of `codes` that is a member's code of a case, whether the portal's rule judges
    /// that case late at `now` on its authoritative member's own times (`ExpectedDossier::late`).
    /// Codes of no case (bulk records, which are cases of their own that never change, are not
    /// looked up) are left out.
    pub fn source_verdicts(&self, codes: &BTreeSet<String>, now: Timestamp) -> HashMap<String, bool> {
        let mut out = HashMap::new();
        if codes.is_empty() {
            return out;
        }
        for case in &self.cases {
            let wanted: Vec<&String> =
                case.iter().filter_map(|&m| self.dossier(m)).filter_map(|d| codes.get(&d.code)).collect();
            if wanted.is_empty() {
                continue;
            }
            let Some(auth) = self.authoritative(case).and_then(|m| self.dossier(m)) else { continue };
            let supplements: Vec<_> = auth.supplements.iter().map(|s| (Some(s.requested_at), s.received_at)).collect();
            let late = late_by_rule(auth.due_at, &supplements, is_end(auth.status), auth.ended_at(), now);
            for code in wanted {
                out.insert(code.clone(), late);
            }
        }
        out
    }
}
