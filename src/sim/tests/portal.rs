//! The portal contract of `spec/dvcqg-portal.md`.

use jiff::SignedDuration;
use serde_json::json;

use super::*;
use crate::sim::{
    AUTH_PATH, INTEGRATION_PATH,
    portal::{self, format_time},
};

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
        source_writes: 0,
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

#[tokio::test]
async fn portal_faults_throttle_shorten_sessions_hold_answers_and_refuse_chosen_dossiers() {
    use crate::sim::PortalFaults;
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;

    // Throttled: a 429 with Retry-After; a call inside that window is answered 429 again and
    // counted as early, even once the throttling is switched off, and a dossier it carries again
    // is counted too.
    w.set_portal_faults(PortalFaults { throttle_429: 1.0, retry_after_secs: 1, ..PortalFaults::default() });
    let create = json!({"isUpdating": "False", "data": [dossier("H26.31-260309-9100", 2)]});
    let resp =
        p.c.post(format!("{}{}", w.portal_url, INTEGRATION_PATH))
            .header("dstcode", "G22.HP")
            .json(&json!({"session": p.session, "madonvi": "000.00.00.H26", "service": "DongBoHoSoMC",
                      "isUpdating": "False", "data": create["data"]}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    w.set_portal_faults(PortalFaults::default());
    let (status, _) = p.call_status("DongBoHoSoMC", create.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "inside the window");
    let (status, _) = p.call_status("TraCuuHoSo", json!({"mahoso": "X"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "inside the window");
    let s = w.stats();
    assert_eq!((s.portal_throttled, s.portal_early_calls, s.portal_early_items), (3, 2, 1));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(p.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "0", "the window has passed");

    // Short sessions.
    w.set_portal_faults(PortalFaults { session_ttl_ms: 200, ..PortalFaults::default() });
    let short = Portal::login(&w).await;
    assert_eq!(short.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(short.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "401");
    assert_eq!(p.call("TraCuuHoSo", json!({"mahoso": "X"})).await["error_code"], "0", "older sessions keep theirs");
    let s = w.stats();
    assert_eq!((s.portal_logins, s.portal_session_refusals), (2, 1));

    // Chosen dossiers refused for good, naming the field and its value; the rest of the batch
    // is applied.
    // (Set over HTTP, as a test running the world in another process would.)
    let refused = "H26.31-260309-9101";
    let r = p.c.post(format!("{}/_sim/portal_faults", w.portal_url)).json(&json!({"reject": {refused: "MaTTHC"}}));
    assert!(r.send().await.unwrap().status().is_success());
    let (_, shown) = get_json(p.c.get(format!("{}/_sim/portal_faults", w.portal_url))).await;
    assert_eq!(shown["reject"][refused], "MaTTHC", "{shown}");
    let (status, _) = get_json(p.c.post(format!("{}/_sim/portal_faults", w.portal_url)).body("{\"rejet\": {}}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a typo is refused");
    let a = p.sync(false, json!([dossier(refused, 2), dossier("H26.31-260309-9102", 2)])).await;
    let message = item(&a, 0)["message"].as_str().unwrap();
    assert!(message.contains("MaTTHC") && message.contains("1.001193"), "{message}");
    assert_eq!(item(&a, 1)["error_code"], "0");
    let a = p.sync(false, json!([dossier(refused, 2)])).await;
    assert_ne!(a["error_code"], "0", "refused again: the rejection is permanent");
    assert_eq!(w.stats().portal_refused_by_fault, 2);

    // Slow answers: the items are applied before the answer is sent.
    w.set_portal_faults(PortalFaults { slow_ms: 400, ..PortalFaults::default() });
    let t0 = std::time::Instant::now();
    let sent = p.sync(false, json!([dossier(refused, 2)]));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.portal_snapshot().contains_key(refused)
    };
    let (a, held) = tokio::join!(sent, watch);
    assert_eq!(a["error_code"], "0");
    assert!(held, "the portal holds the dossier before it answers");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    w.set_portal_faults(PortalFaults::default());

    // A create of a dossier the portal holds is counted; every accepted object is in the
    // receipts, batch by batch.
    assert_eq!(p.sync(false, json!([dossier(refused, 4)])).await["error_code"], "-3");
    assert_eq!(w.stats().portal_exists_answers, 1);
    let receipts: Vec<(u64, String, bool)> =
        w.portal_receipts().into_iter().map(|r| (r.call, r.code, r.update)).collect();
    assert_eq!(receipts, [(1, "H26.31-260309-9102".to_owned(), false), (3, refused.to_owned(), false)]);
    w.shutdown().await;
}

#[tokio::test]
async fn a_due_wave_plays_its_script_and_the_portal_shows_what_arrives_falsely_late() {
    use crate::sim::DueWave;
    let w = World::start(opts()).await.unwrap();
    let p = Portal::login(&w).await;
    let now = w.now();
    let mins = SignedDuration::from_mins;
    let wave = |n, from, to, late_share| DueWave {
        n,
        due_from: now + mins(from),
        due_to: now + mins(to),
        lead: (mins(5), mins(10)),
        late_share,
        systems: vec![],
    };
    // Due and finished on time before now; due later; due and finished late before now.
    let on_time = w.due_wave(&wave(4, -30, -20, 0.0)).unwrap();
    let later = w.due_wave(&wave(2, 60, 90, 0.0)).unwrap();
    let late = w.due_wave(&wave(2, -60, -50, 1.0)).unwrap();
    assert!(on_time.iter().chain(&later).all(|d| d.on_time() && d.finish_at < d.due_at));
    assert!(late.iter().all(|d| !d.on_time()));
    assert!(on_time.windows(2).all(|w| w[0].due_at <= w[1].due_at), "in due order");
    let all: Vec<_> = on_time.iter().chain(&later).chain(&late).collect();
    let expected = w.expected_portal();
    for d in &all {
        let e = &expected[&d.code];
        assert_eq!((e.status, e.due_at), (4, d.due_at), "{} is being processed, due as scripted", d.code);
    }

    // The portal holds them all open, as the bridge pushed them before the script played.
    let open = |d: &crate::sim::ScriptedDossier, status: u8| {
        let mut o = dossier(&d.code, status);
        o["NgayHenTra"] = json!(format_time(d.due_at));
        if status == 9 {
            o["NgayKetThucXuLy"] = json!(format_time(d.finish_at));
        }
        o
    };
    let objects: Vec<Value> = all.iter().map(|d| open(d, 4)).collect();
    assert_eq!(p.sync(false, Value::Array(objects)).await["error_code"], "0");
    let l = w.portal_lateness();
    assert_eq!((l.shown_late, l.false_late), (6, 0), "open past due at the sources too: late, not falsely");

    // The script finishes what is due by now; the random changes never touch the rest.
    for _ in 0..30 {
        w.change_now();
    }
    let expected = w.expected_portal();
    // (Once finished, a dossier is the random changes' again: some are returned, status 10.)
    assert!(on_time.iter().chain(&late).all(|d| expected[&d.code].ended_at == Some(d.finish_at)));
    assert!(later.iter().all(|d| expected[&d.code].status == 4), "not finished before its time");
    let l = w.portal_lateness();
    let mut codes: Vec<String> = on_time.iter().map(|d| d.code.clone()).collect();
    codes.sort();
    assert_eq!((l.shown_late, l.false_late, &l.false_late_codes), (6, 4, &codes));

    // The meter adds the count over simulated time between samples (60× here).
    w.shared.sample_lateness();
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.shared.sample_lateness();
    let l = w.portal_lateness();
    assert!((1.9..2.6).contains(&l.false_late_dossier_minutes), "4 dossiers × ½ minute: {l:?}");
    assert_eq!((l.peak_false_late, l.samples), (4, 2));

    // Their finishes reach the portal: nothing is falsely late; the late ones stay late.
    let finished: Vec<Value> = on_time.iter().chain(&late).map(|d| open(d, 9)).collect();
    assert_eq!(p.sync(true, Value::Array(finished)).await["error_code"], "0");
    let l = w.portal_lateness();
    assert_eq!((l.shown_late, l.false_late), (2, 0));
    let c = client();
    let (_, body) = get_json(c.get(format!("{}/_sim/late", w.portal_url))).await;
    assert_eq!((body["shown_late"].as_u64(), body["false_late"].as_u64()), (Some(2), Some(0)), "{body}");
    w.reset_lateness();
    assert_eq!(w.portal_lateness().false_late_dossier_minutes, 0.0);
    w.shutdown().await;
}
