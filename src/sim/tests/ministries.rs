//! The four other ministries' systems: each one's auth flow, its pagination over several pages, its
//! filter (inclusive) and order, and its dialect's marks.

use serde_json::json;

use super::*;
use crate::sim::{mae, moc, mof, mps};

/// A system's address and credentials, as `World::systems` gives them.
fn system(w: &World, name: &str) -> super::super::SystemInfo {
    w.systems().into_iter().find(|s| s.name == name).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Bộ Xây dựng: bearer token, offset pages, ISO 8601 with +07:00
// ---------------------------------------------------------------------------------------------

async fn moc_list(c: &Client, w: &World, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let s = system(w, "moc");
    get_json(c.get(format!("{}{}", s.url, moc::LIST_PATH)).bearer_auth(&s.credentials["token"]).query(query)).await
}

fn moc_key(r: &Value) -> (Timestamp, u64) {
    (moc::parse_date("updatedAt", r["updatedAt"].as_str().unwrap()).unwrap(), r["id"].as_u64().unwrap())
}

#[tokio::test]
async fn moc_requires_its_bearer_token() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let s = system(&w, "moc");
    assert_eq!(s.credentials.keys().collect::<Vec<_>>(), ["token"]);
    let url = format!("{}{}", s.url, moc::LIST_PATH);
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (status, body) = get_json(c.get(&url).bearer_auth("not-the-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let (status, body) = moc_list(&c, &w, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["total"], w.stats().records["moc"]);
    assert_eq!(body["data"]["limit"], 20, "the default page");
    w.shutdown().await;
}

#[tokio::test]
async fn moc_offset_pages_ascend_and_the_filter_is_inclusive() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (_, body) = moc_list(&c, &w, &[("limit", "1000")]).await;
    let all = body["data"]["items"].as_array().unwrap().clone();
    assert_eq!(all.len(), w.stats().records["moc"]);
    let keys: Vec<_> = all.iter().map(moc_key).collect();
    assert!(keys.windows(2).all(|p| p[0] < p[1]), "ascending by updatedAt then id");
    assert!(all[0]["updatedAt"].as_str().unwrap().ends_with("+07:00"), "{}", all[0]["updatedAt"]);
    assert!(all.iter().all(|r| r["status"].as_u64().is_some_and(|s| s % 5 == 0 && (10..=99).contains(&s))));

    // Several pages by offset give back the same list.
    let mut walked = Vec::new();
    let mut offset = 0;
    loop {
        let (status, body) = moc_list(&c, &w, &[("offset", &offset.to_string()), ("limit", "7")]).await;
        assert_eq!(status, StatusCode::OK);
        let items = body["data"]["items"].as_array().unwrap();
        walked.extend(items.iter().cloned());
        offset += items.len();
        if items.len() < 7 {
            break;
        }
    }
    assert!(offset > 21, "several pages");
    assert_eq!(walked, all);

    // The bound itself is included, written with the local offset or in UTC.
    let pivot = &all[all.len() / 2];
    let since = moc_key(pivot).0;
    let expected = keys.iter().filter(|(t, _)| *t >= since).count();
    for bound in [pivot["updatedAt"].as_str().unwrap().to_owned(), since.to_string()] {
        let (_, body) = moc_list(&c, &w, &[("updatedFrom", &bound), ("limit", "1000")]).await;
        let items = body["data"]["items"].as_array().unwrap();
        assert_eq!(items.len(), expected, "updatedFrom={bound}");
        assert_eq!(body["data"]["total"], expected);
        assert_eq!(moc_key(&items[0]).0, since);
    }
    let (status, body) = moc_list(&c, &w, &[("updatedFrom", "2026-03-06T10:00:00")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no offset: not an instant");
    assert_eq!(body["error"]["code"], "INVALID_PARAMETER");
    let (status, _) = moc_list(&c, &w, &[("limit", "1001")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Bộ Nông nghiệp và Môi trường: Keycloak password grant, POST search, page tokens, epoch ms
// ---------------------------------------------------------------------------------------------

async fn mae_token(c: &Client, w: &World, form: &[(&str, &str)]) -> (StatusCode, Value) {
    get_json(c.post(format!("{}{}", system(w, "mae").url, mae::TOKEN_PATH)).form(form)).await
}

async fn mae_login(c: &Client, w: &World) -> String {
    let creds = system(w, "mae").credentials;
    let (status, body) = mae_token(
        c,
        w,
        &[
            ("grant_type", "password"),
            ("client_id", &creds["client_id"]),
            ("username", &creds["username"]),
            ("password", &creds["password"]),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn mae_search(c: &Client, w: &World, token: &str, body: Value) -> (StatusCode, Value) {
    get_json(c.post(format!("{}{}", system(w, "mae").url, mae::SEARCH_PATH)).bearer_auth(token).json(&body)).await
}

fn mae_key(r: &Value) -> (i64, [u64; 2]) {
    (r["modifiedTime"].as_i64().unwrap(), Source::Mae.id_key(r["recordId"].as_str().unwrap()))
}

#[tokio::test]
async fn mae_password_grant_guards_the_search() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let creds = system(&w, "mae").credentials;
    assert_eq!(creds.keys().collect::<Vec<_>>(), ["client_id", "password", "username"]);
    let (status, body) = mae_token(&c, &w, &[("grant_type", "client_credentials"), ("client_id", "x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    let wrong_client =
        [("grant_type", "password"), ("client_id", "other"), ("username", "haiphong.bridge"), ("password", "mae-pass")];
    let (status, body) = mae_token(&c, &w, &wrong_client).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let wrong_password =
        [("grant_type", "password"), ("client_id", "dvc-bridge"), ("username", "haiphong.bridge"), ("password", "x")];
    let (status, body) = mae_token(&c, &w, &wrong_password).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_grant")));

    let (status, body) = mae_search(&c, &w, "not-a-token", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    let (status, body) = mae_token(
        &c,
        &w,
        &[
            ("grant_type", "password"),
            ("client_id", "dvc-bridge"),
            ("username", "haiphong.bridge"),
            ("password", "mae-pass"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], mae::TOKEN_TTL_SECS);
    let token = body["access_token"].as_str().unwrap();
    let (status, body) = mae_search(&c, &w, token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], w.stats().records["mae"]);
    let total = w.stats().records["mae"];
    assert_eq!(body["records"].as_array().unwrap().len(), total.min(50), "the default page");
    assert_eq!(body["nextPageToken"].is_string(), total > 50, "a next token while more records follow");
    w.shutdown().await;
}

#[tokio::test]
async fn mae_token_pages_ascend_and_the_filter_is_inclusive() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let token = mae_login(&c, &w).await;
    let (_, body) = mae_search(&c, &w, &token, json!({ "pageSize": 1000, "orderBy": "modifiedTime asc" })).await;
    let all = body["records"].as_array().unwrap().clone();
    assert_eq!(all.len(), w.stats().records["mae"]);
    assert!(body.get("nextPageToken").is_none(), "one page holds everything: no next token");
    let keys: Vec<_> = all.iter().map(mae_key).collect();
    assert!(keys.windows(2).all(|p| p[0] < p[1]), "ascending by modifiedTime then recordId");
    assert!(all[0]["receivedTime"].is_i64(), "epoch milliseconds");

    // Follow the tokens: several pages, the same list, no token on the last.
    let mut walked = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let (status, body) = mae_search(&c, &w, &token, json!({ "pageSize": 6, "pageToken": next })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        walked.extend(body["records"].as_array().unwrap().iter().cloned());
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    assert!(pages >= 5, "{pages} pages");
    assert_eq!(walked, all);

    // The bound is included, as a number or as text; the filter and the token combine.
    let pivot = keys[keys.len() / 2].0;
    let expected = keys.iter().filter(|(t, _)| *t >= pivot).count();
    for bound in [json!(pivot), json!(pivot.to_string())] {
        let (_, body) =
            mae_search(&c, &w, &token, json!({ "filter": { "modifiedFrom": bound }, "pageSize": 1000 })).await;
        let records = body["records"].as_array().unwrap();
        assert_eq!(records.len(), expected);
        assert_eq!(body["totalSize"], expected);
        assert_eq!(records[0]["modifiedTime"], pivot);
    }
    let (_, first) = mae_search(&c, &w, &token, json!({ "filter": { "modifiedFrom": pivot }, "pageSize": 2 })).await;
    let (_, second) = mae_search(
        &c,
        &w,
        &token,
        json!({ "filter": { "modifiedFrom": pivot }, "pageSize": 1000, "pageToken": first["nextPageToken"] }),
    )
    .await;
    assert_eq!(second["records"].as_array().unwrap().len(), expected - 2);

    // A dotted name is not a nested one; a made-up token is refused.
    let (status, body) = mae_search(&c, &w, &token, json!({ "filter.modifiedFrom": pivot })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    let (status, _) = mae_search(&c, &w, &token, json!({ "pageToken": "zz" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = mae_search(&c, &w, &token, json!({ "pageSize": 1001 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Bộ Tài chính: session login, next links, newest first, dd/MM/yyyy
// ---------------------------------------------------------------------------------------------

async fn mof_login(c: &Client, w: &World, password: &str) -> (StatusCode, Value) {
    let s = system(w, "mof");
    let body = json!({ "tenDangNhap": s.credentials["username"], "matKhau": password });
    get_json(c.post(format!("{}{}", s.url, mof::LOGIN_PATH)).json(&body)).await
}

async fn mof_get(c: &Client, w: &World, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    get_json(c.get(format!("{}{path_and_query}", system(w, "mof").url)).header("X-Auth-Token", token)).await
}

#[tokio::test]
async fn mof_sessions_log_in_and_expire() {
    let mut o = opts();
    o.mof_session_ttl = Duration::from_millis(300);
    let w = World::start(o).await.unwrap();
    let c = client();
    assert_eq!(system(&w, "mof").credentials.keys().collect::<Vec<_>>(), ["password", "username"]);
    let (status, body) = mof_login(&c, &w, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["maKetQua"], "01");
    let (status, body) = mof_get(&c, &w, "none", mof::LIST_PATH).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["maKetQua"], "401");

    let (status, body) = mof_login(&c, &w, "mof-pass").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["maKetQua"], "00");
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let (status, body) = mof_get(&c, &w, &token, mof::LIST_PATH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["tongSo"], w.stats().records["mof"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = mof_get(&c, &w, &token, mof::LIST_PATH).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session expired");
    assert_eq!(body["maKetQua"], "401");
    let (_, body) = mof_login(&c, &w, "mof-pass").await;
    let (status, _) = mof_get(&c, &w, body["data"]["token"].as_str().unwrap(), mof::LIST_PATH).await;
    assert_eq!(status, StatusCode::OK, "a new login works again");
    w.shutdown().await;
}

#[tokio::test]
async fn mof_links_walk_newest_first_to_the_last_page() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let (_, body) = mof_login(&c, &w, "mof-pass").await;
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let mut link = Some(format!("{}?kichThuoc=7", mof::LIST_PATH));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(next) = link {
        let (status, body) = mof_get(&c, &w, &token, &next).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for r in body["data"].as_array().unwrap() {
            let updated = mof::parse_date("capNhat", r["thoiGian"]["capNhat"].as_str().unwrap()).unwrap();
            seen.push((updated, r["id"].as_str().unwrap().parse::<u64>().unwrap()));
            assert!(!r["trangThai"].as_str().unwrap().is_ascii(), "a Vietnamese word");
        }
        assert!(body["links"]["self"].as_str().unwrap().starts_with(mof::LIST_PATH));
        link = body["links"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), w.stats().records["mof"]);
    assert_eq!(pages, seen.len().div_ceil(7));
    assert!(seen.windows(2).all(|p| p[0] > p[1]), "newest first by capNhat then id, no repeats");
    // Mostly businesses.
    let (_, body) = mof_get(&c, &w, &token, &format!("{}?kichThuoc=1000", mof::LIST_PATH)).await;
    let kinds: Vec<&str> =
        body["data"].as_array().unwrap().iter().filter_map(|r| r["chuHoSo"]["loai"].as_str()).collect();
    let businesses = kinds.iter().filter(|k| **k == "DOANH_NGHIEP").count();
    assert!(businesses * 2 > kinds.len(), "{businesses} of {}", kinds.len());
    let (status, _) = mof_get(&c, &w, &token, &format!("{}?trang=0", mof::LIST_PATH)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    w.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Bộ Công an: API key, page numbers from 1, yyyyMMddHHmmss, deep nesting
// ---------------------------------------------------------------------------------------------

async fn mps_list(c: &Client, w: &World, key: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    get_json(c.get(format!("{}{}", system(w, "mps").url, mps::LIST_PATH)).header("apikey", key).query(query)).await
}

fn mps_key(r: &Value) -> (Timestamp, [u64; 2]) {
    (
        mps::parse_date("NgayCapNhat", r["NgayCapNhat"].as_str().unwrap()).unwrap(),
        Source::Mps.id_key(r["HoSoID"].as_str().unwrap()),
    )
}

#[tokio::test]
async fn mps_requires_its_api_key() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let key = system(&w, "mps").credentials["api_key"].clone();
    let (status, body) = mps_list(&c, &w, "wrong", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["ketQua"]["maLoi"], "403");
    assert_eq!(body["ketQua"]["trangThai"], "LOI");
    let (status, body) = mps_list(&c, &w, &key, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ketQua"]["maLoi"], "00");
    assert_eq!(body["ketQua"]["duLieu"]["tongSo"], w.stats().records["mps"]);
    assert_eq!(body["ketQua"]["duLieu"]["hoSo"].as_array().unwrap().len(), 10, "the default page");
    w.shutdown().await;
}

#[tokio::test]
async fn mps_pages_from_one_ascend_and_tu_ngay_is_inclusive() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let key = system(&w, "mps").credentials["api_key"].clone();
    let (_, body) = mps_list(&c, &w, &key, &[("soLuong", "1000")]).await;
    let all = body["ketQua"]["duLieu"]["hoSo"].as_array().unwrap().clone();
    assert_eq!(all.len(), w.stats().records["mps"]);
    let keys: Vec<_> = all.iter().map(mps_key).collect();
    assert!(keys.windows(2).all(|p| p[0] < p[1]), "ascending by NgayCapNhat then HoSoID");
    let sample = &all[0];
    assert_eq!(sample["HoSoID"].as_str().unwrap(), sample["HoSoID"].as_str().unwrap().to_uppercase());
    assert_eq!(sample["TrangThai"].as_str().unwrap().len(), 2);
    assert!(sample["NguoiNop"]["LoaiDoiTuong"].as_u64().unwrap() <= 2);

    let mut walked = Vec::new();
    for page in 1.. {
        let (status, body) = mps_list(&c, &w, &key, &[("trang", &page.to_string()), ("soLuong", "9")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ketQua"]["duLieu"]["trang"], page);
        let records = body["ketQua"]["duLieu"]["hoSo"].as_array().unwrap();
        if records.is_empty() {
            assert!(page > 3, "several pages");
            break;
        }
        walked.extend(records.iter().cloned());
    }
    assert_eq!(walked, all);

    let pivot = &all[all.len() / 2];
    let since = mps_key(pivot).0;
    let (_, body) =
        mps_list(&c, &w, &key, &[("tuNgay", pivot["NgayCapNhat"].as_str().unwrap()), ("soLuong", "1000")]).await;
    let filtered = body["ketQua"]["duLieu"]["hoSo"].as_array().unwrap();
    assert_eq!(filtered.len(), keys.iter().filter(|(t, _)| *t >= since).count());
    assert_eq!(mps_key(&filtered[0]).0, since, "the bound itself is included");
    let (status, body) = mps_list(&c, &w, &key, &[("trang", "0")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ketQua"]["maLoi"], "400");
    let (status, _) = mps_list(&c, &w, &key, &[("tuNgay", "2026-03-06 10:00:00")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    w.shutdown().await;
}

#[tokio::test]
async fn systems_and_cutovers_describe_the_world() {
    let w = World::start(opts()).await.unwrap();
    let systems = w.systems();
    let names: Vec<&str> = systems.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["city", "moj", "moc", "mae", "mof", "mps"]);
    assert_eq!(systems[0].adapter, "city-igate");
    assert_eq!(systems[0].kind, "city");
    assert!(systems[1..].iter().all(|s| s.kind == "ministry" && s.adapter == s.name));
    assert_eq!(systems[0].url, w.city_url);
    assert_eq!(systems[1].url, w.ministry_url);
    let allowed = ["api_key", "token", "client_id", "client_secret", "username", "password"];
    assert!(
        systems
            .iter()
            .all(|s| !s.credentials.is_empty() && s.credentials.keys().all(|k| allowed.contains(&k.as_str())))
    );
    let cutovers: Vec<(String, String, String)> =
        w.cutovers().into_iter().map(|(s, p, d)| (s, p, d.to_string())).collect();
    let expect = |s: &str, d: &str| (s.to_owned(), "*".to_owned(), d.to_owned());
    assert_eq!(
        cutovers,
        [
            expect("moj", "2026-01-15"),
            expect("moc", "2026-02-01"),
            expect("mae", "2026-01-20"),
            expect("mof", "2026-01-01"),
            expect("mps", "2026-01-01")
        ]
    );
    // The same over HTTP, for a world in another process.
    let over_http: Vec<super::super::SystemInfo> =
        client().get(format!("{}/_sim/systems", w.portal_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(over_http, systems);
    let mut o = opts();
    o.ministry_cutovers.insert("moj".to_owned(), jiff::civil::date(2026, 1, 1));
    let err = World::start(o).await.unwrap_err().to_string();
    assert!(err.contains("ministry_cutovers"), "{err}");
    w.shutdown().await;
}
