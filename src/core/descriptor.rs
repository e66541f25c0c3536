//! Adapter descriptors: one TOML file per upstream system, stating how to reach it, how to page
//! through it and how its JSON maps to the canonical [`SourceRecord`](super::record::SourceRecord).
//!
//! Adding or fixing a system is a matter of editing one of these files, not the code. Everything is
//! validated when the file is read, so a mistake is reported at start (or on `check-config`) with the
//! file, the key and the reason, never in the middle of a poll.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::timefmt::DateFormat;

/// What kind of system a source is: decides authority during dual running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemKind {
    /// The city's own procedure system.
    City,
    /// A ministry's centralised system.
    Ministry,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Short identifier, used in logs.
    pub name: String,
    /// What the system is, for operators.
    pub title: String,
    pub kind: SystemKind,
    #[serde(default)]
    pub http: HttpSpec,
    pub auth: AuthSpec,
    pub list: ListSpec,
    pub pagination: PaginationSpec,
    pub response: ResponseSpec,
    pub dates: DatesSpec,
    pub fields: FieldPaths,
    /// Source status value (as text) → portal status 1–10.
    pub status_map: BTreeMap<String, u8>,
    /// Source channel value → KenhThucHien (1 in person, 2 online, 3 postal).
    #[serde(default)]
    pub channel_map: BTreeMap<String, u8>,
    /// Source applicant type → LoaiDoiTuong (1 citizen, 2 business, 3 state body, 4 other).
    #[serde(default)]
    pub applicant_type_map: BTreeMap<String, u8>,
    /// Source agency level → "department" | "commune".
    #[serde(default)]
    pub agency_level_map: BTreeMap<String, String>,
    /// Source fee payment method → HinhThucThu (1 at the desk, 2 online; assumed, see the portal spec).
    #[serde(default)]
    pub fee_method_map: BTreeMap<String, u8>,
    /// Source "paid online" value → DuocThanhToanTrucTuyen (0 not online, 1 on the portal, 2 through the
    /// local payment gateway). Without a map, numbers 0–2 pass through and yes/no means 2/0.
    #[serde(default)]
    pub paid_online_map: BTreeMap<String, u8>,
    pub supplements: Option<SupplementPaths>,
    pub steps: Option<StepPaths>,
    pub documents: Option<DocumentPaths>,
    pub results: Option<ResultPaths>,
    pub fees: Option<FeePaths>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Default base URL; the configuration's `base_url` for the source overrides it.
    pub base_url: Option<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Requests per second this system tolerates.
    #[serde(default = "default_rate")]
    pub rate_limit_per_sec: u32,
    /// Retries of one request on a transient failure before the poll gives up.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

fn default_timeout() -> u64 {
    20
}
fn default_rate() -> u32 {
    5
}
fn default_retries() -> u32 {
    4
}

impl Default for HttpSpec {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout_secs: default_timeout(),
            rate_limit_per_sec: default_rate(),
            max_retries: default_retries(),
        }
    }
}

/// How to authenticate. Secrets are never in the descriptor: the configuration names where they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    None,
    /// A fixed key in a header; the key is the source's `api_key` secret.
    ApiKeyHeader {
        header: String,
    },
    /// `Authorization: Bearer <token>`; the token is the source's `token` secret (a file, typically).
    Bearer,
    /// OAuth2 client credentials: the source's `client_id` and `client_secret`.
    Oauth2ClientCredentials {
        token_path: String,
        #[serde(default)]
        scope: Option<String>,
    },
    /// OAuth2 password grant (Keycloak): `client_id`, optional `client_secret`, `username`, `password`.
    PasswordGrant {
        token_path: String,
        #[serde(default)]
        scope: Option<String>,
    },
    /// A login call that returns a session token, as on the portal: `username`, `password`.
    SessionLogin {
        login_path: String,
        #[serde(default = "default_username_field")]
        username_field: String,
        #[serde(default = "default_password_field")]
        password_field: String,
        /// Where the token is in the login answer.
        session_token_path: String,
        /// How the token travels on each request.
        send_as: SendAs,
        /// The header or query parameter carrying it.
        send_name: String,
        #[serde(default)]
        send_prefix: String,
    },
}

