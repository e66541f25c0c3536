//! Bulk mode for the ingest benchmark: many synthetic records, loaded quickly and paged through in
//! each system's own dialect and order.

use serde::Deserialize;

use super::*;
use crate::sim::{mof, moj};

#[derive(Deserialize)]
struct Page {
    #[serde(rename = "duLieu")]
    du_lieu: DuLieu,
}

#[derive(Deserialize)]
struct DuLieu {
    #[serde(rename = "danhSach")]
    danh_sach: Vec<Rec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rec {
    ho_so_id: u64,
    ngay_cap_nhat: String,
}

#[tokio::test]
async fn two_hundred_thousand_bulk_records_page_through() {
    let w = World::start(opts()).await.unwrap();
    w.pause_changes();
    let before = w.stats().records["moj"];
    let loaded_at = w.now();
    w.bulk_load("moj", 200_000).unwrap();
    assert_eq!(w.stats().records["moj"], before + 200_000);

    let c = client();
    let (_, body) = get_json(c.post(format!("{}/oauth/token", w.ministry_url)).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "bridge"),
        ("client_secret", "bridge-secret"),
    ]))
    .await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let mut count = 0;
    let mut last: Option<(Timestamp, u64)> = None;
    for page in 1.. {
        let resp = c
            .get(format!("{}/api/v2/ho-so", w.ministry_url))
            .bearer_auth(&token)
            .query(&[("trang", page), ("soBanGhi", 1000)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // Only what the test reads: a debug build parses the rest without building it.
        let body: Page = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let records = body.du_lieu.danh_sach;
        if records.is_empty() {
            break;
        }
        for r in &records {
            let key = (moj::parse_date("ngayCapNhat", &r.ngay_cap_nhat).unwrap(), r.ho_so_id);
            assert!(last.is_none_or(|l| l < key), "ascending across pages");
            last = Some(key);
        }
        count += records.len();
    }
    assert_eq!(count, before + 200_000);
    // The filter still finds its place at once: the ten minutes before the load hold 600 records,
    // one a second.
    let since = loaded_at - jiff::SignedDuration::from_mins(10);
    let (_, body) = get_json(
        c.get(format!("{}/api/v2/ho-so", w.ministry_url))
            .bearer_auth(&token)
            .query(&[("capNhatTu", moj::format_date(since)), ("soBanGhi", "1000".to_owned())]),
    )
    .await;
    let recent = body["duLieu"]["tongSoBanGhi"].as_u64().unwrap();
    assert!((598..=603).contains(&recent), "{recent}");
    w.shutdown().await;
}

#[tokio::test]
async fn bulk_records_speak_each_dialect_and_keep_its_order() {
    let w = World::start(opts()).await.unwrap();
    w.pause_changes();
    let cases_before = w.expected_portal().len();
    for s in Source::ALL {
        w.bulk_load(s.name(), 3_000).unwrap();
    }
    assert_eq!(w.expected_portal().len(), cases_before + 6 * 3_000, "each bulk record is a case of its own");
    assert!(w.bulk_load("portal", 1).is_err());
    let c = client();
    // Newest first in the Ministry of Finance's system: the bulk records are the newest.
    let mof = w.systems().into_iter().find(|s| s.name == "mof").unwrap();
    let login =
        serde_json::json!({ "tenDangNhap": mof.credentials["username"], "matKhau": mof.credentials["password"] });
    let (_, body) = get_json(c.post(format!("{}{}", mof.url, mof::LOGIN_PATH)).json(&login)).await;
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let (_, body) =
        get_json(c.get(format!("{}{}?kichThuoc=1000&trang=2", mof.url, mof::LIST_PATH)).header("X-Auth-Token", &token))
            .await;
    assert_eq!(body["meta"]["tongSo"], w.stats().records["mof"]);
    let times: Vec<Timestamp> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| mof::parse_date("capNhat", r["thoiGian"]["capNhat"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(times.len(), 1000);
    assert!(times.windows(2).all(|p| p[0] > p[1]), "one second apart, newest first");
    // Every system's bulk records parse back through its own dialect as well-formed dossiers, and
    // their fast rendering is byte for byte the dialect's own.
    for s in Source::ALL {
        let up = w.shared.lock_upstream();
        let n = up.count(s);
        let records: Vec<_> = up.descending(s, 0, 50).into_iter().chain(up.ascending(s, n / 2, 50)).collect();
        let rendered: Vec<Value> = records.iter().map(|r| up.render(s, r)).collect();
        let fast = up.page_json(s, &Value::from(crate::sim::faults::RECORDS), &records);
        assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&rendered).unwrap(), "{}", s.name());
        for (r, raw) in records.iter().zip(&rendered) {
            assert!(matches!(r, super::super::world::Record::Bulk(_)));
            let parsed = super::super::world::parse(s, raw).unwrap();
            assert!(parsed.is_ok(), "{}: {parsed:?}", s.name());
        }
    }
    w.shutdown().await;
}
