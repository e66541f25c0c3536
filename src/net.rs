//! HTTP plumbing shared by the pollers and the portal client: one place decides what is retryable.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{StatusCode, header::HeaderMap};

/// Why a request failed, as far as retrying is concerned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// Worth retrying: connection errors, timeouts, 429, 5xx, a body that is not the JSON expected
    /// (an HTML error page served with 200, a truncated body).
    #[error("{reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// The credentials were refused: re-authenticate, then retry once.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Retrying the same request cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl Failure {
    pub fn transient(reason: impl Into<String>) -> Self {
        Failure::Transient { reason: reason.into(), retry_after: None }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Install the TLS crypto provider once (reqwest is built without a default one to keep the build
/// light: `crates.md`).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client with a per-request timeout.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    init_tls();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("dvc-bridge/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A per-system rate limiter.
pub fn limiter(per_sec: u32) -> Arc<DefaultDirectRateLimiter> {
    let per_sec = std::num::NonZeroU32::new(per_sec.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(per_sec)))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these systems; it is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Classify a transport error.
pub fn from_reqwest(e: &reqwest::Error) -> Failure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body broken"
    } else {
        "request failed"
    };
    // The source chain names the cause (refused, reset, DNS) without the URL's query.
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    Failure::transient(if cause.is_empty() { what.to_string() } else { format!("{what}: {cause}") })
}

/// Classify an HTTP status that is not a success.
pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str) -> Failure {
    let snippet: String = body.chars().take(200).collect();
    let reason = format!("HTTP {status}: {}", snippet.trim());
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Failure::Unauthorized(reason)
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Failure::Transient { reason, retry_after: retry_after(headers) }
    } else {
        Failure::Permanent(reason)
    }
}

/// Parse a body that must be JSON. Anything else (an HTML error page, a truncated body) is transient:
/// the page is retried, never half-stored.
pub fn parse_json(body: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(body).map_err(|e| {
        let looks_html = body.trim_start().starts_with('<');
        Failure::transient(if looks_html {
            "an HTML page instead of JSON (the system's error page?)".to_string()
        } else {
            format!("the body is not valid JSON ({e}; truncated?)")
        })
    })
}

/// The retry schedule for one request: jittered exponential delays from backon, `max_retries` long.
/// Callers loop themselves (their request borrows `&mut self`), asking [`next_delay`] each time.
pub fn backoff(max_retries: u32, min_delay: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(min_delay)
        .with_max_delay(Duration::from_secs(60))
        .with_max_times(max_retries as usize)
        .build()
}

/// How long to wait before retrying after `e`, or `None` to give up: transient failures only, and
/// the system's own `Retry-After` wins over the schedule.
pub fn next_delay(e: &Failure, schedule: &mut impl Iterator<Item = Duration>) -> Option<Duration> {
    if !e.is_transient() {
        return None;
    }
    let planned = schedule.next()?;
    Some(e.retry_after().unwrap_or(planned).min(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_for_retry() {
        let h = HeaderMap::new();
        assert!(from_status(StatusCode::SERVICE_UNAVAILABLE, &h, "").is_transient());
        assert!(from_status(StatusCode::TOO_MANY_REQUESTS, &h, "").is_transient());
        assert!(matches!(from_status(StatusCode::UNAUTHORIZED, &h, ""), Failure::Unauthorized(_)));
        assert!(matches!(from_status(StatusCode::BAD_REQUEST, &h, ""), Failure::Permanent(_)));
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(from_status(StatusCode::TOO_MANY_REQUESTS, &h, "").retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn html_and_truncated_bodies_are_transient() {
        assert!(parse_json("<html><body>Lỗi hệ thống</body></html>").unwrap_err().to_string().contains("HTML"));
        assert!(parse_json("{\"content\": [").unwrap_err().is_transient());
        assert!(parse_json("{}").is_ok());
    }

    #[test]
    fn the_schedule_gives_up_and_honours_retry_after() {
        let mut sched = backoff(2, Duration::from_millis(10));
        let t = Failure::transient("flaky");
        assert!(next_delay(&t, &mut sched).is_some());
        assert!(next_delay(&t, &mut sched).is_some());
        assert!(next_delay(&t, &mut sched).is_none(), "two retries, then give up");
        let mut sched = backoff(5, Duration::from_millis(10));
        assert!(next_delay(&Failure::Permanent("no".into()), &mut sched).is_none());
        let ra = Failure::Transient { reason: "429".into(), retry_after: Some(Duration::from_secs(9)) };
        assert_eq!(next_delay(&ra, &mut sched), Some(Duration::from_secs(9)));
    }
}
