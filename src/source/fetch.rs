//! Fetching one page of one upstream system. The walk (in `mod.rs`) decides which page; a [`Fetch`]
//! only knows how to ask for it: over HTTP through the descriptor in production, from memory in the
//! property tests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;
use serde_json::{Map, Value};

use super::auth::Auth;
use crate::config::LoadedSource;
use crate::core::descriptor::{Descriptor, Method, PageStyle, ParamsIn};
use crate::core::mapping::{lookup, lookup_mut};
use crate::core::timefmt::{DateFormat, format_time, parse_time};
use crate::net::{self, Failure};

/// Where in a listing a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    First,
    Page(u64),
    Offset(u64),
    Token(String),
    /// The URL a previous answer linked to.
    Link(String),
}

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub position: Position,
    /// The inclusive "updated since" filter, for sources that have one.
    pub since: Option<Timestamp>,
}

/// The "updated since" filter as sent (its text) and as the source reads it back: the filter's
/// format sets its granularity, so a whole-second format sends 00:50:00.5 as 00:50:00, and a
/// record updated at 00:50:00.2 is rightly inside the filter the source applied.
pub fn since_filter(d: &Descriptor, t: Timestamp) -> (Value, Timestamp) {
    let fmt = d.pagination.updated_since_format.as_ref().unwrap_or(&d.dates.format);
    let tz = d.time_zone();
    let text = format_time(t, fmt, &tz);
    // Epoch formats travel as numbers in a JSON body; a pattern's text stays text, even when it is
    // all digits (`yyyyMMddHHmmss`).
    let value = match fmt {
        DateFormat::EpochMillis | DateFormat::EpochSeconds => {
            text.parse::<i64>().map(Value::from).unwrap_or(Value::String(text))
        }
        _ => Value::String(text),
    };
    // A pattern that cannot read its own output back (one without a date, say) is judged at the
    // instant itself; a read-back is never later than the instant asked for.
    let read = parse_time(&value, fmt, &tz).map_or(t, |r| r.min(t));
    (value, read)
}

#[derive(Debug, Clone)]
pub struct PageAnswer {
    pub records: Vec<Value>,
    /// Each record's text as the source sent it, when it could be found in the body (otherwise
    /// the stored payload is the parsed record written out again).
    pub texts: Option<Vec<String>>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Position>,
}

/// Asks a system for one page.
pub trait Fetch: Send {
    fn fetch(&mut self, req: &PageRequest) -> impl Future<Output = Result<PageAnswer, Failure>> + Send;
}

/// Fetching over HTTP as a descriptor says.
pub struct HttpFetch {
    descriptor: Descriptor,
    base_url: String,
    client: reqwest::Client,
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    auth: Auth,
    max_retries: u32,
}

/// Put a value at a dotted path in a JSON object, creating the objects on the way.
fn insert_dotted(obj: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let child = obj.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_dotted(m, rest, v);
            }
        }
    }
}

