//! Misbehaviour on demand: each kind observable from a client, switched at runtime (API or HTTP) or
//! from the start, and replayed by the seed.

use std::collections::BTreeSet;

use axum::body::Bytes;
use reqwest::header::HeaderMap;
use serde_json::json;

use super::*;
use crate::sim::{Faults, SystemInfo, mae, moc, mof, mps};

fn system(w: &World, name: &str) -> SystemInfo {
    w.systems().into_iter().find(|s| s.name == name).unwrap()
}

async fn raw(req: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Bytes) {
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap())
}

fn moc_page(c: &Client, w: &World, offset: usize, limit: usize) -> reqwest::RequestBuilder {
    let s = system(w, "moc");
    c.get(format!("{}{}", s.url, moc::LIST_PATH))
        .bearer_auth(&s.credentials["token"])
        .query(&[("offset", offset), ("limit", limit)])
}

fn mps_page(c: &Client, w: &World, page: usize, size: usize) -> reqwest::RequestBuilder {
    let s = system(w, "mps");
    c.get(format!("{}{}", s.url, mps::LIST_PATH))
        .header("apikey", &s.credentials["api_key"])
        .query(&[("trang", page), ("soLuong", size)])
}

fn mae_token_request(c: &Client, w: &World) -> reqwest::RequestBuilder {
    let s = system(w, "mae");
    let form = [
        ("grant_type", "password"),
        ("client_id", s.credentials["client_id"].as_str()),
        ("username", s.credentials["username"].as_str()),
        ("password", s.credentials["password"].as_str()),
    ];
    c.post(format!("{}{}", s.url, mae::TOKEN_PATH)).form(&form)
}

fn mof_login_request(c: &Client, w: &World) -> reqwest::RequestBuilder {
    let s = system(w, "mof");
    let body = json!({ "tenDangNhap": s.credentials["username"], "matKhau": s.credentials["password"] });
    c.post(format!("{}{}", s.url, mof::LOGIN_PATH)).json(&body)
}

#[tokio::test]
async fn errors_and_throttling_answer_with_their_status() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    w.set_faults("moc", Faults { error_5xx: 1.0, ..Faults::default() });
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        seen.insert(raw(moc_page(&c, &w, 0, 5)).await.0.as_u16());
    }
    assert_eq!(seen, BTreeSet::from([500, 502, 503]));
    // Token requests fail too.
    w.set_faults("mae", Faults { error_5xx: 1.0, ..Faults::default() });
    assert!(raw(mae_token_request(&c, &w)).await.0.is_server_error());

    w.set_faults("mps", Faults { throttle_429: 1.0, ..Faults::default() });
    let (status, headers, _) = raw(mps_page(&c, &w, 1, 5)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");

    let fired = w.stats().faults_fired;
    assert_eq!(fired["error_5xx"], 31);
    assert_eq!(fired["throttle_429"], 1);
    // Cleared, the systems answer again.
    for name in ["moc", "mae", "mps"] {
        w.set_faults(name, Faults::default());
    }
    assert_eq!(raw(moc_page(&c, &w, 0, 5)).await.0, StatusCode::OK);
    assert_eq!(raw(mae_token_request(&c, &w)).await.0, StatusCode::OK);
    assert_eq!(raw(mps_page(&c, &w, 1, 5)).await.0, StatusCode::OK);
    w.shutdown().await;
}

#[tokio::test]
async fn slow_answers_and_hangs_that_end_with_the_world() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    w.set_faults("mps", Faults { slow_ms: 300, ..Faults::default() });
    let started = std::time::Instant::now();
    assert_eq!(raw(mps_page(&c, &w, 1, 5)).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

    w.set_faults("mof", Faults { hang: 1.0, ..Faults::default() });
    let impatient = Client::builder().timeout(Duration::from_millis(400)).build().unwrap();
    let err = mof_login_request(&impatient, &w).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(w.stats().faults_fired["hang"], 1);
    // A request still hanging does not hold the world up when it stops.
    let pending = tokio::spawn(mof_login_request(&c, &w).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), w.shutdown()).await.expect("shutdown ends hanging requests");
    match pending.await.unwrap() {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
}

#[tokio::test]
async fn truncated_and_html_bodies_are_200s_that_do_not_parse() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (status, _, full) = raw(moc_page(&c, &w, 0, 10)).await;
    assert_eq!(status, StatusCode::OK);
    w.set_faults("moc", Faults { truncated: 1.0, ..Faults::default() });
    let (status, headers, cut) = raw(moc_page(&c, &w, 0, 10)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(cut.len(), full.len() / 2);
    assert_eq!(&full[..cut.len()], &cut[..], "the same answer, cut in half");
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    // A token answer can be cut too.
    w.set_faults("mae", Faults { truncated: 1.0, ..Faults::default() });
    let (status, _, cut) = raw(mae_token_request(&c, &w)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&cut).is_err());

    w.set_faults("mps", Faults { html_200: 1.0, ..Faults::default() });
    let (status, headers, body) = raw(mps_page(&c, &w, 1, 5)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("<html") && text.contains("Hệ thống đang bảo trì"), "{text}");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    let fired = w.stats().faults_fired;
    assert_eq!((fired["truncated"], fired["html_200"]), (2, 1));
    w.shutdown().await;
}

