//! Authenticating to one upstream system, per its descriptor's auth style.

use std::time::{Duration, Instant};

use crate::config::Credentials;
use crate::core::descriptor::{AuthSpec, SendAs};
use crate::net::{self, Failure};

/// Resolved credentials and any cached token.
pub struct Auth {
    spec: AuthSpec,
    api_key: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    cached: Option<(String, Instant)>,
}

/// Sessions whose lifetime the system does not tell are renewed after this long (and on any 401).
const SESSION_TTL: Duration = Duration::from_secs(15 * 60);

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
            username: c.username.clone(),
            password: get(&c.password, "password")?,
            cached: None,
        })
    }

    /// Forget a cached token (after a 401).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    fn cached(&self) -> Option<String> {
        self.cached.as_ref().filter(|(_, until)| Instant::now() < *until).map(|(t, _)| t.clone())
    }

    /// Add authentication to a request, fetching a token first if needed.
    pub async fn apply(
        &mut self,
        client: &reqwest::Client,
        base_url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        match self.spec.clone() {
            AuthSpec::None => Ok(req),
            AuthSpec::ApiKeyHeader { header } => {
                Ok(req.header(header.as_str(), self.api_key.clone().unwrap_or_default()))
            }
            AuthSpec::Bearer => Ok(req.bearer_auth(self.token.clone().unwrap_or_default())),
            AuthSpec::Oauth2ClientCredentials { token_path, scope } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", self.client_id.clone().unwrap_or_default()),
                    ("client_secret", self.client_secret.clone().unwrap_or_default()),
                ];
                form.extend(scope.map(|s| ("scope", s)));
                let tok = self.oauth_token(client, base_url, &token_path, form).await?;
                Ok(req.bearer_auth(tok))
            }
            AuthSpec::PasswordGrant { token_path, scope } => {
                let mut form = vec![
                    ("grant_type", "password".to_string()),
                    ("client_id", self.client_id.clone().unwrap_or_default()),
                    ("username", self.username.clone().unwrap_or_default()),
                    ("password", self.password.clone().unwrap_or_default()),
                ];
                form.extend(self.client_secret.clone().map(|s| ("client_secret", s)));
                form.extend(scope.map(|s| ("scope", s)));
                let tok = self.oauth_token(client, base_url, &token_path, form).await?;
                Ok(req.bearer_auth(tok))
            }
            AuthSpec::SessionLogin {
                login_path,
                username_field,
                password_field,
                session_token_path,
                send_as,
                send_name,
                send_prefix,
            } => {
                let tok = match self.cached() {
                    Some(t) => t,
                    None => {
                        let mut body = serde_json::Map::new();
                        body.insert(username_field, self.username.clone().unwrap_or_default().into());
                        body.insert(password_field, self.password.clone().unwrap_or_default().into());
                        let v =
                            post_for_json(client.post(format!("{base_url}{login_path}")).json(&body), "login").await?;
                        let tok = crate::core::mapping::lookup(&v, &session_token_path)
                            .and_then(|t| t.as_str())
                            .ok_or_else(|| {
                                Failure::Permanent(format!("the login answer has no token at `{session_token_path}`"))
                            })?
                            .to_string();
                        self.cached = Some((tok.clone(), Instant::now() + SESSION_TTL));
                        tok
                    }
                };
                let value = format!("{send_prefix}{tok}");
                Ok(match send_as {
                    SendAs::Header => req.header(send_name.as_str(), value),
                    SendAs::Query => req.query(&[(send_name.as_str(), value.as_str())]),
                })
            }
        }
    }

    async fn oauth_token(
        &mut self,
        client: &reqwest::Client,
        base_url: &str,
        token_path: &str,
        form: Vec<(&str, String)>,
    ) -> Result<String, Failure> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let v = post_for_json(client.post(format!("{base_url}{token_path}")).form(&form), "token request").await?;
        let tok = v["access_token"]
            .as_str()
            .ok_or_else(|| Failure::Permanent("token response has no access_token".into()))?
            .to_string();
        let ttl = v["expires_in"].as_u64().unwrap_or(300);
        // Renew a little early so a request never goes out with a token about to lapse.
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(ttl / 10 + 1).max(1));
        self.cached = Some((tok.clone(), until));
        Ok(tok)
    }
}

/// Send a credentials request and read its JSON answer; a refusal is permanent (wrong credentials
/// do not get better by retrying), everything else is classified as usual.
async fn post_for_json(req: reqwest::RequestBuilder, what: &str) -> Result<serde_json::Value, Failure> {
    let resp = req.send().await.map_err(|e| net::from_reqwest(&e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| net::from_reqwest(&e))?;
    if !status.is_success() {
        return Err(match net::from_status(status, &headers, &body) {
            Failure::Unauthorized(r) => {
                Failure::Permanent(format!("{what} refused (check the source's credentials): {r}"))
            }
            other => other,
        });
    }
    net::parse_json(&body)
}
