//! A naive client driven only by `adapters/<system>.toml` (auth style, list request, pagination,
//! records path, date format, maps): it proves the descriptors the bridge reads fit the simulated
//! servers, and that a plain walk reaches every record when nothing changes.
//!
//! It reads the descriptor schema of the brief, independently of the bridge's own parser (the
//! simulator must not share the bridge's understanding of the world).

use std::collections::{BTreeMap, BTreeSet};

use jiff::fmt::strtime;
use serde_json::{Map, json};

use super::*;
use crate::clock::vn_tz;

fn descriptor(adapter: &str) -> toml::Table {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("adapters").join(format!("{adapter}.toml"));
    std::fs::read_to_string(&path).unwrap().parse::<toml::Table>().unwrap()
}

/// `d["a"]["b"]` as text, for a dotted descriptor key.
fn key<'d>(d: &'d toml::Table, dotted: &str) -> Option<&'d str> {
    let mut parts = dotted.split('.');
    let mut v = d.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    v.as_str()
}

/// A dotted JSON path (`a.b.0.c`), as the descriptors use them.
fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, p| match v {
        Value::Object(m) => m.get(p),
        Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A scalar as the maps key it: text, numbers and booleans written out.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets a dotted name in a JSON body, nesting objects.
fn put(body: &mut Map<String, Value>, dotted: &str, value: Value) {
    let (head, rest) = dotted.split_once('.').map_or((dotted, None), |(h, r)| (h, Some(r)));
    match rest {
        None => {
            body.insert(head.to_owned(), value);
        }
        Some(rest) => {
            let inner = body.entry(head.to_owned()).or_insert_with(|| json!({}));
            if let Value::Object(m) = inner {
                put(m, rest, value);
            }
        }
    }
}

fn parse_time(v: &Value, format: &str) -> Option<Timestamp> {
    match format {
        "rfc3339" => v.as_str()?.parse().ok(),
        "epoch_millis" => Timestamp::from_millisecond(v.as_i64()?).ok(),
        "epoch_seconds" => Timestamp::from_second(v.as_i64()?).ok(),
        pattern => {
            let tm = strtime::parse(pattern, v.as_str()?).ok()?;
            tm.to_datetime().ok()?.to_zoned_datetime(vn_tz()).ok().map(|z| z.timestamp())
        }
    }
}

fn format_time(t: Timestamp, format: &str) -> Value {
    match format {
        "rfc3339" => json!(t.to_string()),
        "epoch_millis" => json!(t.as_millisecond()),
        "epoch_seconds" => json!(t.as_second()),
        pattern => json!(t.to_zoned_datetime(vn_tz()).strftime(pattern).to_string()),
    }
}

/// How each request authenticates.
struct Auth {
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

async fn authenticate(c: &Client, d: &toml::Table, s: &super::super::SystemInfo) -> Auth {
    let cred = |k: &str| s.credentials.get(k).cloned().unwrap_or_default();
    let bearer =
        |token: &str| Auth { headers: vec![("Authorization".into(), format!("Bearer {token}"))], query: vec![] };
    match key(d, "auth.style").unwrap() {
        "none" => Auth { headers: vec![], query: vec![] },
        "api_key_header" => {
            Auth { headers: vec![(key(d, "auth.header").unwrap().into(), cred("api_key"))], query: vec![] }
        }
        "bearer" => bearer(&cred("token")),
        style @ ("oauth2_client_credentials" | "password_grant") => {
            let mut form = vec![("client_id", cred("client_id"))];
            if style == "password_grant" {
                form.extend([
                    ("grant_type", "password".into()),
                    ("username", cred("username")),
                    ("password", cred("password")),
                ]);
            } else {
                form.extend([("grant_type", "client_credentials".into()), ("client_secret", cred("client_secret"))]);
            }
            let url = format!("{}{}", s.url, key(d, "auth.token_path").unwrap());
            let (status, body) = get_json(c.post(url).form(&form)).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", s.name);
            bearer(body["access_token"].as_str().unwrap())
        }
        "session_login" => {
            let mut login = Map::new();
            login.insert(key(d, "auth.username_field").unwrap_or("username").into(), json!(cred("username")));
            login.insert(key(d, "auth.password_field").unwrap_or("password").into(), json!(cred("password")));
            let url = format!("{}{}", s.url, key(d, "auth.login_path").unwrap());
            let (status, body) = get_json(c.post(url).json(&login)).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", s.name);
            let token = lookup(&body, key(d, "auth.session_token_path").unwrap()).and_then(Value::as_str).unwrap();
            let pair = (
                key(d, "auth.send_name").unwrap().to_owned(),
                format!("{}{token}", key(d, "auth.send_prefix").unwrap_or("")),
            );
            match key(d, "auth.send_as").unwrap() {
                "header" => Auth { headers: vec![pair], query: vec![] },
                _ => Auth { headers: vec![], query: vec![pair] },
            }
        }
        other => panic!("{}: unknown auth style {other}", s.name),
    }
}

/// Every record a plain walk returns, in the order served, from `since` on (updated_asc systems).
async fn walk(
    c: &Client,
    d: &toml::Table,
    s: &super::super::SystemInfo,
    page_size: u64,
    since: Option<Timestamp>,
) -> Vec<Value> {
    let auth = authenticate(c, d, s).await;
    let style = key(d, "pagination.style").unwrap();
    let in_body = key(d, "list.params_in") == Some("body");
    let post = key(d, "list.method") == Some("POST");
    let date_format = key(d, "pagination.updated_since_format").or(key(d, "dates.format")).unwrap();
    let mut params: Vec<(String, Value)> = vec![(key(d, "pagination.size_param").unwrap().into(), json!(page_size))];
    if let Some(t) = since {
        params.push((key(d, "pagination.updated_since_param").unwrap().into(), format_time(t, date_format)));
    }
    let first_page = d["pagination"].get("first_page").and_then(toml::Value::as_integer).unwrap_or(0);
    let (mut page, mut offset, mut token, mut link) = (first_page, 0usize, None::<String>, None::<String>);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let mut p = params.clone();
        match style {
            "page_number" => p.push((key(d, "pagination.page_param").unwrap().into(), json!(page))),
            "offset" => p.push((key(d, "pagination.offset_param").unwrap().into(), json!(offset))),
            "token" => {
                if let Some(t) = &token {
                    p.push((key(d, "pagination.token_param").unwrap().into(), json!(t)));
                }
            }
            _ => {}
        }
        let url = match &link {
            Some(l) if l.starts_with("http") => l.clone(),
            Some(l) => format!("{}{l}", s.url),
            None => format!("{}{}", s.url, key(d, "list.path").unwrap()),
        };
        let mut req = if post { c.post(url) } else { c.get(url) };
        for (k, v) in &auth.headers {
            req = req.header(k, v);
        }
        req = req.query(&auth.query);
        if let Some(fixed) = d["list"].get("query").and_then(toml::Value::as_table) {
            let fixed: Vec<(String, String)> =
                fixed.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
            req = req.query(&fixed);
        }
        if link.is_none() {
            if in_body {
                let mut body = Map::new();
                if let Some(fixed) = d["list"].get("body").and_then(toml::Value::as_table) {
                    for (k, v) in fixed {
                        put(&mut body, k, serde_json::to_value(v).unwrap());
                    }
                }
                for (k, v) in p {
                    put(&mut body, &k, v);
                }
                req = req.json(&body);
            } else {
                let q: Vec<(String, String)> = p.into_iter().map(|(k, v)| (k, text(&v).unwrap())).collect();
                req = req.query(&q);
            }
        }
        let (status, body) = get_json(req).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", s.name);
        if let Some(path) = key(d, "response.success_path") {
            let code = lookup(&body, path).and_then(text).unwrap_or_default();
            let ok: Vec<&str> =
                d["response"]["success_values"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
            assert!(ok.contains(&code.as_str()), "{}: application code {code}", s.name);
        }
        let records = lookup(&body, key(d, "response.records").unwrap()).and_then(Value::as_array).unwrap().clone();
        let n = records.len();
        out.extend(records);
        let more = match style {
            "page_number" => {
                page += 1;
                n as u64 == page_size
            }
            "offset" => {
                offset += n;
                n as u64 == page_size
            }
            "token" => {
                token = lookup(&body, key(d, "pagination.next_token_path").unwrap())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                token.as_deref().is_some_and(|t| !t.is_empty())
            }
            _ => {
                link = lookup(&body, key(d, "pagination.next_link_path").unwrap())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                link.is_some()
            }
        };
        if !more {
            return out;
        }
    }
    panic!("{}: the walk never ended", s.name);
}

/// The value a map turns `v` into, if the map knows it.
fn mapped<'d>(d: &'d toml::Table, map: &str, v: Option<&Value>) -> Option<&'d toml::Value> {
    d.get(map)?.get(text(v?)?.as_str())
}

