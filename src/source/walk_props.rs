//! Property: whatever happens upstream during and between polls, after a final poll with no
//! concurrent change the store holds exactly the latest version of every record the source holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::fetch::{Fetch, PageAnswer, PageRequest, Position};
use super::{PollReport, Poller};
use crate::clock::Clock;
use crate::core::descriptor::Descriptor;
use crate::core::mapping::Mapper;
use crate::net::Failure;
use crate::store::ingest::{MergeCtx, register_sources};
use crate::store::{Writer, open_writer, sha256_hex};

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(Mutex<Timestamp>);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl ManualClock {
    fn tick(&self, secs: i64) {
        let mut t = self.0.lock().unwrap();
        *t = t.checked_add(SignedDuration::from_secs(secs)).unwrap();
    }
}

#[derive(Debug, Clone)]
enum Change {
    Insert,
    /// Update the n-th record (modulo the count): it moves to the newest end.
    Update(usize),
    /// Let time pass (0 keeps timestamps equal).
    Tick(i64),
    /// The next page request is answered with the previous answer again (a duplicated page).
    RepeatPage,
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Page,
    Offset,
    Token,
}

struct Upstream {
    records: BTreeMap<u32, (Timestamp, u32)>,
    next_id: u32,
    /// Change batches, one applied before each page request.
    pending: std::collections::VecDeque<Vec<Change>>,
    clock: Arc<ManualClock>,
    skew: SignedDuration,
    repeat_next: bool,
    last_answer: Option<PageAnswer>,
}

impl Upstream {
    fn apply(&mut self, batch: &[Change]) {
        for c in batch {
            let stamp = self.clock.now().checked_add(self.skew).unwrap();
            match c {
                Change::Insert => {
                    self.records.insert(self.next_id, (stamp, 0));
                    self.next_id += 1;
                }
                Change::Update(n) if !self.records.is_empty() => {
                    let id = *self.records.keys().nth(n % self.records.len()).unwrap();
                    let e = self.records.get_mut(&id).unwrap();
                    *e = (stamp, e.1 + 1);
                }
                Change::Update(_) => {}
                Change::Tick(s) => self.clock.tick(*s),
                Change::RepeatPage => self.repeat_next = true,
            }
        }
    }

    fn render(id: u32, updated: Timestamp, version: u32) -> Value {
        json!({"id": id.to_string(), "code": format!("C-{id}"), "proc": "1.000001",
               "received": "2026-01-05T01:00:00Z", "updated": updated.to_string(), "status": "A", "v": version})
    }
}

struct FakeFetch {
    up: Arc<Mutex<Upstream>>,
    style: Style,
    asc: bool,
    size: usize,
}

impl Fetch for FakeFetch {
    async fn fetch(&mut self, req: &PageRequest) -> Result<PageAnswer, Failure> {
        let mut up = self.up.lock().unwrap();
        if let Some(batch) = up.pending.pop_front() {
            up.apply(&batch);
        }
        if std::mem::take(&mut up.repeat_next)
            && let Some(last) = up.last_answer.clone()
        {
            return Ok(last);
        }
        let mut rows: Vec<(Timestamp, u32, u32)> = up
            .records
            .iter()
            .map(|(id, (t, v))| (*t, *id, *v))
            .filter(|(t, _, _)| !self.asc || req.since.is_none_or(|s| *t >= s))
            .collect();
        rows.sort();
        if !self.asc {
            rows.reverse();
        }
        let offset = match &req.position {
            Position::First => 0,
            Position::Page(n) => *n as usize * self.size,
            Position::Offset(o) => *o as usize,
            Position::Token(t) => t.parse().unwrap(),
            Position::Link(_) => unreachable!("not used here"),
        };
        let end = (offset + self.size).min(rows.len());
        let records =
            rows.get(offset..end).unwrap_or(&[]).iter().map(|(t, id, v)| Upstream::render(*id, *t, *v)).collect();
        // Like HttpFetch: page and offset continuations follow from the request; a token is the
        // system's own.
        let next = (end < rows.len()).then(|| match (self.style, &req.position) {
            (Style::Page, Position::Page(n)) => Position::Page(n + 1),
            (Style::Page, _) => Position::Page(1),
            (Style::Offset, _) => Position::Offset((offset + self.size) as u64),
            (Style::Token, _) => Position::Token(end.to_string()),
        });
        let answer = PageAnswer { records, texts: None, next };
        up.last_answer = Some(answer.clone());
        Ok(answer)
    }
}

