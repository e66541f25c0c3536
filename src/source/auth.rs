//! Authenticating to one upstream system, per its descriptor's auth style.

use std::time::{Duration, Instant};

use crate::config::Credentials;
use crate::core::descriptor::AuthSpec;
use crate::net::{self, Failure};

/// Resolved credentials and any cached token.
pub struct Auth {
    spec: AuthSpec,
    api_key: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    cached: Option<(String, Instant)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.debug_struct("Auth").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Auth {
    /// Resolve the secrets the auth style needs (errors name the missing one, never a value).
    pub fn new(spec: &AuthSpec, c: &Credentials) -> anyhow::Result<Auth> {
        let get = |s: &Option<crate::config::SecretRef>, what: &str| -> anyhow::Result<Option<String>> {
            match s {
                None => Ok(None),
                Some(s) => s.resolve().map(Some).map_err(|e| anyhow::anyhow!("credentials.{what}: {e}")),
            }
        };
        Ok(Auth {
            spec: spec.clone(),
            api_key: get(&c.api_key, "api_key")?,
            token: get(&c.token, "token")?,
            client_id: c.client_id.clone(),
            client_secret: get(&c.client_secret, "client_secret")?,
            cached: None,
        })
    }

    /// Forget a cached token (after a 401).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// Add authentication to a request, fetching a token first if needed.
    pub async fn apply(
        &mut self,
        client: &reqwest::Client,
        base_url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        match &self.spec {
            AuthSpec::None => Ok(req),
            AuthSpec::ApiKeyHeader { header } => {
                Ok(req.header(header.as_str(), self.api_key.clone().unwrap_or_default()))
            }
            AuthSpec::Bearer => Ok(req.bearer_auth(self.token.clone().unwrap_or_default())),
            AuthSpec::Oauth2ClientCredentials { token_path, scope } => {
                if let Some((tok, until)) = &self.cached
                    && Instant::now() < *until
                {
                    return Ok(req.bearer_auth(tok));
                }
                let mut form = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", self.client_id.clone().unwrap_or_default()),
                    ("client_secret", self.client_secret.clone().unwrap_or_default()),
                ];
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
                let resp = client
                    .post(format!("{base_url}{token_path}"))
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| net::from_reqwest(&e))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.text().await.map_err(|e| net::from_reqwest(&e))?;
                if !status.is_success() {
                    return Err(match net::from_status(status, &headers, &body) {
                        Failure::Unauthorized(r) => {
                            Failure::Permanent(format!("token request refused (check client_id/client_secret): {r}"))
                        }
                        other => other,
                    });
                }
                let v = net::parse_json(&body)?;
                let tok = v["access_token"]
                    .as_str()
                    .ok_or_else(|| Failure::Permanent("token response has no access_token".into()))?
                    .to_string();
                let ttl = v["expires_in"].as_u64().unwrap_or(300);
                // Renew a little early so a request never goes out with a token about to lapse.
                let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(ttl / 10 + 1).max(1));
                self.cached = Some((tok.clone(), until));
                Ok(req.bearer_auth(tok))
            }
        }
    }
}
