//! OAuth 2.0 rules: what a client (a service principal with OAuth settings) may ask for, the
//! errors of RFC 6749 §5.2, and the claims of RFC 9068 JWT access tokens.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::ValidationError;

/// A grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// A workload gets a token for itself (RFC 6749 §4.4).
    ClientCredentials,
    /// A user signs in through the browser and the client exchanges the code it gets back,
    /// with PKCE (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// The client keeps a user's access going with refresh tokens, rotated at every use
    /// (RFC 6749 §6).
    RefreshToken,
    /// A device without a browser (a command line, a TV) shows a short code that the user
    /// approves on another screen, while it polls the token endpoint (RFC 8628).
    DeviceCode,
}

/// The `grant_type` with which a device redeems its device code (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    /// A server-side application: authenticates with a secret or a signed assertion.
    #[default]
    Confidential,
    /// A browser or native application: no secret (`none`), so PKCE is all that binds its
    /// codes, and it may not use `client_credentials`.
    Public,
}

/// A service principal's settings as an OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    #[serde(default)]
    pub client_type: ClientType,
    pub grant_types: Vec<GrantType>,
    /// Where codes may be sent (`authorization_code`): compared exactly, character for
    /// character, except that `http` on a loopback IP literal without a port (e.g.
    /// `http://127.0.0.1/callback`) takes any port (RFC 8252 §7.3). `https` URIs, `http` only on a loopback host, or a native app's private
    /// scheme (`com.example.app:/callback`, RFC 8252). At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Scopes the client may be given (RFC 6749 scope tokens). Without `scope` in a request, it
    /// gets all of them.
    pub scopes: Vec<String>,
    /// Resources (RFC 8707 `resource`, absolute URIs) tokens may be issued for; the first is
    /// the audience when a request names none. A client that signs users in may have none: its
    /// access tokens are then for the issuer's userinfo endpoint.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Access-token lifetime, 60–86400 seconds (default 300).
    #[serde(default = "default_access_token_seconds")]
    pub access_token_seconds: u32,
    /// How long a refresh token lasts unused, 300 seconds to 90 days (default 14 days). Each
    /// use replaces it with a new one.
    #[serde(default = "default_refresh_token_seconds")]
    pub refresh_token_seconds: u32,
    /// The longest a chain of refresh tokens lasts from the sign-in that began it, however
    /// often it is used: up to 365 days (default 90 days).
    #[serde(default = "default_refresh_chain_seconds")]
    pub refresh_chain_seconds: u32,
    /// Whether users must approve what this client asks for before it gets it (third-party
    /// applications). The approval is remembered until the user withdraws it.
    #[serde(default)]
    pub require_consent: bool,
    /// Whether authorization requests must be pushed first (RFC 9126).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// The algorithm of this client's ID and access tokens (default ES256; RS256 or EdDSA
    /// for libraries that need them).
    #[serde(default)]
    pub signing_alg: crate::jose::SigningAlgorithm,
    /// Put the user's groups (`groups`: names) into ID and access tokens.
    #[serde(default)]
    pub groups_claim: bool,
    /// Put the user's role names (`roles`) into ID and access tokens.
    #[serde(default)]
    pub roles_claim: bool,
    /// Where the browser may be sent after the user signs out at the application's request
    /// (OIDC RP-Initiated Logout), compared exactly. At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where to POST a logout token when a session the client got tokens from ends (OIDC
    /// Back-Channel Logout): `https`, or `http` on a loopback host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Public keys (JWKs) for `private_key_jwt` client authentication (RFC 7523): the client
    /// signs an assertion with its private key instead of sending a secret. At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub jwks: Vec<serde_json::Value>,
}

fn default_access_token_seconds() -> u32 {
    300
}

