//! The simulated world over real HTTP on loopback: each system's dialect, the portal contract, the
//! change ticker and the expected truth for both kinds of dual-running pair.

use std::{path::PathBuf, time::Duration};

use jiff::{SignedDuration, Timestamp};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::{
    AUTH_PATH, INTEGRATION_PATH, SimOptions, World, fixtures_start,
    model::Source,
    portal::{self, format_time},
};
use crate::clock::SimClock;

fn opts() -> SimOptions {
    let mut o = SimOptions::demo(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        SimClock::starting_now(fixtures_start(), 60.0),
    );
    // Tests drive changes themselves unless they are about the ticker.
    o.tick = Duration::ZERO;
    o
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn get_json(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// City (iGate)
// ---------------------------------------------------------------------------------------------

async fn city_page(c: &Client, w: &World, page: usize, size: usize) -> (StatusCode, Value) {
    get_json(c.get(format!("{}/pa/dossier/search", w.city_url)).header("X-API-Key", "city-demo-key").query(&[
        ("page", page.to_string()),
        ("size", size.to_string()),
        ("sort", "updatedDate,desc".into()),
    ]))
    .await
}

#[tokio::test]
async fn city_requires_its_api_key() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let url = format!("{}/pa/dossier/search", w.city_url);
    let (status, body) = get_json(c.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = get_json(c.get(&url).header("X-API-Key", "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = city_page(&c, &w, 0, 201).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "pages are at most 200");
    w.shutdown().await;
}

#[tokio::test]
async fn city_pages_newest_first_with_totals() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let total = w.stats().city_records;
    let size = 25;
    let mut seen = Vec::new();
    let mut page = 0;
    loop {
        let (status, body) = city_page(&c, &w, page, size).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["totalElements"], total);
        assert_eq!(body["totalPages"], total.div_ceil(size));
        assert_eq!(body["number"], page);
        assert_eq!(body["size"], size);
        for r in body["content"].as_array().unwrap() {
            let updated: Timestamp = r["updatedDate"].as_str().unwrap().parse().unwrap();
            seen.push((updated, r["id"].as_str().unwrap().to_owned()));
        }
        if body["last"].as_bool().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|p| p[0] > p[1]), "sorted by updatedDate then id, descending, no repeats");
    // The dialect: iGate status ids and ISO dates with milliseconds.
    let (_, body) = city_page(&c, &w, 0, 2).await;
    let (newest, second) = (&body["content"][0], &body["content"][1]);
    // The fixtures' newest city record is the one with an unknown status, served as recorded.
    let quarantined = (String::from("city"), newest["id"].as_str().unwrap().to_owned());
    assert!(w.expected_quarantine().contains(&quarantined));
    assert_eq!(newest["dossierStatus"]["id"], 42);
    assert!(second["updatedDate"].as_str().unwrap().ends_with(".000Z"));
    assert!(second["dossierStatus"]["id"].as_i64().unwrap() <= 9);
    assert_eq!(second["id"].as_str().unwrap().len(), 24);
    // Past the end: an empty page that says it is the last.
    let (_, body) = city_page(&c, &w, 99, size).await;
    assert_eq!(body["content"].as_array().unwrap().len(), 0);
    assert_eq!(body["last"], true);
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Ministry of Justice
// ---------------------------------------------------------------------------------------------

async fn moj_token(c: &Client, w: &World, secret: &str) -> (StatusCode, Value) {
    get_json(c.post(format!("{}/oauth/token", w.ministry_url)).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "bridge"),
        ("client_secret", secret),
    ]))
    .await
}

async fn moj_list(c: &Client, w: &World, token: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    get_json(c.get(format!("{}/api/v2/ho-so", w.ministry_url)).bearer_auth(token).query(query)).await
}

