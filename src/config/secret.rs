//! Secrets: never inline in a configuration file. A secret is named by where it lives: an
//! environment variable, a file, or a systemd credential (`LoadCredential=`).

use serde::Deserialize;

/// Where a secret lives. Exactly one of the keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    Env {
        env: String,
    },
    File {
        file: std::path::PathBuf,
    },
    /// A file in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=NAME:...`).
    Credential {
        credential: String,
    },
    /// Accepted by the parser only so that validation can say clearly why it is refused.
    Inline(String),
}

impl SecretRef {
    /// Read the secret's value. The error says where it was looked for, never the value.
    pub fn resolve(&self) -> Result<String, String> {
        let trimmed = |s: String| s.trim_end_matches(['\r', '\n']).to_string();
        match self {
            SecretRef::Env { env } => std::env::var(env)
                .map_err(|_| format!("environment variable {env} is not set"))
                .and_then(|v| if v.is_empty() { Err(format!("environment variable {env} is empty")) } else { Ok(v) }),
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map(trimmed)
                .map_err(|e| format!("cannot read secret file {}: {e}", file.display())),
            SecretRef::Credential { credential } => {
                let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
                    format!("credential {credential:?} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)")
                })?;
                let path = std::path::Path::new(&dir).join(credential);
                std::fs::read_to_string(&path)
                    .map(trimmed)
                    .map_err(|e| format!("cannot read credential {}: {e}", path.display()))
            }
            SecretRef::Inline(_) => Err(
                "secrets are never written inline: use { env = \"VAR\" }, { file = \"/path\" } or { credential = \"name\" }".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_are_refused_with_the_way_out() {
        let s: SecretRef = serde_json::from_value(serde_json::json!("hunter2")).unwrap();
        let e = s.resolve().unwrap_err();
        assert!(e.contains("never written inline"), "{e}");
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn file_secrets_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s: SecretRef = serde_json::from_value(serde_json::json!({"file": p})).unwrap();
        assert_eq!(s.resolve().unwrap(), "s3cret");
        let missing: SecretRef =
            serde_json::from_value(serde_json::json!({"env": "DVC_BRIDGE_TEST_SURELY_UNSET"})).unwrap();
        assert!(missing.resolve().unwrap_err().contains("DVC_BRIDGE_TEST_SURELY_UNSET"));
    }
}
