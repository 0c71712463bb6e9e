//! The authorization endpoint's rules (RFC 6749 §4.1, OpenID Connect Core §3.1): which
//! redirect URIs a client may register, what a request must hold (PKCE with S256, exact
//! redirect URI, `prompt`, `max_age`, `acr_values`), and the ID token it leads to.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::oauth::{ClientSettings, OAuthError};
use crate::session::{Assurance, Strength};

/// Why a redirect URI may not be registered, or `Ok`.
///
/// `https` anywhere; `http` only on a loopback host (RFC 8252 §7.3); a native app's
/// private-use scheme with a dot in it (RFC 8252 §7.1). Never a fragment, never user info.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > 512 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{uri:?} must be at most 512 characters without spaces"
        ));
    }
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URI: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!(
            "{uri:?} must not have a fragment (RFC 6749 §3.1.2)"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{uri:?} must not carry user information"));
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(()),
        "http" if is_loopback(parsed.host()) => Ok(()),
        "http" => Err(format!(
            "{uri:?}: plain http is allowed only on localhost, 127.0.0.1 or [::1]; use https"
        )),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "{uri:?} must be https, http on a loopback host, or a reverse-domain app scheme such as com.example.app:/callback"
        )),
    }
}

/// Whether `requested` is one of the client's `registered` redirect URIs: character for
/// character, except that a registered `http` URI on a loopback IP literal without a port
/// matches the same URI with any port (RFC 8252 §7.3), as a native app listens on whichever
/// port the system gave it at that moment.
pub fn redirect_uri_registered(registered: &[String], requested: &str) -> bool {
    registered.iter().any(|r| r == requested)
        || url::Url::parse(requested).is_ok_and(|parsed| {
            let ip_literal = matches!(
                parsed.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
            if parsed.scheme() != "http" || !ip_literal || parsed.as_str() != requested {
                return false;
            }
            let mut portless = parsed;
            if portless.set_port(None).is_err() {
                return false;
            }
            registered.iter().any(|r| r == portless.as_str())
        })
}

fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An error of the authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6), sent back
/// to the client's redirect URI once that URI is known to be the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct AuthorizeError {
    pub code: &'static str,
    pub description: String,
}

impl AuthorizeError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    fn invalid(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// The `prompt` values (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Never show a page: answer at once, with an error if the user would have to act.
    pub none: bool,
    /// Sign in again, even with a live session.
    pub login: bool,
    /// Ask for approval again, even if it was given before.
    pub consent: bool,
}

/// A checked authorization request, as kept while the user signs in or approves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub audience: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    /// Seconds: the sign-in must be at most this old (OIDC `max_age`).
    pub max_age: Option<i64>,
    /// The weakest strength any of the requested `acr_values` allows.
    pub acr: Option<Strength>,
    pub login_hint: Option<String>,
}

/// RFC 9126 §2.2: the form of a `request_uri` this server hands out; the rest is a random
/// handle.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request waits for the browser, and a kept request for its user.
pub const PUSHED_REQUEST_SECONDS: i64 = 600;
/// How long a kept request is remembered after it expires (an answered one expires all the
/// same), so its handle used again is "expired or already answered", not "never issued".
pub const REMEMBER_EXPIRED_REQUEST_SECONDS: i64 = 3600;

/// Longest `state`, `nonce` or `login_hint` accepted: clients use far less.
const MAX_VALUE_LENGTH: usize = 1024;

/// The `acr` value naming each strength (ID tokens carry the session's).
pub fn acr_value(strength: Strength) -> &'static str {
    strength.as_str()
}

/// The weakest strength among `acr_values` that this server knows, if any: the client
/// accepts any of them (OIDC Core §3.1.2.1), so the weakest is enough.
fn requested_strength(acr_values: &str) -> Option<Strength> {
    acr_values.split(' ').filter_map(Strength::parse).min()
}

/// OIDC's `max_age`: whole seconds, zero or more.
fn parse_max_age(text: Option<&str>) -> Result<Option<i64>, &'static str> {
    text.map(|text| {
        text.parse::<i64>()
            .ok()
            .filter(|age| *age >= 0)
            .ok_or("max_age must be a whole number of seconds")
    })
    .transpose()
}

/// What a request outside the authorization endpoint (the device grant's) asks of the
/// person's sign-in with `acr_values` and `max_age`, read as the authorization endpoint reads
/// them; nothing when it asks for neither.
pub fn requested_assurance(
    acr_values: Option<&str>,
    max_age: Option<&str>,
) -> Result<Option<Assurance>, &'static str> {
    let max_age = parse_max_age(max_age)?;
    let strength = acr_values.and_then(requested_strength);
    if strength.is_none() && max_age.is_none() {
        return Ok(None);
    }
    Ok(Some(Assurance {
        strength: strength.unwrap_or(Strength::Password),
        max_age: max_age.map(time::Duration::seconds),
    }))
}

