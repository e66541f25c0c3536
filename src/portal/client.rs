//! The DVCQG client: session login and renewal, calls, and what each answer means
//! (`spec/dvcqg-portal.md`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::config::PortalConfig;
use crate::net::{self, Failure};

/// What went wrong with a portal call, beyond transport.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Net(#[from] Failure),
    /// A wrong `madonvi`, `dstcode` or service name: stop sending and tell the operator; queued rows
    /// are not the problem and are not parked.
    #[error("portal configuration fault: {0}")]
    Config(String),
}

/// One item's answer in a `DongBoHoSoMC` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Ok,
    /// Created already: send it as an update.
    Exists,
    /// Unknown to the portal: send it as a create.
    Unknown,
    /// Refused for this payload (missing or invalid field): park it.
    Rejected(String),
}

pub struct PortalClient {
    cfg: PortalConfig,
    password: String,
    client: reqwest::Client,
    /// The portal's rate limit, shared by every client of one daemon (see [`PortalClient::sibling`]).
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    /// The session, shared the same way: a portal that keeps one session per user would otherwise
    /// have two clients log each other out in turn.
    session: Arc<std::sync::Mutex<Option<String>>>,
    /// The portal asked for quiet (`Retry-After` on a 429 or 503) until then: no call at all goes
    /// out before it, from any client of the daemon, not only the refused one again.
    quiet_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

fn code_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_ok_code(c: &str) -> bool {
    c == "0" || c.is_empty()
}

/// The portal's ways of saying the session is no good.
fn is_session_error(code: &str, message: &str) -> bool {
    let m = message.to_lowercase();
    code == "401" || code == "-401" || m.contains("phiên") || m.contains("session")
}

fn is_config_error(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("madonvi")
        || m.contains("mã đơn vị")
        || m.contains("dstcode")
        || m.contains("service")
        || m.contains("dịch vụ không")
}

/// Classify one item's answer to a create (`updating` false) or an update (true). "đã tồn tại"
/// says the dossier exists only in answer to a create, and "không tồn tại" that it is unknown only in
/// answer to an update: the same words in answer to the other call name something else ("Mã TTHC
/// không tồn tại" refusing a create's procedure code), a refusal of that payload, to park rather
/// than re-send the other way and retry for ever.
pub fn item_outcome(code: &str, message: &str, updating: bool) -> ItemOutcome {
    let m = message.to_lowercase();
    if is_ok_code(code) {
        ItemOutcome::Ok
    } else if !updating && m.contains("đã tồn tại") {
        ItemOutcome::Exists
    } else if updating && m.contains("không tồn tại") {
        ItemOutcome::Unknown
    } else {
        ItemOutcome::Rejected(format!("error_code {code}: {message}"))
    }
}

/// Read a `TraCuuHoSo` answer: `result` holds the copy (an object, or a list of them; the one
/// whose `MaHoSo` is the code asked for, else the first); an empty one, or a refusal saying the
/// dossier does not exist, means the portal does not know it. Any other refusal is an error.
pub fn lookup_answer(
    error_code: &str,
    message: &str,
    result: &Value,
    code: &str,
) -> Result<Option<Map<String, Value>>, String> {
    if !is_ok_code(error_code) {
        let m = message.to_lowercase();
        if m.contains("không tồn tại") || m.contains("không tìm thấy") {
            return Ok(None);
        }
        return Err(format!("TraCuuHoSo {code}: error_code {error_code}: {message}"));
    }
    let copies: Vec<&Map<String, Value>> = match result {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        _ => Vec::new(),
    };
    let chosen = copies.iter().find(|o| o.get("MaHoSo").map(code_of).as_deref() == Some(code)).or(copies.first());
    Ok(chosen.map(|o| (*o).clone()))
}

impl PortalClient {
    pub fn new(cfg: PortalConfig) -> anyhow::Result<PortalClient> {
        let password = cfg.password.resolve().map_err(|e| anyhow::anyhow!("portal.password: {e}"))?;
        Ok(PortalClient {
            client: net::client(Duration::from_secs(cfg.timeout_secs))?,
            limiter: net::limiter(cfg.rate_limit_per_sec),
            cfg,
            password,
            session: Arc::default(),
            quiet_until: Arc::default(),
        })
    }

