//! Misbehaviour on demand for the six upstream systems: what the seeds report of ministry systems at
//! peak hours (slow, hanging, failing), and what a poller must survive to keep its promise (pages
//! served twice, records moving between pages, clocks that disagree), and what it needs a full sweep
//! for (records changed without their updated time moving).
//!
//! Every draw comes from one generator per system seeded from `SimOptions::seed`, and every request
//! draws the same number of values whatever is switched on, so a run with the same requests replays.
//! The world's change rounds draw from a second generator per system, for the same reason.
//! The portal is not affected by these: it has its own outage switch, and its own misbehaviour
//! ([`PortalFaults`]: throttling, short sessions, slow answers, dossiers it refuses).

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use axum::{
    Json,
    body::Bytes,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Shared, model::Source};

/// How one upstream system misbehaves. Probabilities are from 0 to 1, per request except where said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// A list or token request answers 500, 502 or 503.
    pub error_5xx: f64,
    /// A list or token request answers 429 with `Retry-After: 1`.
    pub throttle_429: f64,
    /// Extra latency on every list request, in real milliseconds.
    pub slow_ms: u64,
    /// A request never answers (it waits [`HANG`], or until the world stops).
    pub hang: f64,
    /// A 200 whose JSON body is cut in half.
    pub truncated: f64,
    /// A 200 carrying an HTML maintenance page instead of JSON.
    pub html_200: f64,
    /// A page request (not a walk's first) answers the walk's previous page again, verbatim.
    pub duplicate_page: f64,
    /// Before a page request (not a walk's first), a round of changes to this system's records:
    /// records move in the list order, so page boundaries shift under the walker.
    pub modify_during_walk: f64,
    /// The system stamps its changes with the world's time plus this many seconds.
    pub clock_skew_secs: i64,
    /// At each change round of the world (a tick, or `World::change_now`), one of this system's
    /// records, drawn at random, changes without its updated time moving (see
    /// `World::silent_change`): a change incremental polls by updated time do not look for.
    pub silent_change: f64,
}

impl Faults {
    /// Probabilities out of range are clamped: a typo in a scenario must not panic the world.
    pub fn clamped(mut self) -> Self {
        for p in [
            &mut self.error_5xx,
            &mut self.throttle_429,
            &mut self.hang,
            &mut self.truncated,
            &mut self.html_200,
            &mut self.duplicate_page,
            &mut self.modify_during_walk,
            &mut self.silent_change,
        ] {
            *p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        }
        self
    }
}

/// How the portal misbehaves, for the delivery tests: what a client must survive without losing,
/// duplicating or hammering. Its outage is a switch of its own (`World::set_portal_outage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalFaults {
    /// Share of calls (login or service) answered 429 with `Retry-After: retry_after_secs`. Until
    /// that time has passed every further call is answered 429 too, with the seconds left, and
    /// counted as a call that ignored the `Retry-After` (`SimStats::portal_early_calls`; and
    /// `portal_early_items` counts the refused items such calls carried again).
    pub throttle_429: f64,
    /// The `Retry-After` of a throttled answer, in seconds (at least 1).
    pub retry_after_secs: u64,
    /// Sessions issued from now on stay valid this long, in real milliseconds (0: the world's
    /// `SimOptions::portal_session_ttl`).
    pub session_ttl_ms: u64,
    /// `DongBoHoSoMC` answers only this many real milliseconds after it applied its items: a
    /// client that dies meanwhile never learns that the portal holds them.
    pub slow_ms: u64,
    /// Dossier codes the portal refuses for good, each with the field it names as invalid (as it
    /// does for a value its catalogue lacks): a permanent rejection, until the entry is removed.
    pub reject: BTreeMap<String, String>,
}

impl PortalFaults {
    /// A probability out of range is clamped and a zero `Retry-After` made 1, as for [`Faults`].
    pub fn clamped(mut self) -> Self {
        let p = self.throttle_429;
        self.throttle_429 = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.retry_after_secs = self.retry_after_secs.max(1);
        self
    }
}

/// How long a hanging request waits: longer than any client's timeout (the descriptors use 20–30 s).
pub const HANG: Duration = Duration::from_secs(300);