impl AuthorizationRequest {
    /// Checks the parameters of a request whose client and redirect URI are already known to
    /// be good, so every error here goes back to that redirect URI.
    pub fn parse(
        params: &HashMap<String, String>,
        resources: &[String],
        client_id: &str,
        redirect_uri: &str,
        client: &ClientSettings,
        default_audience: &str,
    ) -> Result<Self, AuthorizeError> {
        let get = |name: &str| params.get(name).map(String::as_str);
        if get("request_uri").is_some() {
            return Err(AuthorizeError::invalid(
                "request_uri cannot be pushed; push the request's parameters themselves",
            ));
        }
        if get("request").is_some() {
            return Err(AuthorizeError::new(
                "request_not_supported",
                "request objects are not supported; push the request instead (RFC 9126)",
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None => return Err(AuthorizeError::invalid("response_type is missing")),
            Some(other) => {
                return Err(AuthorizeError::new(
                    "unsupported_response_type",
                    format!("only response_type=code is supported, not {other:?}"),
                ));
            }
        }
        if get("response_mode").is_some_and(|m| m != "query") {
            return Err(AuthorizeError::invalid(
                "only response_mode=query is supported",
            ));
        }
        let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
            (None, _) => {
                return Err(AuthorizeError::invalid(
                    "code_challenge is missing: PKCE with S256 is required (RFC 7636)",
                ));
            }
            (Some(_), method) if method != Some("S256") => {
                return Err(AuthorizeError::invalid(
                    "code_challenge_method must be S256 (plain is not accepted)",
                ));
            }
            (Some(challenge), _) if !is_s256_challenge(challenge) => {
                return Err(AuthorizeError::invalid(
                    "code_challenge must be 43 base64url characters (a SHA-256 hash)",
                ));
            }
            (Some(challenge), _) => challenge.to_owned(),
        };
        let bounded = |name: &str| -> Result<Option<String>, AuthorizeError> {
            match get(name) {
                Some(v) if v.len() > MAX_VALUE_LENGTH => Err(AuthorizeError::invalid(format!(
                    "{name} is longer than {MAX_VALUE_LENGTH} characters"
                ))),
                Some(v) => Ok(Some(v.to_owned())),
                None => Ok(None),
            }
        };
        let scopes = client.grant_scopes(get("scope"), true)?;
        let openid = scopes.iter().any(|s| s == "openid");
        let nonce = bounded("nonce")?;
        let prompt = parse_prompt(get("prompt"))?;
        let max_age = parse_max_age(get("max_age")).map_err(AuthorizeError::invalid)?;
        let request = Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            audience: client.audience(resources, default_audience)?,
            state: bounded("state")?,
            nonce: if openid { nonce } else { None },
            code_challenge,
            prompt,
            max_age,
            acr: get("acr_values").and_then(requested_strength),
            login_hint: bounded("login_hint")?,
            scopes,
        };
        Ok(request)
    }