fn bad_url(e: impl std::fmt::Display) -> Failure {
    Failure::Permanent(format!("bad list URL (check base_url and list.path): {e}"))
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl HttpFetch {
    pub fn new(src: &LoadedSource) -> anyhow::Result<HttpFetch> {
        let d = &src.descriptor;
        Ok(HttpFetch {
            descriptor: d.clone(),
            base_url: src.base_url.trim_end_matches('/').to_string(),
            client: net::client(Duration::from_secs(src.config.timeout_secs.unwrap_or(d.http.timeout_secs).max(1)))?,
            limiter: net::limiter(d.http.rate_limit_per_sec),
            auth: Auth::new(&d.auth, &src.config.credentials)?,
            max_retries: src.config.max_retries.unwrap_or(d.http.max_retries),
        })
    }

    /// The URL and (for POST) body of a page request.
    pub fn build(&self, req: &PageRequest) -> Result<(Url, Option<Value>), Failure> {
        let d = &self.descriptor;
        let p = &d.pagination;
        // A link is the whole request: the system built it, so only the auth is added.
        if let Position::Link(link) = &req.position {
            let url = if link.starts_with("http://") || link.starts_with("https://") {
                Url::parse(link)
            } else {
                Url::parse(&format!(
                    "{}{}",
                    self.base_url,
                    if link.starts_with('/') { link.clone() } else { format!("/{link}") }
                ))
            }
            .map_err(bad_url)?;
            let body = (d.list.method == Method::Post).then(|| Value::Object(Map::new()));
            return Ok((url, body));
        }
        let mut params: Vec<(String, Value)> = vec![(p.size_param.clone(), Value::from(d.list.page_size))];
        match (&p.style, &req.position) {
            (PageStyle::PageNumber, Position::First) => {
                params.push((p.page_param.clone().unwrap_or_default(), p.first_page.into()))
            }
            (PageStyle::PageNumber, Position::Page(n)) => {
                params.push((p.page_param.clone().unwrap_or_default(), (*n).into()))
            }
            (PageStyle::Offset, Position::First) => params.push((p.offset_param.clone().unwrap_or_default(), 0.into())),
            (PageStyle::Offset, Position::Offset(o)) => {
                params.push((p.offset_param.clone().unwrap_or_default(), (*o).into()))
            }
            (PageStyle::Token, Position::Token(t)) => {
                params.push((p.token_param.clone().unwrap_or_default(), t.clone().into()))
            }
            (_, Position::First) => {}
            (style, pos) => {
                return Err(Failure::Permanent(format!("position {pos:?} does not fit pagination style {style:?}")));
            }
        }
        if let (Some(param), Some(t)) = (&p.updated_since_param, req.since) {
            params.push((param.clone(), since_filter(d, t).0));
        }
        let mut url = Url::parse(&format!("{}{}", self.base_url, d.list.path)).map_err(bad_url)?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &d.list.query {
                q.append_pair(k, v);
            }
            if d.list.params_in == ParamsIn::Query {
                for (k, v) in &params {
                    q.append_pair(k, &v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let body = match d.list.method {
            Method::Get => None,
            Method::Post => {
                let mut m = Map::new();
                for (k, v) in &d.list.body {
                    insert_dotted(&mut m, k, toml_to_json(v));
                }
                if d.list.params_in == ParamsIn::Body {
                    for (k, v) in params {
                        insert_dotted(&mut m, &k, v);
                    }
                }
                Some(Value::Object(m))
            }
        };
        Ok((url, body))
    }

    /// Read an answer: the records, and where the next page starts.
    pub fn read(&self, req: &PageRequest, mut v: Value) -> Result<PageAnswer, Failure> {
        let d = &self.descriptor;
        let r = &d.response;
        if let Some(p) = &r.success_path {
            let code = lookup(&v, p).map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string()));
            if !code.as_ref().is_some_and(|c| r.success_values.contains(c)) {
                return Err(Failure::transient(format!("the system answered with result code {code:?} at `{p}`")));
            }
        }
        let text_at = |path: &Option<String>| {
            path.as_deref()
                .and_then(|p| lookup(&v, p))
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let p = &d.pagination;
        let (token, link) = (text_at(&p.next_token_path), text_at(&p.next_link_path));
        // Taken, not copied: a page is hundreds of records.
        let records = match lookup_mut(&mut v, &r.records).map(Value::take) {
            Some(Value::Array(a)) => a,
            None => Vec::new(),
            Some(_) => return Err(Failure::transient(format!("`{}` in the response is not a list", r.records))),
        };
        let full = records.len() >= d.list.page_size as usize;
        let next = match p.style {
            PageStyle::PageNumber if full => Some(Position::Page(match req.position {
                Position::Page(n) => n + 1,
                _ => p.first_page + 1,
            })),
            PageStyle::Offset if full => Some(Position::Offset(match req.position {
                Position::Offset(o) => o + records.len() as u64,
                _ => records.len() as u64,
            })),
            PageStyle::PageNumber | PageStyle::Offset => None,
            PageStyle::Token => token.map(Position::Token),
            PageStyle::Link => link.map(Position::Link),
        };
        Ok(PageAnswer { records, texts: None, next })
    }

    async fn fetch_once(&mut self, req: &PageRequest) -> Result<PageAnswer, Failure> {
        let (url, body) = self.build(req)?;
        for attempt in 0..2 {
            self.limiter.until_ready().await;
            let rb = match &body {
                None => self.client.get(url.clone()),
                Some(b) => self.client.post(url.clone()).json(b),
            };
            let rb = self.auth.apply(&self.client, &self.base_url, rb.header("Accept", "application/json")).await?;
            let resp = rb.send().await.map_err(|e| net::from_reqwest(&e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.map_err(|e| net::from_reqwest(&e))?;
            if !status.is_success() {
                match net::from_status(status, &headers, &text) {
                    // A token or session that lapsed: log in again once.
                    Failure::Unauthorized(_) if attempt == 0 => {
                        self.auth.invalidate();
                        continue;
                    }
                    Failure::Unauthorized(r) => return Err(Failure::Permanent(format!("credentials refused: {r}"))),
                    other => return Err(other),
                }
            }
            let mut answer = self.read(req, net::parse_json(&text)?)?;
            answer.texts = super::raw::records_text(&text, &self.descriptor.response.records)
                .filter(|t| t.len() == answer.records.len())
                .map(|t| t.iter().map(|r| r.get().to_string()).collect());
            return Ok(answer);
        }
        Err(Failure::Permanent("credentials refused twice".into()))
    }
}

impl Fetch for HttpFetch {
    async fn fetch(&mut self, req: &PageRequest) -> Result<PageAnswer, Failure> {
        let mut schedule = net::backoff(self.max_retries, Duration::from_millis(250));
        loop {
            match self.fetch_once(req).await {
                Err(e) => match net::next_delay(&e, &mut schedule) {
                    Some(wait) => {
                        tracing::debug!(error = %e, ?wait, "retrying page");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credentials, PortalMode, SourceConfig};
    use serde_json::json;

    fn fetcher(pagination: &str, list_extra: &str) -> HttpFetch {
        let text = format!(
            r#"
name = "t"
title = "t"
kind = "ministry"
[auth]
style = "none"
[list]
path = "/api/list"
page_size = 2
{list_extra}
[pagination]
{pagination}
[response]
records = "data.items"
[dates]
format = "epoch_millis"
[fields]
native_id = "id"
code = "code"
procedure_code = "p"
received_at = "r"
updated_at = "u"
status = "s"
[status_map]
"A" = 2
"#
        );
        let descriptor = Descriptor::parse(&text).unwrap();
        let config: SourceConfig = serde_json::from_value(json!({"name": "t", "adapter": "t"})).unwrap();
        assert_eq!(config.portal_mode, PortalMode::Push);
        let src = LoadedSource {
            config: SourceConfig { credentials: Credentials::default(), ..config },
            descriptor,
            descriptor_path: "t.toml".into(),
            base_url: "http://127.0.0.1:9".into(),
        };
        HttpFetch::new(&src).unwrap()
    }

    fn since() -> Option<Timestamp> {
        Some("2026-03-09T01:00:00Z".parse().unwrap())
    }

    #[test]
    fn the_filter_is_read_back_at_its_own_granularity() {
        let t: Timestamp = "2026-03-09T00:50:00.5Z".parse().unwrap();
        let of = |format: &str| {
            let f = fetcher(
                &format!(
                    "style = \"offset\"\norder = \"updated_asc\"\nsize_param = \"limit\"\noffset_param = \"offset\"\nupdated_since_param = \"from\"\nupdated_since_format = {format}"
                ),
                "",
            );
            since_filter(&f.descriptor, t)
        };
        let whole: Timestamp = "2026-03-09T00:50:00Z".parse().unwrap();
        assert_eq!(of("\"epoch_seconds\""), (serde_json::json!(1773017400), whole));
        // An all-digit pattern is text, and read back as the pattern (found by the crash campaign:
        // read as a number it failed to parse, and the filter was judged at the fraction again).
        assert_eq!(of("\"%Y%m%d%H%M%S\""), (serde_json::json!("20260309075000"), whole));
        assert_eq!(of("\"epoch_millis\"").1, t);
        assert_eq!(of("\"rfc3339\"").1, t);
        // The descriptors' time zone is Asia/Ho_Chi_Minh unless they say otherwise.
        assert_eq!(of("\"%Y-%m-%d %H:%M:%S\"").1, whole);
        assert_eq!(of("\"%Y-%m-%d %H:%M\"").1, "2026-03-09T00:50:00Z".parse().unwrap());
        // A pattern that cannot be read back is judged at the instant itself.
        assert_eq!(of("\"%H:%M\"").1, t);
    }

    #[test]
    fn offset_pages_put_size_offset_and_cursor_in_the_query() {
        let f = fetcher(
            "style = \"offset\"\norder = \"updated_asc\"\nsize_param = \"limit\"\noffset_param = \"offset\"\nupdated_since_param = \"updatedFrom\"\nupdated_since_format = \"rfc3339\"",
            "[list.query]\nsort = \"asc\"",
        );
        let (url, body) = f.build(&PageRequest { position: Position::Offset(4), since: since() }).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/list?sort=asc&limit=2&offset=4&updatedFrom=2026-03-09T01%3A00%3A00Z"
        );
        assert!(body.is_none());
        let a = f
            .read(&PageRequest { position: Position::Offset(4), since: None }, json!({"data": {"items": [{}, {}]}}))
            .unwrap();
        assert_eq!(a.next, Some(Position::Offset(6)));
        let a = f
            .read(&PageRequest { position: Position::Offset(6), since: None }, json!({"data": {"items": [{}]}}))
            .unwrap();
        assert_eq!(a.next, None, "a short page is the last");
    }

    #[test]
    fn token_pages_travel_in_a_nested_json_body() {
        let f = fetcher(
            "style = \"token\"\norder = \"updated_asc\"\nsize_param = \"pageSize\"\ntoken_param = \"pageToken\"\nnext_token_path = \"nextPageToken\"\nupdated_since_param = \"filter.modifiedAfter\"",
            "method = \"POST\"\nparams_in = \"body\"\n[list.body]\n\"filter.kind\" = \"dossier\"",
        );
        let (url, body) = f.build(&PageRequest { position: Position::Token("abc".into()), since: since() }).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/list");
        assert_eq!(
            body.unwrap(),
            json!({"filter": {"kind": "dossier", "modifiedAfter": 1773018000000i64}, "pageSize": 2, "pageToken": "abc"})
        );
        let a = f
            .read(
                &PageRequest { position: Position::First, since: None },
                json!({"data": {"items": []}, "nextPageToken": "t2"}),
            )
            .unwrap();
        assert_eq!(a.next, Some(Position::Token("t2".into())));
        let a = f
            .read(
                &PageRequest { position: Position::First, since: None },
                json!({"data": {"items": []}, "nextPageToken": ""}),
            )
            .unwrap();
        assert_eq!(a.next, None);
    }

    #[test]
    fn links_are_followed_as_given() {
        let f = fetcher(
            "style = \"link\"\norder = \"updated_desc\"\nsize_param = \"size\"\nnext_link_path = \"links.next\"",
            "",
        );
        let a = f
            .read(
                &PageRequest { position: Position::First, since: None },
                json!({"data": {"items": [{}]}, "links": {"next": "/api/list?cursor=xyz"}}),
            )
            .unwrap();
        assert_eq!(a.next, Some(Position::Link("/api/list?cursor=xyz".into())));
        let (url, _) =
            f.build(&PageRequest { position: Position::Link("/api/list?cursor=xyz".into()), since: None }).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/list?cursor=xyz");
        let (url, _) = f.build(&PageRequest { position: Position::First, since: None }).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/list?size=2");
    }

    #[test]
    fn a_failed_result_code_or_a_non_list_fails_the_page() {
        let f =
            fetcher("style = \"page_number\"\norder = \"updated_desc\"\nsize_param = \"s\"\npage_param = \"p\"", "");
        let e = f
            .read(&PageRequest { position: Position::First, since: None }, json!({"data": {"items": {"x": 1}}}))
            .unwrap_err();
        assert!(e.is_transient() && e.to_string().contains("not a list"), "{e}");
    }
}