/// The names the fault counters are kept under (`SimStats::faults_fired`).
pub const KINDS: [&str; 8] = [
    "error_5xx",
    "throttle_429",
    "hang",
    "truncated",
    "html_200",
    "duplicate_page",
    "modify_during_walk",
    "silent_change",
];

/// The kind of request a fault may hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A token or login request.
    Auth,
    /// A list (page) request.
    List,
}

/// Which walk a page request belongs to, so that "the previous page" has a meaning.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The request's parameters other than its position (filter, page size).
    pub key: String,
    /// Whether this is the walk's first page: nothing was served before it.
    pub first: bool,
}

/// What the draws decided for one request, for the parts a handler carries out itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    modify: bool,
    duplicate: bool,
    html: bool,
    truncate: bool,
}

#[derive(Debug)]
struct SystemFaults {
    faults: Faults,
    rng: fastrand::Rng,
    /// The draws made at the world's change rounds, apart from the requests' own: rounds come on
    /// a real-time ticker, so sharing one stream would make the requests' draws depend on timing.
    round_rng: fastrand::Rng,
    /// The last page served per walk key: what a duplicated page repeats.
    walks: HashMap<String, Bytes>,
}

/// Walk memories kept per system before they are forgotten (a client walks a handful at a time).
const MAX_WALKS: usize = 256;

#[derive(Debug)]
pub struct FaultBook {
    systems: Vec<SystemFaults>,
    fired: std::collections::BTreeMap<String, u64>,
}

impl FaultBook {
    pub fn new(seed: u64) -> Self {
        let systems = Source::ALL
            .iter()
            .map(|s| {
                // Distinct streams per system, all from the one seed.
                let stream = seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(s.index() as u64 + 1));
                SystemFaults {
                    faults: Faults::default(),
                    rng: fastrand::Rng::with_seed(stream),
                    round_rng: fastrand::Rng::with_seed(stream.rotate_left(32) ^ 0x5111_e47c_4a49_e000),
                    walks: HashMap::new(),
                }
            })
            .collect();
        Self { systems, fired: KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect() }
    }

    pub fn set(&mut self, source: Source, faults: Faults) {
        self.systems[source.index()].faults = faults;
    }

    pub fn get(&self, source: Source) -> Faults {
        self.systems[source.index()].faults.clone()
    }

    pub fn fired(&self) -> std::collections::BTreeMap<String, u64> {
        self.fired.clone()
    }

    fn count(&mut self, kind: &str) {
        self.count_n(kind, 1);
    }

    pub fn count_n(&mut self, kind: &str, n: u64) {
        *self.fired.entry(kind.to_owned()).or_default() += n;
    }

    /// The systems whose `silent_change` fires at this change round. One draw per system whatever
    /// is switched on, so the stream does not depend on the settings.
    pub fn silent_draws(&mut self) -> Vec<Source> {
        let mut out = Vec::new();
        for (s, system) in Source::ALL.iter().zip(&mut self.systems) {
            if system.round_rng.f64() < system.faults.silent_change {
                out.push(*s);
            }
        }
        out
    }
}

/// The draws for one request, made all at once so that the stream of draws does not depend on
/// which faults are on.
struct Draw {
    hang: bool,
    error: Option<StatusCode>,
    throttle: bool,
    plan: Plan,
    slow: Duration,
}

fn draw(book: &mut FaultBook, source: Source, call: Call) -> Draw {
    let SystemFaults { faults: f, rng, .. } = &mut book.systems[source.index()];
    let mut roll = |p: f64| rng.f64() < p;
    let hang = roll(f.hang);
    let error = roll(f.error_5xx);
    let throttle = roll(f.throttle_429);
    let html = roll(f.html_200);
    let truncate = roll(f.truncated);
    let duplicate = roll(f.duplicate_page);
    let modify = roll(f.modify_during_walk);
    let which = rng.u8(..3);
    let list = call == Call::List;
    Draw {
        hang,
        error: error.then_some(match which {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }),
        throttle,
        plan: Plan { modify: modify && list, duplicate: duplicate && list, html, truncate },
        slow: if list { Duration::from_millis(f.slow_ms) } else { Duration::ZERO },
    }
}