#[tokio::test]
async fn a_duplicated_page_repeats_the_previous_page_of_its_walk() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    w.set_faults("moc", Faults { duplicate_page: 1.0, ..Faults::default() });
    let (_, _, first) = raw(moc_page(&c, &w, 0, 5)).await;
    let (status, _, second) = raw(moc_page(&c, &w, 5, 5)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second, first, "page two answers page one again");
    // Another walk (another page size) has its own previous page; a first page is never repeated.
    let (_, _, other_first) = raw(moc_page(&c, &w, 0, 6)).await;
    assert_ne!(other_first, first);
    assert_eq!(raw(moc_page(&c, &w, 6, 6)).await.2, other_first);
    w.set_faults("moc", Faults::default());
    let (_, _, real_second) = raw(moc_page(&c, &w, 5, 5)).await;
    assert_ne!(real_second, first);
    let offsets = |b: &Bytes| serde_json::from_slice::<Value>(b).unwrap()["data"]["offset"].clone();
    assert_eq!((offsets(&first), offsets(&real_second)), (json!(0), json!(5)));
    assert_eq!(w.stats().faults_fired["duplicate_page"], 2);

    // Token pages too: the next token of a repeated page leads to the same page again.
    let token_body = |b: Bytes| serde_json::from_slice::<Value>(&b).unwrap();
    let (_, _, login) = raw(mae_token_request(&c, &w)).await;
    let token = token_body(login)["access_token"].as_str().unwrap().to_owned();
    let search =
        |body: Value| c.post(format!("{}{}", system(&w, "mae").url, mae::SEARCH_PATH)).bearer_auth(&token).json(&body);
    w.set_faults("mae", Faults { duplicate_page: 1.0, ..Faults::default() });
    let (_, _, p1) = raw(search(json!({ "pageSize": 4 }))).await;
    let next = token_body(p1.clone())["nextPageToken"].clone();
    let (_, _, p2) = raw(search(json!({ "pageSize": 4, "pageToken": next }))).await;
    assert_eq!(p2, p1);
    w.shutdown().await;
}