    /// Another client of the same portal sharing this one's rate limit and session (the verify
    /// sweep beside delivery): together they stay within `portal.rate_limit_per_sec`.
    pub fn sibling(&self) -> PortalClient {
        PortalClient {
            cfg: self.cfg.clone(),
            password: self.password.clone(),
            client: self.client.clone(),
            limiter: self.limiter.clone(),
            session: self.session.clone(),
            quiet_until: self.quiet_until.clone(),
        }
    }

    fn session(&self) -> Option<String> {
        self.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_session(&self, session: Option<String>) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = session;
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        // Not sent at all inside the quiet time: the caller reschedules its work for after it
        // (waiting here would hold a stop up for as long as the portal asked).
        let quiet = *self.quiet_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = quiet.and_then(|until| until.checked_duration_since(tokio::time::Instant::now())) {
            return Err(Failure::Transient {
                reason: format!("the portal asked for quiet (Retry-After): {} s left", left.as_secs_f64().ceil()),
                retry_after: Some(left),
            });
        }
        self.limiter.until_ready().await;
        let answer = self.send(path, body).await;
        if let Err(f) = &answer
            && let Some(wait) = f.retry_after()
        {
            let until = tokio::time::Instant::now() + wait;
            let mut q = self.quiet_until.lock().unwrap_or_else(|e| e.into_inner());
            if q.is_none_or(|t| t < until) {
                *q = Some(until);
            }
        }
        answer
    }

    async fn send(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let resp = self
            .client
            .post(format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path))
            .header("Accept", "application/json")
            .header("dstcode", &self.cfg.dstcode)
            .json(body)
            .send()
            .await
            .map_err(|e| net::from_reqwest(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| net::from_reqwest(&e))?;
        if !status.is_success() {
            return Err(net::from_status(status, &headers, &text));
        }
        net::parse_json(&text)
    }

    async fn login(&mut self) -> Result<String, CallError> {
        let v =
            self.post(&self.cfg.auth_path, &json!({"username": self.cfg.username, "password": self.password})).await?;
        let code = code_of(&v["error_code"]);
        match v["session"].as_str() {
            Some(s) if is_ok_code(&code) => {
                self.set_session(Some(s.to_string()));
                Ok(s.to_string())
            }
            _ => Err(CallError::Config(format!(
                "login as {:?} refused (error_code {code}: {}); check portal.username and portal.password",
                self.cfg.username,
                v["message"].as_str().unwrap_or("")
            ))),
        }
    }

    /// Call a service; logs in first and once more if the session was refused. Returns the whole
    /// answer: per-item outcomes are the caller's to read.
    pub async fn call(&mut self, service: &str, params: Map<String, Value>) -> Result<Value, CallError> {
        for attempt in 0..2 {
            let session = match self.session() {
                Some(s) => s,
                None => self.login().await?,
            };
            let mut body = Map::new();
            body.insert("session".into(), Value::String(session));
            body.insert("madonvi".into(), Value::String(self.cfg.madonvi.clone()));
            body.insert("service".into(), Value::String(service.to_string()));
            body.extend(params.clone());
            let v = match self.post(&self.cfg.integration_path, &Value::Object(body)).await {
                Err(Failure::Unauthorized(_)) if attempt == 0 => {
                    self.set_session(None);
                    continue;
                }
                other => other?,
            };
            let code = code_of(&v["error_code"]);
            let message = v["message"].as_str().unwrap_or("").to_string();
            if is_ok_code(&code) || v["result"].as_array().is_some_and(|a| !a.is_empty()) {
                return Ok(v);
            }
            if is_session_error(&code, &message) {
                self.set_session(None);
                if attempt == 0 {
                    continue;
                }
                return Err(Failure::transient(format!("session refused twice: {message}")).into());
            }
            if is_config_error(&message) {
                return Err(CallError::Config(format!("{service}: error_code {code}: {message}")));
            }
            return Ok(v);
        }
        Err(Failure::transient("session refused twice").into())
    }