/// What every list and token request of an upstream system goes through first. `Err` is the
/// answer to send instead of the real one (after any hang); `Ok` carries what the handler must
/// still do (see [`between_pages`] and [`answer`]).
pub async fn gate(shared: &Shared, source: Source, call: Call) -> Result<Plan, Response> {
    let d = draw(&mut shared.lock_faults(), source, call);
    if !d.slow.is_zero() {
        tokio::time::sleep(d.slow).await;
    }
    if d.hang {
        shared.lock_faults().count("hang");
        let mut stopped = shared.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(HANG) => {}
            // Also ends when the world is dropped: a hanging request must not hold up shutdown.
            _ = stopped.wait_for(|s| *s) => {}
        }
        return Err(html(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out"));
    }
    if let Some(status) = d.error {
        shared.lock_faults().count("error_5xx");
        return Err(match status {
            StatusCode::INTERNAL_SERVER_ERROR => (
                status,
                Json(json!({
                    "status": 500,
                    "error": "Internal Server Error",
                    "message": "Lỗi hệ thống, vui lòng thử lại sau",
                })),
            )
                .into_response(),
            StatusCode::BAD_GATEWAY => html(status, "502 Bad Gateway"),
            _ => html(status, "503 Service Temporarily Unavailable"),
        });
    }
    if d.throttle {
        shared.lock_faults().count("throttle_429");
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(json!({
                "status": 429,
                "error": "Too Many Requests",
                "message": "Vượt quá số lượng yêu cầu cho phép, vui lòng thử lại sau 1 giây",
            })),
        )
            .into_response());
    }
    Ok(d.plan)
}

/// An nginx-style error page, as a proxy in front of a failing system answers.
fn html(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// The maintenance page some systems answer with a 200 while they are down.
const MAINTENANCE: &str = "<!DOCTYPE html>\n<html lang=\"vi\">\n<head><meta charset=\"utf-8\"><title>Thông báo bảo trì\
</title></head>\n<body>\n<h1>Hệ thống đang bảo trì</h1>\n<p>Hệ thống đang được nâng cấp, bảo trì. Quý khách vui lòng \
quay lại sau. Xin cảm ơn!</p>\n</body>\n</html>\n";

/// Runs the change round a plan drew, if this page is not its walk's first: between the previous
/// page and this one, records of the system move.
pub fn between_pages(shared: &Shared, source: Source, plan: &Plan, walk: &Walk) {
    if plan.modify && !walk.first {
        shared.lock_faults().count("modify_during_walk");
        shared.change_round(Some(source));
    }
}

/// Where a page's records go in its answer (see `Upstream::page_json`): they are serialised
/// straight into the answer rather than built as JSON values first.
pub const RECORDS: &str = "\u{0}records\u{0}";

/// The 200 answer to a token request, as the plan has it (see [`answer`]).
pub fn answer_json(shared: &Shared, source: Source, plan: &Plan, body: &Value) -> Response {
    answer(shared, source, plan, None, serde_json::to_vec(body).unwrap_or_default())
}

/// The 200 answer to a list or token request, as the plan has it: the body, or the walk's previous
/// page again, or an HTML page, or the body cut in half.
pub fn answer(shared: &Shared, source: Source, plan: &Plan, walk: Option<&Walk>, body: Vec<u8>) -> Response {
    let mut bytes = Bytes::from(body);
    let mut book = shared.lock_faults();
    if let Some(walk) = walk {
        let walks = &mut book.systems[source.index()].walks;
        match walks.get(&walk.key) {
            Some(previous) if plan.duplicate && !walk.first => {
                bytes = previous.clone();
                book.count("duplicate_page");
            }
            _ => {
                if walks.len() >= MAX_WALKS {
                    walks.clear();
                }
                walks.insert(walk.key.clone(), bytes.clone());
            }
        }
    }
    if plan.html {
        book.count("html_200");
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], MAINTENANCE).into_response();
    }
    if plan.truncate {
        book.count("truncated");
        bytes = bytes.slice(..bytes.len() / 2);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