/// What a registration that names only its grant types gets: the same defaults as a JSON
/// document that leaves the other fields out.
impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            client_type: ClientType::default(),
            grant_types: Vec::new(),
            redirect_uris: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            access_token_seconds: default_access_token_seconds(),
            refresh_token_seconds: default_refresh_token_seconds(),
            refresh_chain_seconds: default_refresh_chain_seconds(),
            require_consent: false,
            require_pushed_authorization_requests: false,
            signing_alg: crate::jose::SigningAlgorithm::default(),
            groups_claim: false,
            roles_claim: false,
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            jwks: Vec::new(),
        }
    }
}

fn default_refresh_token_seconds() -> u32 {
    14 * 86_400
}

fn default_refresh_chain_seconds() -> u32 {
    90 * 86_400
}

/// The OpenID Connect scopes every client that signs users in may ask for.
pub const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];
/// The scope that keeps refresh tokens working after the user's session ends.
pub const OFFLINE_ACCESS: &str = "offline_access";
const MAX_REDIRECT_URIS: usize = 10;

const MAX_SCOPES: usize = 50;
const MAX_CLIENT_KEYS: usize = 10;
/// Members that only private or symmetric keys have: never accepted as a client's public key.
const SECRET_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
/// Signature algorithms a client assertion may use: asymmetric only (no `none`, no HMAC).
const ASSERTION_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// A client's public key, or why it is not one.
fn client_key(value: &serde_json::Value) -> Result<Jwk, String> {
    if let Some(member) = SECRET_MEMBERS.iter().find(|m| value.get(**m).is_some()) {
        return Err(format!(
            "a key has the private member {member:?}: register only the public key"
        ));
    }
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| format!("a key is not a JWK: {e}"))?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(_)
        | AlgorithmParameters::RSA(_)
        | AlgorithmParameters::OctetKeyPair(_) => Ok(jwk),
        _ => Err("keys must be EC, RSA or OKP public keys".into()),
    }
}

/// The `client_assertion_type` of RFC 7523 client authentication.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest an assertion may live: its `jti` is remembered until it expires.
const MAX_ASSERTION_SECONDS: i64 = 600;
/// How far a client's clock may be off ours.
const CLOCK_LEEWAY_SECONDS: i64 = 30;

/// The client an assertion says it comes from (its `iss`), before anything is verified: only
/// to find the keys to verify it with.
pub fn assertion_issuer(assertion: &str) -> Result<String, OAuthError> {
    let claims = unverified_part(assertion, 1)
        .ok_or_else(|| OAuthError::InvalidClient("client_assertion is not a JWT".into()))?;
    claims["iss"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| OAuthError::InvalidClient("client_assertion has no iss".into()))
}

/// Part `index` (0 the header, 1 the payload) of a compact JWS, as JSON, unverified: to read
/// what a token claims to be even when its algorithm is one the JOSE library cannot name
/// (`none`), so the refusal can say why.
fn unverified_part(token: &str, index: usize) -> Option<serde_json::Value> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        parts.get(index)?,
    )
    .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A verified client assertion: its `jti` must be used once, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub expires_at: i64,
}