fn descriptor(asc: bool) -> Descriptor {
    let order = if asc { "updated_asc\"\nupdated_since_param = \"since" } else { "updated_desc" };
    Descriptor::parse(&format!(
        r#"
name = "fake"
title = "fake"
kind = "city"
[auth]
style = "none"
[list]
path = "/x"
page_size = 10
[pagination]
style = "page_number"
order = "{order}"
page_param = "p"
size_param = "s"
[response]
records = "items"
[dates]
format = "rfc3339"
[fields]
native_id = "id"
code = "code"
procedure_code = "proc"
received_at = "received"
updated_at = "updated"
status = "status"
[status_map]
"A" = 2
"#
    ))
    .unwrap()
}

/// A new store with the fake source registered, its writer, and a clock at a fixed start.
fn fresh_store() -> (tempfile::TempDir, Writer, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("t.db")).unwrap();
    register_sources(
        &conn,
        &[("fake".into(), "fake".into(), crate::core::descriptor::SystemKind::City, crate::config::PortalMode::Off)],
    )
    .unwrap();
    // The writer thread ends when the last handle is dropped, at the end of the case.
    let (writer, _thread) = Writer::start(conn);
    let clock = Arc::new(ManualClock(Mutex::new("2026-03-09T01:00:00Z".parse().unwrap())));
    (dir, writer, clock)
}

/// The poller under test, walking the fake source with a 300 s lookback.
fn poller(fetch: FakeFetch, clock: &Arc<ManualClock>, writer: &Writer) -> Poller<FakeFetch> {
    let asc = fetch.asc;
    Poller::new(
        "fake",
        Mapper::new(descriptor(asc)),
        fetch,
        300,
        clock.clone(),
        writer.clone(),
        Arc::new(MergeCtx::default()),
    )
}

fn change() -> impl Strategy<Value = Change> {
    // Time moves in steps comparable to the 300 s lookback, so a history spans many lookback windows
    // (a walk bug cannot hide behind re-reading everything); a zero step keeps timestamps equal.
    prop_oneof![
        3 => Just(Change::Insert),
        3 => (0usize..1000).prop_map(Change::Update),
        2 => prop_oneof![Just(0i64), Just(1), Just(90), Just(400)].prop_map(Change::Tick),
        1 => Just(Change::RepeatPage),
    ]
}

fn run_case(
    initial: usize,
    batches: Vec<Vec<Change>>,
    size: usize,
    style: Style,
    asc: bool,
    skew: i64,
    polls: usize,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (_dir, writer, clock) = fresh_store();
        let up = Arc::new(Mutex::new(Upstream {
            records: BTreeMap::new(),
            next_id: 0,
            pending: batches.into_iter().collect(),
            clock: clock.clone(),
            skew: SignedDuration::from_secs(skew),
            repeat_next: false,
            last_answer: None,
        }));
        up.lock().unwrap().apply(&vec![Change::Insert; initial]);
        let mut poller = poller(FakeFetch { up: up.clone(), style, asc, size }, &clock, &writer);
        let stop = CancellationToken::new();
        // Polls while the source keeps changing (a poll may fail, as in the daemon: the next one
        // tries again), then one with nothing changing, which must succeed.
        // A repeated page is "the previous page of the same walk": nothing to repeat at a walk's start.
        let fresh_walk = || up.lock().unwrap().last_answer = None;
        for _ in 0..polls {
            fresh_walk();
            let _ = poller.poll(&stop, false).await;
            clock.tick(700);
        }
        while !up.lock().unwrap().pending.is_empty() {
            fresh_walk();
            let _ = poller.poll(&stop, false).await;
            clock.tick(700);
        }
        fresh_walk();
        let last: PollReport = poller.poll(&stop, false).await.map_err(|e| format!("{e:#}"))?;
        if !last.complete {
            return Err("the final poll did not complete".into());
        }
        let want: BTreeMap<String, String> = up
            .lock()
            .unwrap()
            .records
            .iter()
            .map(|(id, (t, v))| (id.to_string(), sha256_hex(Upstream::render(*id, *t, *v).to_string().as_bytes())))
            .collect();
        let got: BTreeMap<String, String> = writer
            .call(|c| {
                let mut s = c.prepare("SELECT native_id, raw_hash FROM source_records")?;
                let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap();
        if want != got {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let stale: Vec<_> =
                want.iter().filter(|(k, h)| got.get(*k).is_some_and(|g| g != *h)).map(|(k, _)| k).collect();
            return Err(format!("store differs from source: missing {missing:?}, stale {stale:?}"));
        }
        Ok(())
    })
}

