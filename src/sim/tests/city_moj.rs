//! The city (iGate) and Ministry of Justice dialects, unchanged since they were first simulated.

use super::*;

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
    let (status, _) = city_page(&c, &w, 0, 1001).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "pages are at most 1000");
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

pub(super) async fn moj_token(c: &Client, w: &World, secret: &str) -> (StatusCode, Value) {
    get_json(c.post(format!("{}/oauth/token", w.ministry_url)).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "bridge"),
        ("client_secret", secret),
    ]))
    .await
}

pub(super) async fn moj_list(c: &Client, w: &World, token: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    get_json(c.get(format!("{}/api/v2/ho-so", w.ministry_url)).bearer_auth(token).query(query)).await
}

fn moj_time(s: &Value) -> Timestamp {
    crate::sim::moj::parse_date("ngayCapNhat", s.as_str().unwrap()).unwrap()
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

    let (_, body) = moj_list(&c, &w, &token, &[("soBanGhi", "1000")]).await;
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