fn moj_time(s: &Value) -> Timestamp {
    super::moj::parse_date("ngayCapNhat", s.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn moj_token_flow() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (status, body) = moj_token(&c, &w, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, _) = moj_list(&c, &w, "not-a-token", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get_json(c.get(format!("{}/api/v2/ho-so", w.ministry_url))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["maLoi"], "401");

    let (status, body) = moj_token(&c, &w, "bridge-secret").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let (status, body) = moj_list(&c, &w, token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["maLoi"], "0");
    assert_eq!(body["duLieu"]["tongSoBanGhi"], w.stats().ministry_records);
    w.shutdown().await;
}

#[tokio::test]
async fn moj_filter_is_inclusive_and_ascending() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (_, body) = moj_token(&c, &w, "bridge-secret").await;
    let token = body["access_token"].as_str().unwrap().to_owned();

    let (_, body) = moj_list(&c, &w, &token, &[("soBanGhi", "200")]).await;
    let all = body["duLieu"]["danhSach"].as_array().unwrap().clone();
    assert_eq!(all.len(), w.stats().ministry_records);
    let keys: Vec<(Timestamp, u64)> =
        all.iter().map(|r| (moj_time(&r["ngayCapNhat"]), r["hoSoId"].as_u64().unwrap())).collect();
    assert!(keys.windows(2).all(|p| p[0] < p[1]), "ascending by ngayCapNhat then hoSoId");

    let pivot = &all[all.len() / 2]["ngayCapNhat"];
    let since = moj_time(pivot);
    let (_, body) = moj_list(&c, &w, &token, &[("capNhatTu", pivot.as_str().unwrap()), ("soBanGhi", "200")]).await;
    let filtered = body["duLieu"]["danhSach"].as_array().unwrap();
    let expected = keys.iter().filter(|(t, _)| *t >= since).count();
    assert_eq!(filtered.len(), expected);
    assert_eq!(body["duLieu"]["tongSoBanGhi"], expected);
    assert_eq!(moj_time(&filtered[0]["ngayCapNhat"]), since, "the bound itself is included");

    // Pages from 1, the same order.
    let (_, p2) = moj_list(&c, &w, &token, &[("trang", "2"), ("soBanGhi", "10")]).await;
    assert_eq!(p2["duLieu"]["trang"], 2);
    assert_eq!(p2["duLieu"]["danhSach"][0], all[10]);
    let (status, _) = moj_list(&c, &w, &token, &[("trang", "0")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = moj_list(&c, &w, &token, &[("capNhatTu", "2026-03-06T10:00:00")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Portal
// ---------------------------------------------------------------------------------------------

struct Portal {
    c: Client,
    base: String,
    session: String,
}

impl Portal {
    async fn login(w: &World) -> Portal {
        let c = client();
        let (_, body) =
            raw_post(&c, &w.portal_url, AUTH_PATH, "G22.HP", json!({"username": "hue", "password": "hue-pass"})).await;
        assert_eq!(body["error_code"], 0, "{body}");
        Portal { c, base: w.portal_url.clone(), session: body["session"].as_str().unwrap().to_owned() }
    }

    async fn call(&self, service: &str, params: Value) -> Value {
        self.call_status(service, params).await.1
    }

    async fn call_status(&self, service: &str, params: Value) -> (StatusCode, Value) {
        let mut body = json!({"session": self.session, "madonvi": "000.00.00.H26", "service": service});
        for (k, v) in params.as_object().unwrap() {
            body[k] = v.clone();
        }
        raw_post(&self.c, &self.base, INTEGRATION_PATH, "G22.HP", body).await
    }

    async fn sync(&self, updating: bool, data: Value) -> Value {
        let flag = if updating { "True" } else { "False" };
        self.call("DongBoHoSoMC", json!({"isUpdating": flag, "data": data})).await
    }
}

async fn raw_post(c: &Client, base: &str, path: &str, dstcode: &str, body: Value) -> (StatusCode, Value) {
    get_json(c.post(format!("{base}{path}")).header("dstcode", dstcode).json(&body)).await
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A complete dossier object as the bridge would send it.
fn dossier(code: &str, status: u8) -> Value {
    json!({
        "MaHoSo": code,
        "MaTTHC": "1.001193",
        "TenTTHC": "Thủ tục đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "KenhThucHien": "2",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": "1",
        "NgayTiepNhan": "20260309080000",
        "NgayHenTra": "20260310170000",
        "TrangThaiHoSo": status.to_string(),
        "DonViXuLy": "UBND phường Hồng Bàng",
    })
}

fn item(answer: &Value, i: usize) -> &Value {
    &answer["result"][i]
}

#[tokio::test]
async fn portal_checks_credentials_and_routing() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (_, body) =
        raw_post(&c, &w.portal_url, AUTH_PATH, "G22.HP", json!({"username": "hue", "password": "nope"})).await;
    assert_ne!(body["error_code"], 0);
    assert!(body["session"].is_null());
    let (_, body) =
        raw_post(&c, &w.portal_url, AUTH_PATH, "XX", json!({"username": "hue", "password": "hue-pass"})).await;
    assert_eq!(body["error_code"], "-1");

    let p = Portal::login(&w).await;
    let mut wrong_unit =
        json!({"session": p.session, "madonvi": "000.00.00.H99", "service": "TraCuuHoSo", "mahoso": "X"});
    let (_, body) = raw_post(&c, &w.portal_url, INTEGRATION_PATH, "G22.HP", wrong_unit.clone()).await;
    assert_eq!(body["error_code"], "-1");
    assert!(body["message"].as_str().unwrap().contains("Mã đơn vị không hợp lệ"));
    wrong_unit["madonvi"] = json!("000.00.00.H26");
    wrong_unit["session"] = json!("forged");
    let (_, body) = raw_post(&c, &w.portal_url, INTEGRATION_PATH, "G22.HP", wrong_unit).await;
    assert_eq!(body["error_code"], "401");
    assert!(body["message"].as_str().unwrap().contains("Phiên làm việc không hợp lệ"));
    let body = p.call("KhongCoDichVuNay", json!({})).await;
    assert_eq!(body["error_code"], "-1");
    w.shutdown().await;
}

#[tokio::test]
async fn portal_creates_refuses_duplicates_and_replaces_on_update() {
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;

    let a = p.sync(false, json!([dossier("H26.31-260309-9001", 2)])).await;
    assert_eq!(a["error_code"], "0", "{a}");
    assert_eq!(item(&a, 0)["MaHoSo"], "H26.31-260309-9001");
    assert_eq!(item(&a, 0)["error_code"], "0");

    let a = p.sync(false, json!([dossier("H26.31-260309-9001", 2)])).await;
    assert_eq!(a["error_code"], "-3");
    assert!(item(&a, 0)["message"].as_str().unwrap().contains("đã tồn tại"));

    let mut finished = dossier("H26.31-260309-9001", 9);
    finished["NgayKetThucXuLy"] = json!("20260310100000");
    let a = p.sync(true, json!([finished])).await;
    assert_eq!(a["error_code"], "0", "{a}");
    let a = p.sync(true, json!([dossier("H26.31-260309-9999", 4)])).await;
    assert_ne!(a["error_code"], "0");
    assert!(item(&a, 0)["message"].as_str().unwrap().contains("không tồn tại"));

    let copy = &w.portal_snapshot()["H26.31-260309-9001"];
    assert_eq!((copy.creates, copy.updates), (1, 1));
    assert_eq!(copy.dossier["TrangThaiHoSo"], "9");
    assert_eq!(copy.dossier["NgayKetThucXuLy"], "20260310100000");
    assert!(copy.first_seen_ended_at.is_some());
    assert!(!copy.late, "finished before its due time");
    assert!(copy.live);

    // An update replaces: a field left out is gone.
    let a = p.sync(true, json!([dossier("H26.31-260309-9001", 10)])).await;
    assert_eq!(a["error_code"], "0");
    let copy = &w.portal_snapshot()["H26.31-260309-9001"];
    assert!(copy.dossier.get("NgayKetThucXuLy").is_none());
    assert_eq!(copy.updates, 2);

    let found = p.call("TraCuuHoSo", json!({"mahoso": "H26.31-260309-9001"})).await;
    assert_eq!(found["result"][0]["TrangThaiHoSo"], "10");
    let mut closed = dossier("BTP-260309-000077", 8);
    closed["GhiChu"] = json!("Hồ sơ trùng với H26.31-260309-9001");
    closed["NgayKetThucXuLy"] = json!("20260309080000");
    assert_eq!(p.sync(false, json!([closed])).await["error_code"], "0");
    assert!(!w.portal_snapshot()["BTP-260309-000077"].live);

    let none = p.call("TraCuuHoSo", json!({"mahoso": "H26.31-260309-0000"})).await;
    assert_eq!(none["error_code"], "0");
    assert_eq!(none["result"].as_array().unwrap().len(), 0);
    w.shutdown().await;
}

#[tokio::test]
async fn portal_rejects_bad_items_by_field_and_keeps_the_rest() {
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;

    let mut missing = dossier("BTP-260309-900001", 2);
    missing.as_object_mut().unwrap().remove("NgayHenTra");
    let mut bad_time = dossier("BTP-260309-900002", 2);
    bad_time["NgayTiepNhan"] = json!("2026-03-09 08:00:00");
    let bad_status = dossier("BTP-260309-900003", 11);
    let mut numbers = dossier("BTP-260309-900004", 4);
    numbers["TrangThaiHoSo"] = json!(4);
    numbers["KenhThucHien"] = json!(2);
    numbers["NgayHenTra"] = json!(20260310170000_u64);
    let mut bad_supplement = dossier("BTP-260309-900005", 5);
    bad_supplement["DanhSachHoSoBoSung"] = json!([{"HoSoBoSungId": "1", "NgayBoSung": "20260230100000"}]);

    let a = p
        .sync(false, json!([dossier("BTP-260309-900000", 2), missing, bad_time, bad_status, numbers, bad_supplement]))
        .await;
    let messages: Vec<&str> = a["result"].as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert_eq!(item(&a, 0)["error_code"], "0");
    assert!(messages[1].contains("NgayHenTra"), "{}", messages[1]);
    assert!(messages[2].contains("NgayTiepNhan"), "{}", messages[2]);
    assert!(messages[3].contains("TrangThaiHoSo"), "{}", messages[3]);
    assert_eq!(item(&a, 4)["error_code"], "0", "numbers are accepted: {}", messages[4]);
    assert!(messages[5].contains("DanhSachHoSoBoSung[0].NgayBoSung"), "{}", messages[5]);
    // The top level is the first failed item's.
    assert_eq!(a["error_code"], item(&a, 1)["error_code"]);
    assert_eq!(a["message"], item(&a, 1)["message"]);
    let held: Vec<String> = w.portal_snapshot().into_keys().collect();
    assert_eq!(held, ["BTP-260309-900000", "BTP-260309-900004"]);
    let stats = w.stats();
    assert_eq!(stats.portal_dossiers, 2);
    assert_eq!(stats.rejected_calls, 1);
    w.shutdown().await;
}

#[tokio::test]
async fn portal_appends_progress_for_known_dossiers_only() {
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;
    p.sync(false, json!([dossier("H26.32-260309-9002", 4)])).await;
    let step = |code: &str| {
        json!({"MaHoSo": code, "NguoiXuLy": "Trần Thị Bích Ngọc", "ChucDanh": "Chuyên viên",
               "ThoiDiemXuLy": "20260309090000", "PhongBanXuLy": "Bộ phận Một cửa",
               "NoiDungXuLy": "Thẩm định hồ sơ", "TrangThai": "4", "NgayBatDau": "20260309080000",
               "NgayKetThucTheoQuyDinh": "20260310170000"})
    };
    let a =
        p.call("CapNhatTienDoHoSoMC", json!({"data": [step("H26.32-260309-9002"), step("H26.32-260309-9002")]})).await;
    assert_eq!(a["error_code"], "0", "{a}");
    let a = p.call("CapNhatTienDoHoSoMC", json!({"data": [step("H26.32-260309-0404")]})).await;
    assert!(item(&a, 0)["message"].as_str().unwrap().contains("không tồn tại"));
    let eleven: Vec<Value> = (0..11).map(|_| step("H26.32-260309-9002")).collect();
    let a = p.call("CapNhatTienDoHoSoMC", json!({"data": eleven})).await;
    assert_ne!(a["error_code"], "0");
    let copy = &w.portal_snapshot()["H26.32-260309-9002"];
    assert_eq!(copy.progress.len(), 2, "the same step twice is kept twice; the refused batch adds none");
    w.shutdown().await;
}

#[tokio::test]
async fn portal_sessions_expire() {
    let mut o = opts();
    o.portal_session_ttl = Duration::from_millis(300);
    let w = World::start(o).await.unwrap();
    let p = Portal::login(&w).await;
    let a = p.call("TraCuuHoSo", json!({"mahoso": "X"})).await;
    assert_eq!(a["error_code"], "0");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a = p.call("TraCuuHoSo", json!({"mahoso": "X"})).await;
    assert_eq!(a["error_code"], "401");
    let p = Portal::login(&w).await;
    assert_eq!(p.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "0");
    w.shutdown().await;
}

#[tokio::test]
async fn portal_outage_answers_503_with_retry_after() {
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;
    w.set_portal_outage(true);
    let resp =
        p.c.post(format!("{}{}", w.portal_url, INTEGRATION_PATH))
            .header("dstcode", "G22.HP")
            .json(&json!({"session": p.session, "madonvi": "000.00.00.H26", "service": "TraCuuHoSo", "mahoso": "X"}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, _) =
        raw_post(&p.c, &w.portal_url, AUTH_PATH, "G22.HP", json!({"username": "hue", "password": "hue-pass"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The introspection stays up, and can end the outage from another process.
    let stats: Value = p.c.get(format!("{}/_sim/stats", w.portal_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["portal_down"], true);
    assert_eq!(stats["outage_answers"], 2);
    let r = p.c.post(format!("{}/_sim/outage?down=false", w.portal_url)).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(p.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "0");
    w.shutdown().await;
}

fn copy(d: Value, first_seen_ended_at: Option<Timestamp>) -> portal::StoredCopy {
    portal::StoredCopy {
        dossier: d.as_object().unwrap().clone(),
        creates: 1,
        updates: 0,
        progress: vec![],
        first_seen_ended_at,
    }
}

#[test]
fn portal_judges_lateness_as_the_spec_says() {
    let due = t("2026-03-10T10:00:00Z"); // NgayHenTra 20260310170000 local
    let before = due - SignedDuration::from_hours(1);
    let after = due + SignedDuration::from_hours(1);
    let open = dossier("A-1", 4);
    assert!(!portal::judge(&copy(open.clone(), None), before));
    assert!(portal::judge(&copy(open.clone(), None), after), "open past due");

    let mut waiting = dossier("A-1", 5);
    waiting["DanhSachHoSoBoSung"] = json!([{"NgayBoSung": "20260310090000"}]);
    assert!(!portal::judge(&copy(waiting.clone(), None), after), "a supplement is awaited");
    waiting["DanhSachHoSoBoSung"] = json!([{"NgayBoSung": "20260310180000"}]);
    assert!(portal::judge(&copy(waiting, None), after), "asked after the due time");

    let mut paused = dossier("A-1", 4);
    paused["DanhSachHoSoBoSung"] = json!([{"NgayBoSung": "20260309090000", "NgayTiepNhanBoSung": "20260309150000"}]);
    assert!(!portal::judge(&copy(paused.clone(), None), after), "six paused hours move the due time");
    assert!(portal::judge(&copy(paused, None), due + SignedDuration::from_hours(7)));

    let mut twice = dossier("A-1", 9);
    twice["NgayKetThucXuLy"] = json!("20260309100000");
    twice["DanhSachHoSoBoSung"] = json!([{"NgayBoSung": "20260309090000", "NgayTiepNhanBoSung": "20260309093000"}, {"NgayBoSung": "20260309094000", "NgayTiepNhanBoSung": "20260309095000"}]);
    assert!(portal::judge(&copy(twice, None), before), "two supplement requests are late by rule");

    let mut ended = dossier("A-1", 9);
    ended["NgayKetThucXuLy"] = json!(format_time(before));
    assert!(!portal::judge(&copy(ended.clone(), None), after));
    ended["NgayKetThucXuLy"] = json!(format_time(after));
    assert!(portal::judge(&copy(ended, None), before));

    let mut refused = dossier("A-1", 3);
    refused["NgayTuChoi"] = json!(format_time(after));
    assert!(portal::judge(&copy(refused, None), after));

    let bare_end = dossier("A-1", 7);
    assert!(!portal::judge(&copy(bare_end.clone(), Some(before)), after), "ended when first seen");
    assert!(portal::judge(&copy(bare_end, Some(after)), after), "first seen ended after the due time");

    let mut duplicate = dossier("BTP-260309-000001", 8);
    duplicate["GhiChu"] = json!("Hồ sơ trùng, đã đồng bộ theo mã H26.31-260309-0001.");
    assert!(portal::is_closed_duplicate(duplicate.as_object().unwrap()));
    assert!(!portal::judge(&copy(duplicate, Some(after)), after), "a closed duplicate is never late");
    let mut stopped = dossier("BTP-260309-000001", 8);
    stopped["GhiChu"] = json!("Dừng xử lý theo đề nghị của BTP-260309-000001");
    assert!(!portal::is_closed_duplicate(stopped.as_object().unwrap()), "naming only itself");
}

// ---------------------------------------------------------------------------------------------
// Changes over time
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn changes_happen_on_ticks_and_stop_when_paused() {
    let mut o = opts();
    o.tick = Duration::from_millis(40);
    let w = World::start(o).await.unwrap();
    let start = w.stats();
    tokio::time::timeout(Duration::from_secs(5), async {
        while w.stats().changes_made < 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the ticker makes changes");
    assert!(w.stats().city_records + w.stats().ministry_records >= start.city_records + start.ministry_records);

    w.pause_changes();
    let paused = w.stats();
    assert!(paused.paused);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.stats().changes_made, paused.changes_made, "no change while paused");

    let c = client();
    let r = c.post(format!("{}/_sim/resume", w.portal_url)).send().await.unwrap();
    assert!(r.status().is_success());
    tokio::time::timeout(Duration::from_secs(5), async {
        while w.stats().changes_made <= paused.changes_made {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("changes resume");
    w.shutdown().await;
}

#[tokio::test]
async fn a_round_stamps_every_change_with_the_same_second() {
    let w = World::start(opts()).await.unwrap();
    let made = w.change_now();
    assert!(made > 0);
    let up = w.shared.lock_upstream();
    let newest = up.latest_update().unwrap();
    assert_eq!(newest.subsec_nanosecond(), 0);
    let at_newest =
        [Source::City, Source::Moj].iter().flat_map(|&s| up.records(s)).filter(|r| r.updated_at() == newest).count();
    assert!(at_newest >= made as usize, "{at_newest} records at {newest}, {made} changes");
}

/// The well-formed records one system holds now.
fn good_records(w: &World, source: Source) -> Vec<super::model::Dossier> {
    w.shared
        .lock_upstream()
        .records(source)
        .iter()
        .filter_map(|r| match r {
            super::world::Record::Good(d) => Some((**d).clone()),
            super::world::Record::Malformed(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn expected_truth_follows_the_authority_rule_for_both_pair_kinds() {
    let w = World::start(opts()).await.unwrap();
    let expected = w.expected_portal();
    let (city, moj) = (good_records(&w, Source::City), good_records(&w, Source::Moj));

    let migrated: Vec<_> = moj.iter().filter(|m| city.iter().any(|c| c.code == m.code)).collect();
    let transferred: Vec<_> = moj.iter().filter(|m| m.ref_code.is_some()).collect();
    assert!(!migrated.is_empty() && !transferred.is_empty());
    // One entry per case: every record is in exactly one case, pairs count once.
    assert_eq!(expected.len(), city.len() + moj.len() - migrated.len() - transferred.len());

    for m in &migrated {
        // (a) received before the cutover: one code, the city's copy rules.
        let c = city.iter().find(|c| c.code == m.code).unwrap();
        let e = &expected[&m.code];
        assert_eq!(e.member_codes, std::slice::from_ref(&m.code));
        assert_eq!(e.status, c.status);
        assert_eq!(e.ended_at, c.ended_at());
        assert_eq!(m.updated_at, m.steps.last().unwrap().at, "the migrated copy is stale");
    }
    for m in &transferred {
        // (b) received at a city desk after the cutover: the city code is the portal's, the
        // ministry's copy rules.
        let city_code = m.ref_code.clone().unwrap();
        let c = city.iter().find(|c| c.code == city_code).unwrap();
        let e = &expected[&city_code];
        assert_eq!(e.portal_code, city_code);
        let mut members = vec![city_code.clone(), m.code.clone()];
        members.sort();
        assert_eq!(e.member_codes, members);
        assert_eq!(e.status, m.status);
        assert_eq!(e.due_at, m.due_at);
        assert_eq!(e.received_at, c.received_at);
        assert!(!expected.contains_key(&m.code));
    }
    let quarantine = w.expected_quarantine();
    assert_eq!(quarantine.len(), 2);
    assert!(quarantine.iter().all(|(_, id)| !expected.contains_key(id)));
    w.shutdown().await;
}

#[tokio::test]
async fn new_transfer_pairs_advance_only_on_the_ministry_side() {
    let mut o = opts();
    o.changes_per_tick = 1;
    o.malformed_every = None;
    let w = World::start(o).await.unwrap();
    let before = w.expected_portal();
    {
        let mut up = w.shared.lock_upstream();
        up.tuning.new_rate = 1.0;
        up.tuning.transfer_rate = 1.0;
        // Every procedure centralised, so the new dossier goes to the ministry (as a pair).
        for p in &mut up.catalogue.procedures {
            p.owner = Some("moj".to_owned());
        }
    }
    assert_eq!(w.change_now(), 1);
    let after = w.expected_portal();
    let new: Vec<_> = after.values().filter(|e| !before.contains_key(&e.portal_code)).collect();
    assert_eq!(new.len(), 1);
    let pair = new[0].clone();
    assert_eq!(pair.member_codes.len(), 2);
    assert!(pair.portal_code.starts_with("H26."), "the city desk's code: {}", pair.portal_code);
    assert_eq!(pair.status, 2);

    w.shared.lock_upstream().tuning.new_rate = 0.0;
    let moved = (0..200).find_map(|_| {
        w.change_now();
        let e = w.expected_portal()[&pair.portal_code].clone();
        (e.status != 2).then_some(e)
    });
    let moved = moved.expect("the pair's ministry copy advances eventually");
    let city_copy = good_records(&w, Source::City).into_iter().find(|d| d.code == pair.portal_code).unwrap();
    assert_eq!(city_copy.status, 2, "the city desk's copy is stale");
    assert_ne!(moved.status, 2);
}

#[tokio::test]
async fn malformed_records_are_injected_and_served_raw() {
    let mut o = opts();
    o.malformed_every = Some(1);
    let w = World::start(o).await.unwrap();
    w.shared.lock_upstream().tuning.new_rate = 1.0;
    while w.stats().malformed_injected < 4 {
        w.change_now();
    }
    let quarantine = w.expected_quarantine();
    assert!(quarantine.len() >= 6);
    let c = client();
    let (_, body) = moj_token(&c, &w, "bridge-secret").await;
    let token = body["access_token"].as_str().unwrap();
    let (_, body) = moj_list(&c, &w, token, &[("soBanGhi", "200")]).await;
    let moj_ids: Vec<String> = body["duLieu"]["danhSach"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["ngayTiepNhan"].as_str().is_some_and(|s| s.contains("-02-31")) || r["trangThai"] == "CHO_PHE_DUYET"
        })
        .map(|r| r["hoSoId"].to_string())
        .collect();
    let expected_moj: Vec<String> = quarantine.iter().filter(|(s, _)| s == "moj").map(|(_, id)| id.clone()).collect();
    assert_eq!(moj_ids, expected_moj);
    w.shutdown().await;
}

#[tokio::test]
async fn introspection_over_http_matches_the_api() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let get = |path: &str| c.get(format!("{}/_sim/{path}", w.portal_url)).send();
    let expected: std::collections::BTreeMap<String, super::ExpectedDossier> =
        get("expected").await.unwrap().json().await.unwrap();
    assert_eq!(expected, w.expected_portal());
    let quarantine: Vec<(String, String)> = get("quarantine").await.unwrap().json().await.unwrap();
    assert_eq!(quarantine, w.expected_quarantine());
    let stats: super::SimStats = get("stats").await.unwrap().json().await.unwrap();
    assert_eq!(stats, w.stats());
    let portal: std::collections::BTreeMap<String, super::PortalCopy> =
        get("portal").await.unwrap().json().await.unwrap();
    assert!(portal.is_empty());
    c.post(format!("{}/_sim/pause", w.portal_url)).send().await.unwrap();
    assert!(w.stats().paused);
    w.shutdown().await;
}

#[tokio::test]
async fn a_clock_before_the_fixtures_is_refused() {
    let mut o = opts();
    o.clock = SimClock::starting_now(t("2026-01-01T00:00:00Z"), 1.0);
    let err = World::start(o).await.unwrap_err().to_string();
    assert!(err.contains("before the fixtures' last recorded change"), "{err}");
}