    /// What the user's session must prove before a code is issued.
    pub fn assurance(&self) -> Assurance {
        Assurance {
            strength: self.acr.unwrap_or(Strength::Password),
            max_age: self.max_age.map(time::Duration::seconds),
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

fn parse_prompt(value: Option<&str>) -> Result<Prompt, AuthorizeError> {
    let mut prompt = Prompt::default();
    for word in value.unwrap_or("").split(' ').filter(|w| !w.is_empty()) {
        match word {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            other => {
                return Err(AuthorizeError::invalid(format!(
                    "prompt {other:?} is not one of none, login, consent, select_account"
                )));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(AuthorizeError::invalid(
            "prompt=none cannot be combined with other prompt values",
        ));
    }
    Ok(prompt)
}

/// A base64url SHA-256 hash: 43 characters without padding.
fn is_s256_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(verifier)) == challenge`, for a verifier of 43–128
/// unreserved characters. Compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = pkce_challenge(verifier);
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// RFC 7636 §4.2: the S256 `code_challenge` of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// OIDC Core §3.1.3.6 `at_hash`: the left half of the access token's SHA-256, base64url.
pub fn at_hash(access_token: &str) -> String {
    let hash = digest(&SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// The claims of an ID token (OIDC Core §2), with the profile claims its scopes allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub iat: i64,
    pub exp: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at_hash: Option<String>,
    #[serde(flatten)]
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// The event a logout token announces (OIDC Back-Channel Logout §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The claims of a logout token: which user's session (`sid`) ended, for which client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    pub sid: String,
    pub events: serde_json::Value,
}

impl LogoutTokenClaims {
    pub fn new(issuer: &str, client: &str, sub: &str, sid: &str, now: i64, jti: String) -> Self {
        Self {
            iss: issuer.to_owned(),
            aud: client.to_owned(),
            iat: now,
            // Long enough to cross a slow network, short enough to be useless if captured.
            exp: now + 120,
            jti,
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{ClientType, GrantType};

    fn client() -> ClientSettings {
        serde_json::from_value(serde_json::json!({
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://app.example.com/callback"],
            "scopes": ["orders:read"],
        }))
        .unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            ("response_type", "code"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("scope", "openid profile"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                map.remove(*k);
            } else {
                map.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        map
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AuthorizationRequest, AuthorizeError> {
        AuthorizationRequest::parse(
            &params(pairs),
            &[],
            "c1",
            "https://app.example.com/callback",
            &client(),
            "https://id.example/t/a/oauth/userinfo",
        )
    }

    #[test]
    fn a_loopback_ip_redirect_uri_takes_any_port_and_nothing_else_varies() {
        let registered = vec![
            "http://127.0.0.1/callback".to_owned(),
            "http://[::1]/callback".to_owned(),
            "http://localhost/cb".to_owned(),
            "https://app.example.com/cb".to_owned(),
        ];
        for ok in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://[::1]:8123/callback",
            "https://app.example.com/cb",
        ] {
            assert!(redirect_uri_registered(&registered, ok), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:49152/callback/",
            "http://127.0.0.1:49152/other",
            "http://127.0.0.1:49152/callback?x=1",
            "http://127.0.0.2:49152/callback",
            "http://localhost:49152/cb",
            "https://127.0.0.1:49152/callback",
            "https://app.example.com:8443/cb",
            "http://127.0.0.1:49152/./callback",
            "http://127.0.0.1:49152/callback#x",
        ] {
            assert!(!redirect_uri_registered(&registered, refused), "{refused}");
        }
    }

    #[test]
    fn redirect_uris_are_checked_at_registration() {
        for good in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?tenant=1",
            "http://localhost:8080/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:3000/cb",
            "com.example.app:/oauth",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "https://user:pw@app.example.com/cb",
            "/relative",
            "javascript:alert(1)",
            "myapp:/cb",
            "https://app.example.com/a b",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_good_request_is_kept_whole() {
        let r = parse(&[
            ("state", "s"),
            ("nonce", "n"),
            ("prompt", "login consent"),
            ("max_age", "300"),
            ("acr_values", "phishing_resistant mfa unknown"),
        ])
        .unwrap();
        assert_eq!(r.scopes, ["openid", "profile"]);
        assert_eq!(r.audience, "https://id.example/t/a/oauth/userinfo");
        assert_eq!(r.nonce.as_deref(), Some("n"));
        assert!(r.prompt.login && r.prompt.consent && !r.prompt.none);
        assert_eq!(r.max_age, Some(300));
        assert_eq!(r.acr, Some(Strength::Mfa));
        assert_eq!(r.assurance().strength, Strength::Mfa);
    }

    #[test]
    fn pkce_is_required_and_only_s256() {
        let code = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().code;
        assert_eq!(code(&[("code_challenge", "")]), "invalid_request");
        assert_eq!(code(&[("code_challenge_method", "")]), "invalid_request");
        assert_eq!(
            code(&[("code_challenge_method", "plain")]),
            "invalid_request"
        );
        assert_eq!(code(&[("code_challenge", "short")]), "invalid_request");
        // RFC 7636 appendix B.
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn other_bad_requests_are_named() {
        let code = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().code;
        assert_eq!(
            code(&[("response_type", "token")]),
            "unsupported_response_type"
        );
        assert_eq!(code(&[("response_type", "")]), "invalid_request");
        assert_eq!(code(&[("scope", "openid admin")]), "invalid_scope");
        assert_eq!(code(&[("prompt", "none login")]), "invalid_request");
        assert_eq!(code(&[("prompt", "bogus")]), "invalid_request");
        assert_eq!(code(&[("max_age", "-1")]), "invalid_request");
        assert_eq!(code(&[("request", "eyJ")]), "request_not_supported");
        assert_eq!(code(&[("response_mode", "fragment")]), "invalid_request");
        let long = "x".repeat(2000);
        assert_eq!(code(&[("state", &long)]), "invalid_request");
    }

    #[test]
    fn standard_scopes_need_a_sign_in_client_and_offline_access_needs_refresh() {
        let mut c = client();
        assert!(c.grant_scopes(Some("openid offline_access"), true).is_ok());
        c.grant_types = vec![GrantType::AuthorizationCode];
        assert!(c.grant_scopes(Some("offline_access"), true).is_err());
        assert!(c.grant_scopes(Some("openid"), false).is_err());
    }

    #[test]
    fn client_settings_that_cannot_work_are_refused() {
        let mut c = client();
        assert!(c.validate().is_ok());
        c.redirect_uris.clear();
        assert_eq!(c.validate().unwrap_err().field, "redirect_uris");
        let mut c = client();
        c.client_type = ClientType::Public;
        c.grant_types.push(GrantType::ClientCredentials);
        assert_eq!(c.validate().unwrap_err().field, "grant_types");
        let mut c = client();
        c.grant_types = vec![GrantType::ClientCredentials, GrantType::RefreshToken];
        c.resources = vec!["https://api.example.com".into()];
        assert_eq!(c.validate().unwrap_err().field, "grant_types");
        let mut c = client();
        c.redirect_uris = vec!["http://evil.example/cb".into()];
        assert_eq!(c.validate().unwrap_err().field, "redirect_uris");
    }
}