#[tokio::test]
async fn records_move_between_the_pages_of_a_walk() {
    let w = World::start(opts()).await.unwrap();
    w.pause_changes();
    let c = client();
    let ids = |b: &Bytes| -> Vec<String> {
        let v: Value = serde_json::from_slice(b).unwrap();
        v["ketQua"]["duLieu"]["hoSo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["HoSoID"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = w.stats().changes_made;
    w.set_faults("mps", Faults { modify_during_walk: 1.0, ..Faults::default() });
    let mut naive = Vec::new();
    let mut pages = 0;
    for page in 1.. {
        let (status, _, body) = raw(mps_page(&c, &w, page, 5)).await;
        assert_eq!(status, StatusCode::OK);
        let got = ids(&body);
        if got.is_empty() {
            break;
        }
        pages += 1;
        naive.extend(got);
    }
    let stats = w.stats();
    // A change round before every page but the first, even while paused: it was asked for.
    assert_eq!(stats.faults_fired["modify_during_walk"], pages);
    assert!(stats.changes_made > before);
    w.set_faults("mps", Faults::default());
    let (_, _, stable) = raw(mps_page(&c, &w, 1, 1000)).await;
    let stable: BTreeSet<String> = ids(&stable).into_iter().collect();
    let walked: BTreeSet<String> = naive.iter().cloned().collect();
    let missed = stable.difference(&walked).count();
    let repeated = naive.len() - walked.len();
    assert!(missed + repeated > 0, "the pages shifted under the walk ({missed} missed, {repeated} repeated)");
    w.shutdown().await;
}

#[tokio::test]
async fn a_skewed_clock_stamps_its_changes_off_the_worlds_time() {
    let w = World::start(opts()).await.unwrap();
    w.pause_changes();
    let c = client();
    // Over HTTP, as a test driving a world in another process would.
    let r = c
        .post(format!("{}/_sim/faults?system=moc", w.portal_url))
        .json(&json!({ "clock_skew_secs": 3600 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let all: std::collections::BTreeMap<String, Faults> =
        c.get(format!("{}/_sim/faults", w.portal_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all["moc"].clock_skew_secs, 3600);
    let now = w.now();
    assert!(w.shared.change_round(Some(Source::Moc)) > 0);
    let (_, _, body) = raw(moc_page(&c, &w, 0, 1000)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    let newest = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| moc::parse_date("updatedAt", r["updatedAt"].as_str().unwrap()).unwrap())
        .max()
        .unwrap();
    let ahead = newest.duration_since(now).as_secs();
    assert!((3590..3700).contains(&ahead), "stamped {ahead} s ahead of the world");
    // Unknown systems and fields are refused; the portal has no faults (it has its outage switch).
    for (system, body) in [("portal", json!({})), ("moc", json!({ "eror_5xx": 1.0 }))] {
        let r = c.post(format!("{}/_sim/faults?system={system}", w.portal_url)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    w.shutdown().await;
}

/// The status codes a run of requests gets from a world with half its answers failing.
async fn statuses(seed: u64) -> Vec<u16> {
    let mut o = opts();
    o.seed = seed;
    o.faults.insert("mps".to_owned(), Faults { error_5xx: 0.5, throttle_429: 0.2, ..Faults::default() });
    let w = World::start(o).await.unwrap();
    let c = client();
    let mut out = Vec::new();
    for page in 1..=24 {
        out.push(raw(mps_page(&c, &w, page % 4 + 1, 5)).await.0.as_u16());
    }
    w.shutdown().await;
    out
}

#[tokio::test]
async fn faults_from_the_options_replay_with_the_seed() {
    let (a, b) = (statuses(7).await, statuses(7).await);
    assert_eq!(a, b, "the same seed, the same answers");
    assert!(a.contains(&200) && a.contains(&429) && a.iter().any(|s| *s >= 500), "{a:?}");
    assert_ne!(statuses(8).await, a, "another seed, other answers");
    let mut o = opts();
    o.faults.insert("ministry".to_owned(), Faults::default());
    assert!(World::start(o).await.unwrap_err().to_string().contains("unknown system"));
}

/// `(native id, status, updated time)` of one system's records, in its list order.
fn listing(w: &World, source: Source) -> Vec<(String, u8, Timestamp)> {
    let up = w.shared.lock_upstream();
    let all = up.ascending(source, 0, usize::MAX);
    all.iter()
        .filter_map(|r| match r {
            super::super::world::Record::Good(d) => Some((d.native_id.clone(), d.status, d.updated_at)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_silent_change_moves_the_truth_but_neither_the_updated_time_nor_the_list_order() {
    let w = World::start(opts()).await.unwrap();
    let before = listing(&w, Source::Moc);
    let changed = w.silent_change("moc", 3).unwrap();
    assert_eq!(changed.len(), 3);
    let after = listing(&w, Source::Moc);
    let ids = |l: &[(String, u8, Timestamp)]| l.iter().map(|(id, _, t)| (id.clone(), *t)).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before), "same records, same updated times, same order");
    let expected = w.expected_portal();
    let updated = |c: &crate::sim::SilentChange| before.iter().find(|r| r.0 == c.native_id).unwrap().2;
    for c in &changed {
        assert_eq!(c.system, "moc");
        assert_ne!(c.from, c.to);
        assert!(after.contains(&(c.native_id.clone(), c.to, updated(c))));
        assert_eq!(expected[&c.portal_code].status, c.to, "the truth moved: {c:?}");
    }
    // The records updated longest ago go first.
    assert!(changed.windows(2).all(|p| updated(&p[0]) <= updated(&p[1])));
    assert_eq!(w.stats().faults_fired["silent_change"], 3);

    // Over HTTP, for a world in another process; the city system has only two records it is
    // authoritative for and that can still move, so it changes only those. Unknown systems are
    // refused.
    let c = client();
    let r = c.post(format!("{}/_sim/silent?system=city&n=5", w.portal_url)).send().await.unwrap();
    assert!(r.status().is_success());
    let over_http: Vec<crate::sim::SilentChange> = r.json().await.unwrap();
    assert_eq!(over_http.len(), 2);
    assert!(over_http.iter().all(|c| c.system == "city" && w.expected_portal()[&c.portal_code].status == c.to));
    let r = c.post(format!("{}/_sim/silent?system=portal&n=2", w.portal_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(w.silent_change("ministry", 1).is_err());
    w.shutdown().await;
}

#[tokio::test]
async fn silent_changes_drawn_at_change_rounds_leave_the_updated_time_alone() {
    assert_eq!(Faults { silent_change: 7.0, ..Faults::default() }.clamped().silent_change, 1.0);
    assert_eq!(Faults { silent_change: f64::NAN, ..Faults::default() }.clamped().silent_change, 0.0);
    let w = World::start(opts()).await.unwrap();
    w.set_faults("mof", Faults { silent_change: 1.0, ..Faults::default() });
    let before = listing(&w, Source::Mof);
    for _ in 0..3 {
        w.change_now();
    }
    let after = listing(&w, Source::Mof);
    // A status that moved while its updated time stayed: one per round.
    let silent = after.iter().filter(|a| before.iter().any(|b| b.0 == a.0 && b.2 == a.2 && b.1 != a.1)).count();
    assert!((1..=3).contains(&silent), "{silent} records changed silently");
    assert_eq!(w.stats().faults_fired["silent_change"], 3);
    // Paused, the rounds of the ticker change nothing, silently or not.
    w.pause_changes();
    let paused = w.stats().changes_made;
    assert_eq!(w.shared.round(false), 0);
    assert_eq!(w.stats().changes_made, paused);
    w.shutdown().await;
}