/// The shrunk case that found two holes: a stale repeat of the previous page answering a keyset
/// restart (its continuation skipped the true first pages), and a record of a run's first page
/// moving on before the run's second page (checked only from the third page on).
#[test]
fn regression_a_repeated_page_after_records_moved() {
    let batches = vec![
        vec![Change::Tick(1), Change::Insert, Change::Insert, Change::Insert],
        vec![Change::Update(211)],
        vec![Change::Update(713), Change::Tick(1), Change::Update(50)],
        vec![Change::RepeatPage, Change::Insert, Change::Update(59), Change::Update(40)],
        vec![Change::Update(452)],
        vec![],
        vec![],
        vec![],
        vec![Change::Update(469)],
    ];
    assert_eq!(run_case(7, batches, 4, Style::Page, true, 0, 1), Ok(()));
}

/// The shrunk case that found the shifting-run bug: a run of equal timestamps longer than a page,
/// records of the run updated while the walk pages through it by position.
#[test]
fn regression_a_run_of_equal_timestamps_disturbed_during_the_walk() {
    let batches = vec![
        vec![Change::Insert],
        vec![Change::Tick(1), Change::Insert],
        vec![],
        vec![],
        vec![Change::Insert],
        vec![],
        vec![Change::Insert],
        vec![Change::Update(74), Change::Update(399)],
        vec![],
        vec![Change::Insert, Change::Update(780)],
        vec![Change::Insert, Change::Update(73)],
        vec![Change::Insert, Change::Update(258), Change::Update(87), Change::Update(181)],
        vec![Change::Insert, Change::Update(674), Change::Update(568)],
        vec![],
        vec![Change::Tick(1)],
        vec![Change::Insert, Change::Update(500)],
        vec![],
        vec![],
        vec![Change::Insert],
        vec![],
        vec![Change::Insert, Change::Insert],
        vec![Change::Insert],
        vec![],
        vec![Change::Insert, Change::Insert],
        vec![],
        vec![Change::Update(73)],
    ];
    assert_eq!(run_case(53, batches, 4, Style::Page, true, 0, 1), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_store_ends_equal_to_the_source(
        initial in 0usize..60,
        batches in prop::collection::vec(prop::collection::vec(change(), 0..6), 0..40),
        size in 1usize..12,
        style in prop_oneof![Just(Style::Page), Just(Style::Offset), Just(Style::Token)],
        asc in any::<bool>(),
        skew in -120i64..120,
        polls in 1usize..4,
    ) {
        prop_assert_eq!(run_case(initial, batches, size, style, asc, skew, polls), Ok(()));
    }
}

/// A record changed upstream without its updated time moving is invisible to incremental polls;
/// the full sweep catches it.
#[test]
fn a_full_sweep_catches_a_change_the_updated_time_hides() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (_dir, writer, clock) = fresh_store();
        let up = Arc::new(Mutex::new(Upstream {
            records: BTreeMap::new(),
            next_id: 0,
            pending: Default::default(),
            clock: clock.clone(),
            skew: SignedDuration::ZERO,
            repeat_next: false,
            last_answer: None,
        }));
        up.lock().unwrap().apply(&vec![Change::Insert; 30]);
        let mut poller = poller(FakeFetch { up: up.clone(), style: Style::Page, asc: true, size: 7 }, &clock, &writer);
        let stop = CancellationToken::new();
        let stored_hash = |id: u32| {
            let w = writer.clone();
            async move {
                w.call(move |c| {
                    Ok(c.query_row(
                        "SELECT raw_hash FROM source_records WHERE native_id = ?1",
                        [id.to_string()],
                        |r| r.get::<_, String>(0),
                    )?)
                })
                .await
                .unwrap()
            }
        };
        poller.poll(&stop, false).await.unwrap();
        // Two hours later newer records arrive, so the cursor moves well past the first ones.
        clock.tick(7200);
        up.lock().unwrap().apply(&vec![Change::Insert; 5]);
        clock.tick(600);
        poller.poll(&stop, false).await.unwrap();
        // Record 5 changes upstream, keeping its old updated time (a system that forgets to bump it).
        let want = {
            let mut u = up.lock().unwrap();
            let e = u.records.get_mut(&5).unwrap();
            e.1 += 1;
            let (t, v) = *e;
            sha256_hex(Upstream::render(5, t, v).to_string().as_bytes())
        };
        clock.tick(60);
        poller.poll(&stop, false).await.unwrap();
        assert_ne!(stored_hash(5).await, want, "an incremental poll cannot see it");
        let report = poller.poll(&stop, true).await.unwrap();
        assert!(report.complete && report.records >= 35);
        assert_eq!(stored_hash(5).await, want, "the full sweep does");
    });
}