impl ClientSettings {
    /// Verifies an RFC 7523 client assertion for `client_id`: signed by one of the client's
    /// keys with an asymmetric algorithm, `iss` and `sub` the client, `aud` one of `audiences`
    /// (the token endpoint or the issuer), unexpired and short-lived, with a `jti`.
    pub fn verify_assertion(
        &self,
        assertion: &str,
        client_id: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<VerifiedAssertion, OAuthError> {
        let refuse = |why: &str| OAuthError::InvalidClient(format!("client_assertion {why}"));
        let wrong_algorithm = |alg: &str| {
            refuse(&format!(
                "must be signed with ES256, ES384, RS256, PS256 or EdDSA, not {alg}"
            ))
        };
        let header = match jsonwebtoken::decode_header(assertion) {
            Ok(header) => header,
            // A header that names an algorithm the library does not know (`none`) is refused
            // as that, not as something unreadable.
            Err(_) => {
                let named = unverified_part(assertion, 0)
                    .and_then(|h| h["alg"].as_str().map(str::to_owned));
                return Err(match named {
                    Some(alg) => wrong_algorithm(&alg),
                    None => refuse("is not a JWT"),
                });
            }
        };
        if !ASSERTION_ALGORITHMS.contains(&header.alg) {
            return Err(wrong_algorithm(&format!("{:?}", header.alg)));
        }
        let keys: Vec<Jwk> = self
            .jwks
            .iter()
            .filter_map(|k| client_key(k).ok())
            .collect();
        let key = match &header.kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid)),
            None if keys.len() == 1 => keys.first(),
            None => None,
        }
        .ok_or_else(|| refuse("is signed with a key this client has not registered"))?;
        let decoding = DecodingKey::from_jwk(key).map_err(|_| refuse("names an unusable key"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[client_id]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        // Times are checked below against the caller's `now`, one clock for every rule.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &validation)
            .map_err(|e| refuse(&format!("was refused: {e}")))?
            .claims;
        if claims["sub"].as_str() != Some(client_id) {
            return Err(refuse("must have the client as its sub"));
        }
        let expires_at = claims["exp"].as_i64().ok_or_else(|| refuse("has no exp"))?;
        if expires_at + CLOCK_LEEWAY_SECONDS < now {
            return Err(refuse("has expired"));
        }
        if claims["nbf"]
            .as_i64()
            .is_some_and(|nbf| nbf > now + CLOCK_LEEWAY_SECONDS)
        {
            return Err(refuse("is not valid yet"));
        }
        if expires_at - now > MAX_ASSERTION_SECONDS {
            return Err(refuse("must expire within 10 minutes"));
        }
        let jti = claims["jti"]
            .as_str()
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| refuse("needs a jti (at most 256 characters)"))?;
        Ok(VerifiedAssertion {
            jti: jti.to_owned(),
            expires_at,
        })
    }
}
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

/// What an application is, as a person registering one thinks of it; it decides the OAuth
/// settings the application starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationKind {
    /// A server-side workload that gets tokens for itself.
    Workload,
    /// A server-side web application that signs users in.
    Web,
    /// A single-page or native app: public, PKCE only.
    Public,
    /// A device without a browser (RFC 8628).
    Device,
    /// A service principal that only uses API keys: no OAuth client at all.
    KeysOnly,
}