fn default_username_field() -> String {
    "username".into()
}
fn default_password_field() -> String {
    "password".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendAs {
    Header,
    Query,
}

/// Which credentials an auth style needs, for validation.
impl AuthSpec {
    pub fn needs(&self) -> &'static [&'static str] {
        match self {
            AuthSpec::None => &[],
            AuthSpec::ApiKeyHeader { .. } => &["api_key"],
            AuthSpec::Bearer => &["token"],
            AuthSpec::Oauth2ClientCredentials { .. } => &["client_id", "client_secret"],
            AuthSpec::PasswordGrant { .. } => &["client_id", "username", "password"],
            AuthSpec::SessionLogin { .. } => &["username", "password"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

/// Where the paging and cursor parameters travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ParamsIn {
    #[default]
    Query,
    /// A JSON body (POST); dotted names nest (`filter.modifiedAfter`).
    Body,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    #[serde(default = "default_method")]
    pub method: Method,
    pub path: String,
    pub page_size: u32,
    #[serde(default)]
    pub params_in: ParamsIn,
    /// Fixed query parameters (e.g. a sort order).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Fixed JSON body fields (POST); dotted keys nest.
    #[serde(default)]
    pub body: BTreeMap<String, toml::Value>,
}

fn default_method() -> Method {
    Method::Get
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStyle {
    /// A page number (`page_param`, from `first_page`).
    PageNumber,
    /// A record offset (`offset_param`, from 0).
    Offset,
    /// An opaque next-page token from the previous answer (`next_token_path` → `token_param`).
    Token,
    /// The next page's URL from the previous answer (`next_link_path`).
    Link,
}

/// The order a source lists records in, which decides how the poller walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOrder {
    /// Newest first, no "updated since" filter (VNPT iGate): walk pages down to the watermark.
    UpdatedDesc,
    /// Oldest first with an inclusive "updated since" filter: keyset walk from the cursor.
    UpdatedAsc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginationSpec {
    pub style: PageStyle,
    pub order: PageOrder,
    /// The page-size parameter (every style).
    pub size_param: String,
    /// `page_number`: the page parameter and the first page's number.
    pub page_param: Option<String>,
    #[serde(default)]
    pub first_page: u64,
    /// `offset`: the offset parameter.
    pub offset_param: Option<String>,
    /// `token`: the request parameter and where the next token is in an answer.
    pub token_param: Option<String>,
    pub next_token_path: Option<String>,
    /// `link`: where the next page's URL is in an answer.
    pub next_link_path: Option<String>,
    /// The inclusive "updated since" parameter (required for `updated_asc`).
    pub updated_since_param: Option<String>,
    /// How to write the cursor into that parameter; defaults to the `[dates]` format.
    pub updated_since_format: Option<DateFormat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Path to the array of records in a page.
    pub records: String,
    /// Path to an application-level result code; a page whose code is not in `success_values` fails.
    pub success_path: Option<String>,
    #[serde(default)]
    pub success_values: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesSpec {
    pub format: DateFormat,
    /// Zone of times written without an offset.
    #[serde(default = "default_tz")]
    pub time_zone: String,
}

fn default_tz() -> String {
    "Asia/Ho_Chi_Minh".to_string()
}

/// Dotted JSON paths (`procedure.sector.code`, `items.0.name`) from a record to each field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPaths {
    pub native_id: String,
    pub code: String,
    #[serde(default)]
    pub reference_codes: Vec<String>,
    pub procedure_code: String,
    pub procedure_name: Option<String>,
    pub sector_code: Option<String>,
    pub sector_name: Option<String>,
    pub agency_code: Option<String>,
    pub agency_name: Option<String>,
    pub agency_level: Option<String>,
    pub applicant_name: Option<String>,
    pub applicant_id_number: Option<String>,
    pub applicant_type: Option<String>,
    pub applicant_phone: Option<String>,
    pub applicant_email: Option<String>,
    pub channel: Option<String>,
    pub submitted_at: Option<String>,
    pub received_at: Option<String>,
    pub due_at: Option<String>,
    pub finished_at: Option<String>,
    pub returned_at: Option<String>,
    pub refused_at: Option<String>,
    pub updated_at: String,
    pub status: String,
    pub summary: Option<String>,
    pub digitized: Option<String>,
    pub paid_online: Option<String>,
    pub vneid_verified: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplementPaths {
    pub path: String,
    pub id: Option<String>,
    pub content: Option<String>,
    pub requested_at: String,
    pub received_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPaths {
    pub path: String,
    pub actor: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub content: Option<String>,
    pub at: String,
    pub status: Option<String>,
    pub started_at: Option<String>,
    pub deadline: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentPaths {
    pub path: String,
    pub id: Option<String>,
    pub name: String,
    pub component_code: Option<String>,
    pub url: Option<String>,
    pub digitized: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultPaths {
    pub path: String,
    pub id: Option<String>,
    pub name: String,
    pub code: Option<String>,
    pub url: Option<String>,
    pub electronic: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeePaths {
    pub path: String,
    pub code: Option<String>,
    pub name: String,
    pub amount: Option<String>,
    pub method: Option<String>,
}

/// A descriptor problem: the key (dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorIssue {
    pub key: String,
    pub reason: String,
}

impl Descriptor {
    /// Parse descriptor text. Errors carry the key path and, for syntax and type errors, the line.
    pub fn parse(text: &str) -> Result<Descriptor, DescriptorIssue> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| DescriptorIssue { key: String::new(), reason: e.to_string().trim_end().to_string() })?;
        let d: Descriptor = serde_path_to_error::deserialize(de).map_err(|e| DescriptorIssue {
            key: e.path().to_string(),
            reason: e.inner().to_string().trim_end().to_string(),
        })?;
        d.validate()?;
        Ok(d)
    }

    /// The time zone for local times, already checked by `validate`.
    pub fn time_zone(&self) -> TimeZone {
        TimeZone::get(&self.dates.time_zone).unwrap_or_else(|_| crate::clock::vn_tz())
    }

    fn validate(&self) -> Result<(), DescriptorIssue> {
        let issue = |key: &str, reason: String| DescriptorIssue { key: key.to_string(), reason };
        if TimeZone::get(&self.dates.time_zone).is_err() {
            return Err(issue(
                "dates.time_zone",
                format!("unknown time zone {:?} (use an IANA name such as Asia/Ho_Chi_Minh)", self.dates.time_zone),
            ));
        }
        if self.status_map.is_empty() {
            return Err(issue("status_map", "must map at least one source status to a portal status".into()));
        }
        for (k, v) in &self.status_map {
            if !(1..=10).contains(v) {
                return Err(issue(&format!("status_map.{k}"), format!("{v} is not a portal status (1–10)")));
            }
        }
        for (k, v) in &self.channel_map {
            if !(1..=3).contains(v) {
                return Err(issue(
                    &format!("channel_map.{k}"),
                    format!("{v} is not a channel (1 in person, 2 online, 3 postal)"),
                ));
            }
        }
        for (k, v) in &self.applicant_type_map {
            if !(1..=4).contains(v) {
                return Err(issue(&format!("applicant_type_map.{k}"), format!("{v} is not an applicant type (1–4)")));
            }
        }
        for (k, v) in &self.paid_online_map {
            if *v > 2 {
                return Err(issue(&format!("paid_online_map.{k}"), format!("{v} is not 0, 1 or 2")));
            }
        }
        for (k, v) in &self.agency_level_map {
            if v != "department" && v != "commune" {
                return Err(issue(
                    &format!("agency_level_map.{k}"),
                    format!("{v:?} must be \"department\" or \"commune\""),
                ));
            }
        }
        if self.list.page_size == 0 || self.list.page_size > 1000 {
            return Err(issue("list.page_size", format!("{} is out of range (1–1000)", self.list.page_size)));
        }
        if !self.list.path.starts_with('/') {
            return Err(issue("list.path", format!("{:?} must start with '/'", self.list.path)));
        }
        let p = &self.pagination;
        let needed: &[(&str, &Option<String>)] = match p.style {
            PageStyle::PageNumber => &[("pagination.page_param", &p.page_param)],
            PageStyle::Offset => &[("pagination.offset_param", &p.offset_param)],
            PageStyle::Token => {
                &[("pagination.token_param", &p.token_param), ("pagination.next_token_path", &p.next_token_path)]
            }
            PageStyle::Link => &[("pagination.next_link_path", &p.next_link_path)],
        };
        for (key, v) in needed {
            if v.as_deref().is_none_or(str::is_empty) {
                return Err(issue(key, format!("required by pagination style {:?}", p.style).to_lowercase()));
            }
        }
        if self.list.params_in == ParamsIn::Body && self.list.method != Method::Post {
            return Err(issue("list.params_in", "\"body\" needs method = \"POST\"".into()));
        }
        if self.pagination.order == PageOrder::UpdatedAsc && self.pagination.updated_since_param.is_none() {
            return Err(issue(
                "pagination.updated_since_param",
                "required when order = \"updated_asc\": the poller needs an inclusive updated-since filter".into(),
            ));
        }
        if self.http.rate_limit_per_sec == 0 {
            return Err(issue("http.rate_limit_per_sec", "must be at least 1".into()));
        }
        if self.http.timeout_secs == 0 {
            return Err(issue("http.timeout_secs", "must be at least 1".into()));
        }
        if let Some(url) = &self.http.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(issue("http.base_url", format!("{url:?} is not an http(s) URL")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"
name = "t"
title = "test system"
kind = "city"
[auth]
style = "none"
[list]
path = "/list"
page_size = 10
[pagination]
style = "page_number"
order = "updated_desc"
page_param = "page"
size_param = "size"
[response]
records = "items"
[dates]
format = "rfc3339"
[fields]
native_id = "id"
code = "code"
procedure_code = "proc"
updated_at = "updated"
received_at = "received"
status = "status"
[status_map]
"A" = 2
"B" = 9
"#;

    #[test]
    fn a_minimal_descriptor_parses() {
        let d = Descriptor::parse(MINIMAL).unwrap();
        assert_eq!(d.kind, SystemKind::City);
        assert_eq!(d.http.timeout_secs, 20);
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = MINIMAL.replace("page_size = 10", "page_size = 10\npage_sise = 5");
        let e = Descriptor::parse(&text).unwrap_err();
        assert!(e.reason.contains("page_sise"), "{e:?}");
        assert!(e.reason.contains("line"), "{e:?}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Descriptor::parse(&MINIMAL.replace("\"B\" = 9", "\"B\" = 12")).unwrap_err();
        assert_eq!(e.key, "status_map.B");
        let e = Descriptor::parse(&MINIMAL.replace("order = \"updated_desc\"", "order = \"updated_asc\"")).unwrap_err();
        assert_eq!(e.key, "pagination.updated_since_param");
        let e = Descriptor::parse(&MINIMAL.replace("page_size = 10", "page_size = \"ten\"")).unwrap_err();
        assert!(e.key.contains("page_size") || e.reason.contains("page_size"), "{e:?}");
    }
}