#[tokio::test]
async fn every_descriptor_walks_its_system_and_maps_every_good_record() {
    let w = World::start(opts()).await.unwrap();
    let c = client();
    let quarantined: BTreeSet<(String, String)> = w.expected_quarantine().into_iter().collect();
    for s in w.systems() {
        let d = descriptor(&s.adapter);
        assert_eq!(key(&d, "kind"), Some(s.kind.as_str()));
        let native_id = key(&d, "fields.native_id").unwrap();
        let source = Source::from_name(&s.name).unwrap();
        let expected_ids: BTreeSet<String> =
            w.shared.lock_upstream().records(source).iter().map(|r| r.native_id(source).into_owned()).collect();
        let by_id: BTreeMap<String, super::super::model::Dossier> =
            good_records(&w, source).into_iter().map(|d| (d.native_id.clone(), d)).collect();

        // Small pages, so that every walk takes several.
        let all = walk(&c, &d, &s, 7, None).await;
        let ids: Vec<String> = all.iter().map(|r| lookup(r, native_id).and_then(text).unwrap()).collect();
        assert_eq!(ids.len(), expected_ids.len(), "{}: no record twice", s.name);
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected_ids, "{}: every record reached", s.name);

        let date_format = key(&d, "dates.format").unwrap();
        let field = |r: &'_ Value, name: &str| key(&d, &format!("fields.{name}")).and_then(|p| lookup(r, p)).cloned();
        for (r, id) in all.iter().zip(&ids) {
            if quarantined.contains(&(s.name.clone(), id.clone())) {
                continue;
            }
            let model = &by_id[id];
            for required in ["code", "procedure_code", "updated_at", "status"] {
                assert!(field(r, required).is_some_and(|v| !v.is_null()), "{} {id}: {required}", s.name);
            }
            let status = mapped(&d, "status_map", field(r, "status").as_ref()).and_then(toml::Value::as_integer);
            assert_eq!(status, Some(i64::from(model.status)), "{} {id}: status", s.name);
            for (name, map) in [
                ("channel", "channel_map"),
                ("applicant_type", "applicant_type_map"),
                ("agency_level", "agency_level_map"),
                ("paid_online", "paid_online_map"),
            ] {
                assert!(mapped(&d, map, field(r, name).as_ref()).is_some(), "{} {id}: {name} not in {map}", s.name);
            }
            let updated = field(r, "updated_at").and_then(|v| parse_time(&v, date_format));
            assert_eq!(updated, Some(model.updated_at), "{} {id}: updated_at", s.name);
            let received = field(r, "received_at").and_then(|v| parse_time(&v, date_format));
            assert_eq!(received, Some(model.received_at), "{} {id}: received_at", s.name);
            if let Some(steps) = key(&d, "steps.path") {
                for step in lookup(r, steps).and_then(Value::as_array).into_iter().flatten() {
                    let st = key(&d, "steps.status").and_then(|p| lookup(step, p));
                    assert!(mapped(&d, "status_map", st).is_some(), "{} {id}: step status", s.name);
                }
            }
            if let Some(fees) = key(&d, "fees.path") {
                for fee in lookup(r, fees).and_then(Value::as_array).into_iter().flatten() {
                    let method = key(&d, "fees.method").and_then(|p| lookup(fee, p));
                    assert!(mapped(&d, "fee_method_map", method).is_some(), "{} {id}: fee method", s.name);
                }
            }
        }

        // Systems with an inclusive updated-since filter: a walk from a bound gets exactly the
        // records updated at or after it.
        if key(&d, "pagination.order") == Some("updated_asc") {
            let mut times: Vec<Timestamp> =
                w.shared.lock_upstream().records(source).iter().map(|r| r.updated_at()).collect();
            times.sort();
            let since = times[times.len() / 2];
            let from = walk(&c, &d, &s, 7, Some(since)).await;
            assert_eq!(from.len(), times.iter().filter(|t| **t >= since).count(), "{}: inclusive filter", s.name);
        }
    }
    w.shutdown().await;
}