impl ApplicationKind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "workload" => Self::Workload,
            "web" => Self::Web,
            "public" => Self::Public,
            "device" => Self::Device,
            "keys" => Self::KeysOnly,
            _ => return None,
        })
    }

    /// The client settings it starts with, checked as the API would check them; `None` for
    /// keys only. `redirect_uri` is where an application that signs people in sends them
    /// back to; `resource` is the API a workload's tokens are for. Each is required by the
    /// kinds that need it, so nothing half-usable is registered.
    pub fn starting_settings(
        self,
        redirect_uri: Option<String>,
        resource: Option<String>,
    ) -> Result<Option<ClientSettings>, ValidationError> {
        if matches!(self, Self::Web | Self::Public) && redirect_uri.is_none() {
            return Err(ValidationError::new(
                "redirect_uri",
                "is needed by an application that signs people in: the address to send them back to",
            ));
        }
        if self == Self::Workload && resource.is_none() {
            return Err(ValidationError::new(
                "resource",
                "is needed by a workload: the API its tokens are for, e.g. https://api.example.com",
            ));
        }
        let signs_in = |client_type, grants: Vec<GrantType>| ClientSettings {
            client_type,
            grant_types: grants,
            redirect_uris: redirect_uri.clone().into_iter().collect(),
            scopes: ["openid", "profile", "email", "offline_access"]
                .map(String::from)
                .to_vec(),
            ..ClientSettings::default()
        };
        let settings = match self {
            Self::Workload => ClientSettings {
                grant_types: vec![GrantType::ClientCredentials],
                resources: resource.into_iter().collect(),
                ..ClientSettings::default()
            },
            Self::Web => signs_in(
                ClientType::Confidential,
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            ),
            Self::Public => signs_in(
                ClientType::Public,
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            ),
            Self::Device => ClientSettings {
                redirect_uris: Vec::new(),
                ..signs_in(
                    ClientType::Public,
                    vec![GrantType::DeviceCode, GrantType::RefreshToken],
                )
            },
            Self::KeysOnly => return Ok(None),
        };
        settings.validate()?;
        Ok(Some(settings))
    }
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
        let signs_users_in = self.signs_users_in();
        if self.grants(GrantType::ClientCredentials) && self.client_type == ClientType::Public {
            return Err(ValidationError::new(
                "grant_types",
                "a public client has no secret, so it may not use client_credentials",
            ));
        }
        if self.grants(GrantType::RefreshToken) && !signs_users_in {
            return Err(ValidationError::new(
                "grant_types",
                "refresh_token needs authorization_code or device_code: refresh tokens come from user sign-ins",
            ));
        }
        if self.grants(GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(ValidationError::new(
                "redirect_uris",
                "authorization_code needs at least one redirect URI",
            ));
        }
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(ValidationError::new(
                "redirect_uris",
                format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
            ));
        }
        for uri in &self.redirect_uris {
            crate::authorize::check_redirect_uri(uri)
                .map_err(|message| ValidationError::new("redirect_uris", message))?;
        }
        if self.post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(ValidationError::new(
                "post_logout_redirect_uris",
                format!("at most {MAX_REDIRECT_URIS} URIs"),
            ));
        }
        for uri in &self.post_logout_redirect_uris {
            crate::authorize::check_redirect_uri(uri)
                .map_err(|message| ValidationError::new("post_logout_redirect_uris", message))?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            let web = uri.starts_with("https://") || uri.starts_with("http://");
            match crate::authorize::check_redirect_uri(uri) {
                Ok(()) if web => {}
                Ok(()) => {
                    return Err(ValidationError::new(
                        "backchannel_logout_uri",
                        "must be an https URI (or http on a loopback host)",
                    ));
                }
                Err(message) => {
                    return Err(ValidationError::new("backchannel_logout_uri", message));
                }
            }
        }
        if (self.resources.is_empty() && !signs_users_in) || self.resources.len() > MAX_RESOURCES {
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
        if self.jwks.len() > MAX_CLIENT_KEYS {
            return Err(ValidationError::new(
                "jwks",
                format!("at most {MAX_CLIENT_KEYS} keys"),
            ));
        }
        for key in &self.jwks {
            client_key(key).map_err(|message| ValidationError::new("jwks", message))?;
        }
        if !(60..=86_400).contains(&self.access_token_seconds) {
            return Err(ValidationError::new(
                "access_token_seconds",
                "must be between 60 and 86400",
            ));
        }
        if !(300..=90 * 86_400).contains(&self.refresh_token_seconds) {
            return Err(ValidationError::new(
                "refresh_token_seconds",
                "must be between 300 and 7776000 (90 days)",
            ));
        }
        if !(300..=365 * 86_400).contains(&self.refresh_chain_seconds) {
            return Err(ValidationError::new(
                "refresh_chain_seconds",
                "must be between 300 and 31536000 (365 days)",
            ));
        }
        Ok(())
    }

    /// Whether the client may use `grant`.
    pub fn grants(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether users sign in to this client (in a browser, or approving a device's code).
    pub fn signs_users_in(&self) -> bool {
        self.grants(GrantType::AuthorizationCode) || self.grants(GrantType::DeviceCode)
    }

    /// Whether the client may be given `scope` when a user signs in: its own scopes, the
    /// OpenID Connect ones, and `offline_access` if it may refresh.
    fn allows_user_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
            || OIDC_SCOPES.contains(&scope)
            || (scope == OFFLINE_ACCESS && self.grants(GrantType::RefreshToken))
    }

    /// The scopes to grant for a request's `scope` parameter: all the client's own scopes when
    /// it is absent; otherwise each requested scope, each of which must be allowed. A user's
    /// sign-in (`for_user`) may also ask for the OpenID Connect scopes.
    pub fn grant_scopes(
        &self,
        requested: Option<&str>,
        for_user: bool,
    ) -> Result<Vec<String>, OAuthError> {
        let Some(requested) = requested else {
            return Ok(self.scopes.clone());
        };
        let mut granted: Vec<String> = Vec::new();
        for scope in requested.split(' ').filter(|s| !s.is_empty()) {
            let allowed = if for_user {
                self.allows_user_scope(scope)
            } else {
                self.scopes.iter().any(|s| s == scope)
            };
            if !allowed {
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

    /// The audience for a request's `resource` parameters (RFC 8707): one allowed resource,
    /// else the client's first, else `fallback`.
    pub fn audience(&self, requested: &[String], fallback: &str) -> Result<String, OAuthError> {
        match requested {
            [] => Ok(self
                .resources
                .first()
                .cloned()
                .unwrap_or_else(|| fallback.to_owned())),
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

/// What a user approved for an application, as shown to them and to administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentSummary {
    pub client_id: crate::ServicePrincipalId,
    /// The application's name.
    pub application: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
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
    /// The code or refresh token is unknown, used, expired, revoked, or not this client's.
    #[error("{0}")]
    InvalidGrant(String),
    /// RFC 7009 §2.2.1.
    #[error("{0}")]
    UnsupportedTokenType(String),
    /// RFC 8628 §3.5: the user has not answered yet; poll again after the interval.
    #[error("the user has not yet approved or denied this device's code; keep polling")]
    AuthorizationPending,
    /// RFC 8628 §3.5: polled sooner than the interval; the interval grows by five seconds.
    #[error("polled too often: wait {0} seconds between requests")]
    SlowDown(u32),
    /// RFC 8628 §3.5: the user denied the request.
    #[error("the user denied the request")]
    AccessDenied,
    /// RFC 8628 §3.5: the device code expired before the user approved it.
    #[error("the device code has expired; start again")]
    ExpiredToken,
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
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedTokenType(_) => "unsupported_token_type",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown(_) => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
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
    /// What the user's sign-in proved, for tokens issued to a user (not to a client itself).
    #[serde(flatten, skip_serializing_if = "Option::is_none", default)]
    pub user: Option<UserAuthentication>,
}

/// How and when a user signed in, as carried by user tokens (OIDC Core §2, RFC 9068 §2.2.1),
/// with the groups and roles the client asked to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthentication {
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    /// The sign-in session (OIDC Front/Back-Channel Logout `sid`).
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub roles: Option<Vec<String>>,
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
            user: None,
        }
    }
}

/// Decodes a token this issuer signed: by one of `keys` (the issuer's published JWKs), with
/// that key's own algorithm, header `typ`, from `issuer`. Times are left to the caller.
/// Nothing else (`none`, HMAC, a key used with another algorithm, another issuer's key,
/// another kind of token) passes.
fn decode_own<T: serde::de::DeserializeOwned>(
    token: &str,
    typ: &str,
    keys: &[serde_json::Value],
    issuer: &str,
) -> Result<T, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT".to_owned())?;
    if header.typ.as_deref() != Some(typ) {
        return Err(format!("not a {typ} token"));
    }
    let kid = header.kid.ok_or("the token names no key")?;
    let jwk = keys
        .iter()
        .find(|k| k["kid"].as_str() == Some(kid.as_str()))
        .ok_or("signed with a key this issuer does not publish")?;
    let key_alg = jwk["alg"]
        .as_str()
        .and_then(crate::jose::SigningAlgorithm::parse)
        .ok_or("a published key without a known alg")?;
    let expected = match key_alg {
        crate::jose::SigningAlgorithm::ES256 => Algorithm::ES256,
        crate::jose::SigningAlgorithm::RS256 => Algorithm::RS256,
        crate::jose::SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    };
    if header.alg != expected {
        return Err("the token's alg is not its key's".into());
    }
    let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| format!("bad key: {e}"))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key: {e}"))?;
    let mut validation = Validation::new(expected);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    jsonwebtoken::decode::<T>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("refused: {e}"))
}