    /// `DongBoHoSoMC`: returns each item's outcome, keyed by MaHoSo, in the order sent.
    pub async fn sync_dossiers(
        &mut self,
        updating: bool,
        items: &[Value],
    ) -> Result<Vec<(String, ItemOutcome)>, CallError> {
        let mut params = Map::new();
        params.insert("isUpdating".into(), Value::String(if updating { "True" } else { "False" }.into()));
        params.insert("data".into(), Value::Array(items.to_vec()));
        let v = self.call("DongBoHoSoMC", params).await?;
        let top_code = code_of(&v["error_code"]);
        let top_msg = v["message"].as_str().unwrap_or("").to_string();
        let per_item: Vec<(String, String, String)> = v["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            code_of(&r["MaHoSo"]),
                            code_of(&r["error_code"]),
                            r["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(items
            .iter()
            .map(|item| {
                let code = code_of(&item["MaHoSo"]);
                let outcome = match per_item.iter().find(|(c, _, _)| *c == code) {
                    Some((_, ec, msg)) => item_outcome(ec, msg, updating),
                    // No per-item answer: the whole call's code applies.
                    None => item_outcome(&top_code, &top_msg, updating),
                };
                (code, outcome)
            })
            .collect())
    }

    /// `TraCuuHoSo`: the portal's copy of a dossier, `None` when the portal does not know the code
    /// (an empty `result`, or a refusal saying it does not exist).
    pub async fn lookup(&mut self, code: &str) -> Result<Option<Map<String, Value>>, CallError> {
        let mut params = Map::new();
        params.insert("mahoso".into(), Value::String(code.to_string()));
        let v = self.call("TraCuuHoSo", params).await?;
        let ec = code_of(&v["error_code"]);
        let message = v["message"].as_str().unwrap_or("");
        lookup_answer(&ec, message, &v["result"], code).map_err(|m| Failure::Permanent(m).into())
    }

    /// `CapNhatTienDoHoSoMC` for at most 10 steps.
    pub async fn send_progress(&mut self, items: &[Value]) -> Result<ItemOutcome, CallError> {
        let mut params = Map::new();
        params.insert("data".into(), Value::Array(items.to_vec()));
        let v = self.call("CapNhatTienDoHoSoMC", params).await?;
        // Steps add to a dossier the portal holds: "không tồn tại" means it does not (yet).
        Ok(item_outcome(&code_of(&v["error_code"]), v["message"].as_str().unwrap_or(""), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_answers_are_classified() {
        for updating in [false, true] {
            assert_eq!(item_outcome("0", "", updating), ItemOutcome::Ok);
            assert!(
                matches!(item_outcome("-2", "Thiếu trường bắt buộc: NgayHenTra", updating), ItemOutcome::Rejected(m) if m.contains("NgayHenTra"))
            );
        }
        assert_eq!(item_outcome("-3", "Hồ sơ đã tồn tại", false), ItemOutcome::Exists);
        assert_eq!(item_outcome("3", "Mã hồ sơ không tồn tại", true), ItemOutcome::Unknown);
        // The same words answering the other call name a field's value: the payload is refused.
        assert!(
            matches!(item_outcome("3", "Mã TTHC 1.000123 không tồn tại", false), ItemOutcome::Rejected(m) if m.contains("1.000123"))
        );
        assert!(matches!(item_outcome("3", "Số biên nhận đã tồn tại", true), ItemOutcome::Rejected(_)));
    }

    #[test]
    fn a_lookup_answer_is_a_copy_nothing_or_an_error() {
        let copy = serde_json::json!({"MaHoSo": "A-1", "TrangThaiHoSo": "9"});
        let found = lookup_answer("0", "Thành công", &serde_json::json!([copy]), "A-1").unwrap();
        assert_eq!(found.unwrap()["TrangThaiHoSo"], "9");
        let found = lookup_answer("0", "", &copy, "A-1").unwrap();
        assert!(found.is_some(), "a single object is accepted too");
        assert_eq!(lookup_answer("0", "Thành công", &serde_json::json!([]), "A-1").unwrap(), None);
        assert_eq!(lookup_answer("0", "", &Value::Null, "A-1").unwrap(), None);
        assert_eq!(lookup_answer("-4", "Hồ sơ A-1 không tồn tại", &Value::Null, "A-1").unwrap(), None);
        assert!(lookup_answer("-2", "Thiếu tham số mahoso", &Value::Null, "A-1").is_err());
    }

    #[test]
    fn session_and_config_faults_are_told_apart() {
        assert!(is_session_error("401", ""));
        assert!(is_session_error("-1", "Phiên làm việc không hợp lệ hoặc đã hết hạn"));
        assert!(is_config_error("Mã đơn vị không hợp lệ"));
        assert!(!is_config_error("Thiếu trường bắt buộc: MaTTHC"));
    }
}
