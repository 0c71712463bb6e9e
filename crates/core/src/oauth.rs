//! OAuth 2.0 rules: what a client (a service principal with OAuth settings) may ask for, the
//! errors of RFC 6749 §5.2, and the claims of RFC 9068 JWT access tokens.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;

/// A grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// A workload gets a token for itself (RFC 6749 §4.4).
    ClientCredentials,
}

/// A service principal's settings as an OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may be given (RFC 6749 scope tokens). Without `scope` in a request, it
    /// gets all of them.
    pub scopes: Vec<String>,
    /// Resources (RFC 8707 `resource`, absolute URIs) tokens may be issued for; the first is
    /// the audience when a request names none.
    pub resources: Vec<String>,
    /// Access-token lifetime, 60–86400 seconds (default 300).
    #[serde(default = "default_access_token_seconds")]
    pub access_token_seconds: u32,
}

fn default_access_token_seconds() -> u32 {
    300
}

const MAX_SCOPES: usize = 50;
const MAX_RESOURCES: usize = 20;

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An absolute `https` URI (or `http` for local development), without a fragment (RFC 8707).
fn is_resource(s: &str) -> bool {
    let scheme_ok = s.starts_with("https://") || s.starts_with("http://");
    scheme_ok && s.len() <= 512 && !s.contains('#') && !s.chars().any(char::is_whitespace)
}

impl ClientSettings {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.grant_types.is_empty() {
            return Err(ValidationError::new(
                "grant_types",
                "name at least one grant, e.g. [\"client_credentials\"]",
            ));
        }
        if self.scopes.len() > MAX_SCOPES {
            return Err(ValidationError::new(
                "scopes",
                format!("at most {MAX_SCOPES} scopes"),
            ));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(ValidationError::new(
                "scopes",
                format!(
                    "{bad:?} is not a scope token: printable ASCII without spaces, quotes or backslashes"
                ),
            ));
        }
        if self.resources.is_empty() || self.resources.len() > MAX_RESOURCES {
            return Err(ValidationError::new(
                "resources",
                format!(
                    "name 1 to {MAX_RESOURCES} resources (the APIs tokens are for), e.g. [\"https://api.example.com\"]"
                ),
            ));
        }
        if let Some(bad) = self.resources.iter().find(|r| !is_resource(r)) {
            return Err(ValidationError::new(
                "resources",
                format!("{bad:?} must be an absolute https:// (or http://) URI without a fragment"),
            ));
        }
        if !(60..=86_400).contains(&self.access_token_seconds) {
            return Err(ValidationError::new(
                "access_token_seconds",
                "must be between 60 and 86400",
            ));
        }
        Ok(())
    }

    /// The scopes to grant for a request's `scope` parameter: all allowed ones when it is
    /// absent; otherwise each requested scope, each of which must be allowed.
    pub fn grant_scopes(&self, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
        let Some(requested) = requested else {
            return Ok(self.scopes.clone());
        };
        let mut granted: Vec<String> = Vec::new();
        for scope in requested.split(' ').filter(|s| !s.is_empty()) {
            if !self.scopes.iter().any(|s| s == scope) {
                return Err(OAuthError::InvalidScope(format!(
                    "this client may not ask for the scope {scope:?}"
                )));
            }
            if !granted.iter().any(|s| s == scope) {
                granted.push(scope.to_owned());
            }
        }
        Ok(granted)
    }

    /// The audience for a request's `resource` parameters (RFC 8707): one allowed resource.
    pub fn audience(&self, requested: &[String]) -> Result<String, OAuthError> {
        match requested {
            [] => self
                .resources
                .first()
                .cloned()
                .ok_or_else(|| OAuthError::InvalidTarget("this client has no resources".into())),
            [one] if self.resources.contains(one) => Ok(one.clone()),
            [one] => Err(OAuthError::InvalidTarget(format!(
                "this client may not get tokens for {one:?}"
            ))),
            _ => Err(OAuthError::InvalidTarget(
                "ask for one resource per token".into(),
            )),
        }
    }
}

/// The errors of the token endpoint (RFC 6749 §5.2, RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
}

impl OAuthError {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
        }
    }
}

/// The claims of an RFC 9068 JWT access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub scope: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl AccessTokenClaims {
    /// A client-credentials token: the client is its own subject.
    pub fn for_client(
        issuer: &str,
        client_id: &str,
        audience: String,
        scopes: &[String],
        now: OffsetDateTime,
        lifetime_seconds: u32,
        jti: String,
    ) -> Self {
        let iat = now.unix_timestamp();
        Self {
            iss: issuer.to_owned(),
            sub: client_id.to_owned(),
            aud: audience,
            client_id: client_id.to_owned(),
            scope: scopes.join(" "),
            iat,
            nbf: iat,
            exp: iat + i64::from(lifetime_seconds),
            jti,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["orders:read".into(), "orders:write".into()],
            resources: vec![
                "https://api.example.com".into(),
                "https://billing.example.com".into(),
            ],
            access_token_seconds: 300,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().validate().is_ok());
        let mut bad = settings();
        bad.scopes.push("has space".into());
        assert_eq!(bad.validate().unwrap_err().field, "scopes");
        let mut bad = settings();
        bad.resources = vec!["api.example.com".into()];
        assert_eq!(bad.validate().unwrap_err().field, "resources");
        let mut bad = settings();
        bad.resources.push("https://x.example/#frag".into());
        assert_eq!(bad.validate().unwrap_err().field, "resources");
        let mut bad = settings();
        bad.grant_types.clear();
        assert_eq!(bad.validate().unwrap_err().field, "grant_types");
        let mut bad = settings();
        bad.access_token_seconds = 10;
        assert_eq!(bad.validate().unwrap_err().field, "access_token_seconds");
    }

    #[test]
    fn scopes_are_granted_only_when_allowed() {
        let s = settings();
        assert_eq!(s.grant_scopes(None).unwrap(), s.scopes);
        assert_eq!(
            s.grant_scopes(Some("orders:read  orders:read")).unwrap(),
            ["orders:read"]
        );
        assert_eq!(
            s.grant_scopes(Some("orders:read admin"))
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
        assert!(s.grant_scopes(Some("")).unwrap().is_empty());
    }

    #[test]
    fn the_audience_is_one_allowed_resource() {
        let s = settings();
        assert_eq!(s.audience(&[]).unwrap(), "https://api.example.com");
        assert_eq!(
            s.audience(&["https://billing.example.com".into()]).unwrap(),
            "https://billing.example.com"
        );
        assert_eq!(
            s.audience(&["https://evil.example".into()])
                .unwrap_err()
                .code(),
            "invalid_target"
        );
        assert_eq!(
            s.audience(&[
                "https://api.example.com".into(),
                "https://billing.example.com".into()
            ])
            .unwrap_err()
            .code(),
            "invalid_target"
        );
    }
}