/// A source whose "updated since" filter, like its dates, has whole seconds (the Ministry of
/// Justice's `capNhatTu`, "yyyy-MM-dd HH:mm:ss"): asked for records since 00:50:00.5, which the
/// request can only say as 00:50:00, it rightly answers those updated at 00:50:00 too.
struct WholeSecondFetch {
    records: Vec<(Timestamp, u32)>,
}

impl Fetch for WholeSecondFetch {
    async fn fetch(&mut self, req: &PageRequest) -> Result<PageAnswer, Failure> {
        let from = req.since.map(|s| Timestamp::from_second(s.as_second()).unwrap());
        let mut rows: Vec<&(Timestamp, u32)> =
            self.records.iter().filter(|(t, _)| from.is_none_or(|f| *t >= f)).collect();
        rows.sort();
        let utc = jiff::tz::TimeZone::UTC;
        let records = rows
            .iter()
            .map(|(t, id)| {
                let updated = t.to_zoned_datetime(utc.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string();
                json!({"id": id.to_string(), "code": format!("C-{id}"), "proc": "1.000001",
                       "received": "2026-01-05 01:00:00", "updated": updated, "status": "A"})
            })
            .collect();
        Ok(PageAnswer { records, texts: None, next: None })
    }
}

/// Found by `bench delivery` (the Ministry of Justice's poller failed every poll for hours): the
/// cursor is capped at the poll's start minus the lookback, so it carries a fraction of a second;
/// the filter sent drops it (the descriptor's date format has whole seconds), and a record updated
/// in that very second is then judged "outside the filter". Three asks later the poll fails, and
/// every poll after it, until that record changes again. The filter is now judged at its own
/// granularity (`fetch::since_filter`).
#[test]
fn regression_a_record_in_the_second_the_filter_was_rounded_to() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (_dir, writer, clock) = fresh_store();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        *clock.0.lock().unwrap() = at("2026-03-09T01:00:00.5Z");
        let fetch =
            WholeSecondFetch { records: vec![(at("2026-03-09T00:50:00Z"), 1), (at("2026-03-09T00:59:00Z"), 2)] };
        let text = include_str!("../../adapters/moj.toml");
        let mut d = descriptor(true);
        d.dates = Descriptor::parse(text).unwrap().dates;
        d.dates.time_zone = "UTC".into();
        let ctx = Arc::new(MergeCtx::default());
        let mut poller = Poller::new("fake", Mapper::new(d), fetch, 300, clock.clone(), writer.clone(), ctx);
        let stop = CancellationToken::new();
        poller.poll(&stop, false).await.unwrap();
        // The cursor is now 00:55:00.5 (the poll's start minus the lookback); the next poll asks
        // since 00:50:00.5, sent as "2026-03-09 00:50:00".
        clock.tick(10);
        let report = poller.poll(&stop, false).await.map_err(|e| format!("{e:#}"));
        match report {
            Ok(r) => assert!(r.complete),
            Err(e) => panic!("the second poll fails, though the source did as asked: {e}"),
        }
    });
}