/// The parts of an ID token used as `id_token_hint` (OIDC RP-Initiated Logout): who, for
/// which client, in which session. An expired ID token is still a good hint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    pub aud: String,
    pub sid: Option<String>,
}

pub fn verify_id_token_hint(
    token: &str,
    keys: &[serde_json::Value],
    issuer: &str,
) -> Result<IdTokenHint, String> {
    decode_own(token, "JWT", keys, issuer)
}

/// Verifies one of our own access tokens: an RFC 9068 JWT (`typ: at+jwt`) from `issuer`,
/// valid at `now`.
pub fn verify_access_token(
    token: &str,
    keys: &[serde_json::Value],
    issuer: &str,
    now: i64,
) -> Result<AccessTokenClaims, String> {
    let claims: AccessTokenClaims = decode_own(token, "at+jwt", keys, issuer)?;
    if claims.exp <= now {
        return Err("the token has expired".into());
    }
    if claims.nbf > now + CLOCK_LEEWAY_SECONDS {
        return Err("the token is not valid yet".into());
    }
    Ok(claims)
}

/// The issuer a JWT says it comes from, read without checking anything: only to choose whose
/// keys to check it with. Everything in it is the sender's claim until a signature check by
/// that issuer's keys (which also compares `iss`) succeeds.
pub fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok().map(|c| c.iss)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_kind_of_application_starts_with_settings_the_api_accepts() {
        let web = ApplicationKind::Web
            .starting_settings(Some("https://app.example/cb".into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(web.client_type, ClientType::Confidential);
        assert_eq!(web.redirect_uris, ["https://app.example/cb"]);
        let device = ApplicationKind::Device
            .starting_settings(None, None)
            .unwrap()
            .unwrap();
        assert_eq!(device.grant_types[0], GrantType::DeviceCode);
        assert!(device.redirect_uris.is_empty());
        let workload = ApplicationKind::Workload
            .starting_settings(None, Some("https://api.example".into()))
            .unwrap()
            .unwrap();
        assert_eq!(workload.resources, ["https://api.example"]);
        assert!(matches!(
            ApplicationKind::KeysOnly.starting_settings(None, None),
            Ok(None)
        ));
    }

    #[test]
    fn an_application_missing_what_its_kind_needs_is_refused() {
        for (kind, redirect, resource, field) in [
            (ApplicationKind::Web, None, None, "redirect_uri"),
            (ApplicationKind::Public, None, None, "redirect_uri"),
            (ApplicationKind::Workload, None, None, "resource"),
            (
                ApplicationKind::Web,
                Some("ftp://app.example/cb".to_owned()),
                None,
                "redirect_uris",
            ),
        ] {
            let refusal = kind.starting_settings(redirect, resource).unwrap_err();
            assert_eq!(refusal.field, field, "{kind:?}: {refusal:?}");
        }
        assert_eq!(ApplicationKind::parse("robot"), None);
    }

    use super::*;

    #[test]
    fn the_claimed_issuer_is_read_from_the_payload_alone() {
        use base64::Engine;
        let encode = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            encode(r#"{"alg":"none"}"#),
            encode(r#"{"iss":"https://id.example/t/acme","sub":"x"}"#)
        );
        assert_eq!(
            claimed_issuer(&token).as_deref(),
            Some("https://id.example/t/acme")
        );
        assert_eq!(claimed_issuer("a.%%%.c"), None);
        assert_eq!(claimed_issuer("no-dots"), None);
        assert_eq!(
            claimed_issuer(&format!("a.{}.c", encode(r#"{"iss":7}"#))),
            None
        );
    }

    fn settings() -> ClientSettings {
        ClientSettings {
            client_type: ClientType::Confidential,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["orders:read".into(), "orders:write".into()],
            resources: vec![
                "https://api.example.com".into(),
                "https://billing.example.com".into(),
            ],
            access_token_seconds: 300,
            jwks: Vec::new(),
            redirect_uris: Vec::new(),
            refresh_token_seconds: 3600,
            refresh_chain_seconds: 86_400,
            require_consent: false,
            require_pushed_authorization_requests: false,
            groups_claim: false,
            roles_claim: false,
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            signing_alg: crate::jose::SigningAlgorithm::ES256,
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
        bad.jwks = vec![serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})];
        assert_eq!(bad.validate().unwrap_err().field, "jwks");
        let mut bad = settings();
        let mut private = crate::jose::generate_es256().unwrap().public_jwk;
        private["d"] = "AAAA".into();
        bad.jwks = vec![private];
        assert!(
            bad.validate()
                .unwrap_err()
                .message
                .contains("private member")
        );
        let mut bad = settings();
        bad.access_token_seconds = 10;
        assert_eq!(bad.validate().unwrap_err().field, "access_token_seconds");
    }

    #[test]
    fn scopes_are_granted_only_when_allowed() {
        let s = settings();
        assert_eq!(s.grant_scopes(None, false).unwrap(), s.scopes);
        assert_eq!(
            s.grant_scopes(Some("orders:read  orders:read"), false)
                .unwrap(),
            ["orders:read"]
        );
        assert_eq!(
            s.grant_scopes(Some("orders:read admin"), false)
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
        assert!(s.grant_scopes(Some(""), false).unwrap().is_empty());
    }

    #[test]
    fn the_audience_is_one_allowed_resource() {
        let s = settings();
        assert_eq!(
            s.audience(&[], "https://fallback").unwrap(),
            "https://api.example.com"
        );
        assert_eq!(
            s.audience(&["https://billing.example.com".into()], "")
                .unwrap(),
            "https://billing.example.com"
        );
        assert_eq!(
            s.audience(&["https://evil.example".into()], "")
                .unwrap_err()
                .code(),
            "invalid_target"
        );
        assert_eq!(
            s.audience(
                &[
                    "https://api.example.com".into(),
                    "https://billing.example.com".into()
                ],
                ""
            )
            .unwrap_err()
            .code(),
            "invalid_target"
        );
    }

    #[test]
    fn only_our_own_live_access_tokens_verify() {
        let generated = crate::jose::generate_es256().unwrap();
        let key = crate::jose::SigningKey::es256(generated.kid.clone(), &generated.private_pkcs8)
            .unwrap();
        let keys = vec![generated.public_jwk.clone()];
        let issuer = "https://id.example/t/a";
        let now = 1_800_000_000;
        let claims = |iat: i64, exp: i64| {
            serde_json::json!({"iss": issuer, "sub": "s", "aud": "https://api", "client_id": "c",
                "iat": iat, "nbf": iat, "exp": exp, "jti": "j"})
        };
        let good = key.sign("at+jwt", &claims(now, now + 300)).unwrap();
        assert_eq!(
            verify_access_token(&good, &keys, issuer, now).unwrap().sub,
            "s"
        );
        let refused = |token: &str| verify_access_token(token, &keys, issuer, now).unwrap_err();
        assert!(
            refused(&key.sign("at+jwt", &claims(now - 600, now - 1)).unwrap()).contains("expired")
        );
        assert!(
            refused(&key.sign("at+jwt", &claims(now + 600, now + 900)).unwrap())
                .contains("not valid yet")
        );
        assert!(refused(&key.sign("JWT", &claims(now, now + 300)).unwrap()).contains("at+jwt"));
        assert!(verify_access_token(&good, &keys, "https://id.example/t/b", now).is_err());
        let stranger = crate::jose::generate_es256().unwrap();
        assert!(verify_access_token(&good, &[stranger.public_jwk], issuer, now).is_err());
        // alg none, and HS256 keyed with the public key (algorithm confusion).
        let b64 = |v: &serde_json::Value| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                v.to_string(),
            )
        };
        let none_header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": generated.kid});
        refused(&format!(
            "{}.{}.",
            b64(&none_header),
            b64(&claims(now, now + 300))
        ));
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(generated.kid.clone());
        let confused = jsonwebtoken::encode(
            &header,
            &claims(now, now + 300),
            &jsonwebtoken::EncodingKey::from_secret(generated.public_jwk.to_string().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert!(refused(&confused).contains("alg"));
    }

    fn assertion(key: &crate::jose::SigningKey, claims: serde_json::Value) -> String {
        key.sign("JWT", &claims).unwrap()
    }

    #[test]
    fn client_assertions_are_verified() {
        let generated = crate::jose::generate_es256().unwrap();
        let key = crate::jose::SigningKey::es256(generated.kid.clone(), &generated.private_pkcs8)
            .unwrap();
        let mut s = settings();
        s.jwks = vec![generated.public_jwk.clone()];
        let audiences = vec!["https://id.example/t/a/oauth/token".to_owned()];
        let now = 1_800_000_000;
        let good = serde_json::json!({"iss": "c1", "sub": "c1", "aud": audiences[0],
            "exp": now + 60, "jti": "j1"});
        let verified = s
            .verify_assertion(&assertion(&key, good.clone()), "c1", &audiences, now)
            .unwrap();
        assert_eq!(verified.jti, "j1");
        assert_eq!(
            assertion_issuer(&assertion(&key, good.clone())).unwrap(),
            "c1"
        );

        let refused = |claims: serde_json::Value| {
            s.verify_assertion(&assertion(&key, claims), "c1", &audiences, now)
                .unwrap_err()
                .code()
        };
        let mut other_audience = good.clone();
        other_audience["aud"] = "https://elsewhere".into();
        assert_eq!(refused(other_audience), "invalid_client");
        let mut other_subject = good.clone();
        other_subject["sub"] = "c2".into();
        assert_eq!(refused(other_subject), "invalid_client");
        let mut long_lived = good.clone();
        long_lived["exp"] = (now + 3600).into();
        assert_eq!(refused(long_lived), "invalid_client");
        let mut expired = good.clone();
        expired["exp"] = (now - 120).into();
        assert_eq!(refused(expired), "invalid_client");
        let mut early = good.clone();
        early["nbf"] = (now + 120).into();
        assert_eq!(refused(early), "invalid_client");
        let mut no_jti = good.clone();
        no_jti.as_object_mut().unwrap().remove("jti");
        assert_eq!(refused(no_jti), "invalid_client");
        // Signed with a key the client never registered.
        let stranger = crate::jose::generate_es256().unwrap();
        let stranger =
            crate::jose::SigningKey::es256(generated.kid, &stranger.private_pkcs8).unwrap();
        assert!(
            s.verify_assertion(&assertion(&stranger, good.clone()), "c1", &audiences, now)
                .is_err()
        );
        // alg none and HMAC signed with the public key's bytes (algorithm confusion).
        let unsigned = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none"}"#
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                good.to_string()
            )
        );
        assert!(
            s.verify_assertion(&unsigned, "c1", &audiences, now)
                .is_err()
        );
        let confused = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &good,
            &jsonwebtoken::EncodingKey::from_secret(generated.public_jwk.to_string().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert!(
            s.verify_assertion(&confused, "c1", &audiences, now)
                .is_err()
        );
    }
}
