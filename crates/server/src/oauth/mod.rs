//! The OAuth 2.0 / OpenID Connect endpoints of each tenant's issuer (`{public_url}/t/{tenant}`):
//! discovery metadata, the JWKS, the token endpoint (client credentials here; the user grants
//! in `grants`), and introspection, revocation and userinfo (`tokens`). The authorization
//! endpoint is a page: `pages::authorize`. Access tokens are RFC 9068 JWTs signed by the
//! tenant's own key.

mod device;
mod grants;
mod keys;
mod logout;
mod par;
mod tokens;

pub(crate) use device::user_code_hash;
pub(crate) use grants::secret_hash;
pub(crate) use keys::{
    SigningKeys, add_key, current_key, keys_changed, published_keys, rotate_due_keys,
};
pub(crate) use logout::session_ended;
pub(crate) use tokens::{active_access_token, is_jwt};

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use portcullis_core::ServicePrincipalId;
use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::identity::{LifecycleState, Tenant};
use portcullis_core::jose::SigningAlgorithm;
use portcullis_core::oauth::{
    AccessTokenClaims, CLIENT_ASSERTION_TYPE, ClientSettings, ClientType, DEVICE_CODE_GRANT_TYPE,
    GrantType, OAuthError, assertion_issuer,
};
use portcullis_core::secrets::random_bytes;
use portcullis_store::{ApiKeyCredential, StoreError};

use crate::auth::{KeyRefusal, authenticate_key};
use crate::cache::TtlCache;
use crate::error::ApiError;
use crate::extract::RequestOrigin;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    // What browser applications (public clients) call from their own origin.
    let for_browsers = Router::new()
        .route(
            "/t/{tenant}/.well-known/openid-configuration",
            get(discovery).options(preflight),
        )
        // RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
        .route(
            "/.well-known/oauth-authorization-server/t/{tenant}",
            get(discovery).options(preflight),
        )
        .route("/t/{tenant}/jwks", get(jwks).options(preflight))
        .route("/t/{tenant}/oauth/token", post(token).options(preflight))
        .route(
            "/t/{tenant}/oauth/revoke",
            post(tokens::revoke).options(preflight),
        )
        .route(
            "/t/{tenant}/oauth/userinfo",
            get(tokens::userinfo)
                .post(tokens::userinfo)
                .options(preflight),
        )
        .layer(axum::middleware::from_fn(open_to_browsers));
    // Only for servers: confidential clients and resource servers.
    Router::new()
        .route("/t/{tenant}/oauth/par", post(par::push))
        .route(
            "/t/{tenant}/oauth/device_authorization",
            post(device::device_authorization),
        )
        .route("/t/{tenant}/oauth/introspect", post(tokens::introspect))
        .merge(for_browsers)
        .layer(axum::middleware::from_fn(|request, next| {
            crate::routes::uniform_rejections(crate::routes::Surface::OAuth, request, next)
        }))
}

/// A CORS preflight: the methods and headers a token request and a bearer call need.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// CORS for the endpoints a browser application calls: any origin, and no cookies (none
/// carries a session: the client authenticates with its id or a bearer token).
async fn open_to_browsers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate"),
    );
    response
}

/// The token endpoint's hot reads, kept for a second: a revoked secret or a disabled client
/// stops working on every node within that second (at once on the node that changed it).
#[derive(Debug)]
pub struct TokenCaches {
    tenants: TtlCache<String, Tenant>,
    pub(crate) credentials: TtlCache<String, ApiKeyCredential>,
    pub(crate) clients: TtlCache<ServicePrincipalId, ClientSettings>,
    /// Each tenant's command-line client, once made.
    cli_clients: TtlCache<portcullis_core::TenantId, ServicePrincipalId>,
    /// Access tokens whose signature this node checked in the last few seconds, by the token
    /// itself: a client calling many times does not pay for a signature check each time.
    /// Only the signature is remembered; expiry and every revocation are checked at each use.
    pub(crate) verified: TtlCache<String, AccessTokenClaims>,
    /// Principals whose use of the API this node recorded in the last minute, per method.
    pub(crate) api_use: TtlCache<
        (
            portcullis_core::TenantId,
            portcullis_core::identity::PrincipalRef,
            &'static str,
        ),
        (),
    >,
}

const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for TokenCaches {
    fn default() -> Self {
        Self {
            tenants: TtlCache::new(CACHE_TTL, 10_000),
            credentials: TtlCache::new(CACHE_TTL, 100_000),
            clients: TtlCache::new(CACHE_TTL, 100_000),
            cli_clients: TtlCache::new(std::time::Duration::from_secs(60), 10_000),
            verified: TtlCache::new(std::time::Duration::from_secs(5), 10_000),
            api_use: TtlCache::new(crate::auth::API_USE_EVERY, 100_000),
        }
    }
}

pub(crate) fn issuer(state: &AppState, tenant: &Tenant) -> String {
    format!("{}/t/{}", state.config.public_url, tenant.name)
}

/// How long an authorization code may wait to be redeemed.
pub(crate) const CODE_SECONDS: i64 = 60;

pub(crate) async fn active_tenant(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    match state.store.tenant_by_name(name).await {
        Ok(t) if t.state == LifecycleState::Active => Ok(t),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// The tenant's built-in client for the `portcullis` command line (`portcullis login`): a
/// public client with the device grant, for the admin API; made on first use.
pub(crate) async fn cli_client(
    state: &AppState,
    tenant: &Tenant,
) -> Result<ServicePrincipalId, ApiError> {
    let now = std::time::Instant::now();
    if let Some(id) = state.token_caches.cli_clients.get(&tenant.id, now) {
        return Ok(id);
    }
    let ctx = portcullis_store::WriteContext {
        tenant_id: tenant.id,
        actor: Actor {
            kind: "system".into(),
            id: None,
            display: Some("command-line client".into()),
            authentication: None,
        },
        origin: Origin::default(),
        now: state.clock.now(),
        keep_role_assigner: None,
    };
    let id = state
        .store
        .cli_client(&ctx, &crate::auth::admin_api_resource(state))
        .await?;
    state.token_caches.cli_clients.insert(tenant.id, id, now);
    Ok(id)
}

async fn discovery(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = active_tenant(&state, &tenant).await?;
    let cli_client = cli_client(&state, &tenant).await?;
    let issuer = issuer(&state, &tenant);
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let assertion_algs = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];
    let body = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth/par"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "require_pushed_authorization_requests": false,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT_TYPE],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["public"],
        // Each client chooses the algorithm its tokens are signed with; RS256 is among them, as
        // OpenID Connect Discovery requires.
        "id_token_signing_alg_values_supported": SigningAlgorithm::ALL.map(SigningAlgorithm::as_str),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "name", "preferred_username", "email", "email_verified", "groups", "roles"],
        "acr_values_supported": ["password", "mfa", "phishing_resistant"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        // The resource (RFC 8707) to ask for to call Portcullis's own admin API; its RFC 9728
        // metadata is at /.well-known/oauth-protected-resource/v1.
        "portcullis_admin_api_resource": crate::auth::admin_api_resource(&state),
        // The public client `portcullis login` signs people in with (device grant).
        "portcullis_cli_client_id": cli_client,
    });
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response())
}

async fn jwks(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
) -> Result<Response, ApiError> {
    let tenant = active_tenant(&state, &tenant).await?;
    // A tenant's first key is made here if no token has needed one yet, so a verifier that
    // fetches keys first finds one.
    current_key(&state, &tenant, SigningAlgorithm::ES256, origin).await?;
    let keys = published_keys(&state, tenant.id).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(json!({ "keys": keys })),
    )
        .into_response())
}

/// An OAuth error response (RFC 6749 §5.2); `invalid_client` is a 401 that asks for Basic.
pub(crate) fn oauth_error(error: &OAuthError) -> Response {
    let status = match error {
        OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({"error": error.code(), "error_description": error.to_string()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    response
}

/// The form's parameters. Only `resource` may repeat (RFC 8707); any other repeated parameter
/// is refused (RFC 6749 §3.2).
pub(crate) struct TokenForm {
    pub(crate) single: HashMap<String, String>,
    pub(crate) resources: Vec<String>,
}

impl TokenForm {
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim() == "application/x-www-form-urlencoded");
        if !form_type {
            return Err(OAuthError::InvalidRequest(
                "send the request as application/x-www-form-urlencoded".into(),
            ));
        }
        let mut single = HashMap::new();
        let mut resources = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if name == "resource" {
                resources.push(value.into_owned());
            } else if single
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::InvalidRequest(format!(
                    "the parameter {name:?} is repeated"
                )));
            }
        }
        Ok(Self { single, resources })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// A parameter that must be there.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is missing")))
    }
}

/// The client's id and secret, from HTTP Basic (RFC 6749 §2.3.1, each part form-encoded) or
/// from the form, never both.
fn client_credentials(
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(String, Option<String>), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let posted = form.get("client_id").map(str::to_owned);
    match (basic, posted) {
        (Some(_), Some(_)) if form.get("client_secret").is_some() => Err(
            OAuthError::InvalidRequest("authenticate the client one way only".into()),
        ),
        (Some(encoded), _) => {
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok((unescape(id), Some(unescape(secret))))
        }
        (None, Some(id)) => Ok((id, form.get("client_secret").map(str::to_owned))),
        (None, None) => Err(OAuthError::InvalidClient(
            "authenticate the client: HTTP Basic, or client_id and client_secret".into(),
        )),
    }
}

async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = cached_tenant(&state, &tenant).await?;
    answer(issue(&state, &tenant, origin, &headers, &body).await)
}

/// The tenant of a token-family endpoint, from the one-second cache.
pub(crate) async fn cached_tenant(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    let now = std::time::Instant::now();
    match state.token_caches.tenants.get(name, now) {
        Some(cached) => Ok(cached),
        None => {
            let found = active_tenant(state, name).await?;
            state
                .token_caches
                .tenants
                .insert(found.name.clone(), found.clone(), now);
            Ok(found)
        }
    }
}

/// The response for an endpoint's outcome: OAuth errors as RFC 6749 §5.2 JSON.
pub(crate) fn answer(outcome: Result<Response, Issue>) -> Result<Response, ApiError> {
    match outcome {
        Ok(response) => Ok(response),
        Err(Issue::OAuth(error)) => {
            metrics::counter!("portcullis_token_errors_total", "error" => error.code())
                .increment(1);
            Ok(oauth_error(&error))
        }
        Err(Issue::Api(error)) => Err(error),
    }
}

pub(crate) enum Issue {
    OAuth(OAuthError),
    Api(ApiError),
}

impl From<OAuthError> for Issue {
    fn from(e: OAuthError) -> Self {
        Issue::OAuth(e)
    }
}

impl From<ApiError> for Issue {
    fn from(e: ApiError) -> Self {
        Issue::Api(e)
    }
}

impl From<StoreError> for Issue {
    fn from(e: StoreError) -> Self {
        Issue::Api(e.into())
    }
}

const UNKNOWN_CLIENT: &str = "client authentication failed: unknown client, wrong secret, or a secret that is expired or revoked";

/// A client that proved who it is (or, for a public client, said who it is).
pub(crate) struct Client {
    pub(crate) id: ServicePrincipalId,
    pub(crate) settings: ClientSettings,
    /// It proved itself with a secret or an assertion, not just its id (`none`).
    pub(crate) authenticated: bool,
}

/// The client making the request, authenticated by a secret (Basic or form) or by a signed
/// assertion (RFC 7523), and its settings. A public client names itself with `client_id` and
/// nothing else (`none`).
pub(crate) async fn authenticate_client(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Client, Issue> {
    if form.get("client_assertion_type").is_some() {
        return assertion_client(state, tenant, origin, headers, form).await;
    }
    let (client_id, secret) = client_credentials(headers, form)?;
    let Some(secret) = secret else {
        return public_client(state, tenant, &client_id).await;
    };
    // The secret is one of the client's API keys: it must belong to this client, of this tenant.
    let cache = Some(&state.token_caches.credentials);
    let credential =
        match authenticate_key(state, "client_secret", true, Some(&secret), origin, cache).await {
            Ok(credential) => credential,
            Err(refusal) => return Err(refused_key(refusal)),
        };
    let client: Option<ServicePrincipalId> = client_id.parse().ok();
    if client != Some(credential.owner.id) || credential.tenant.id != tenant.id {
        return Err(OAuthError::InvalidClient(UNKNOWN_CLIENT.into()).into());
    }
    let settings = client_settings(state, tenant, credential.owner.id).await?;
    Ok(Client {
        id: credential.owner.id,
        settings,
        authenticated: true,
    })
}

/// A client without credentials: only a public client may be one.
async fn public_client(
    state: &AppState,
    tenant: &Tenant,
    client_id: &str,
) -> Result<Client, Issue> {
    let refused = || {
        OAuthError::InvalidClient(
            "client authentication failed: this client must authenticate (HTTP Basic, client_secret or client_assertion)"
                .into(),
        )
    };
    let id: ServicePrincipalId = client_id.parse().map_err(|_| refused())?;
    if !client_is_active(state, tenant, id).await? {
        return Err(refused().into());
    }
    let settings = match client_settings(state, tenant, id).await {
        Ok(settings) => settings,
        Err(Issue::OAuth(_)) => return Err(refused().into()),
        Err(other) => return Err(other),
    };
    if settings.client_type != ClientType::Public {
        return Err(refused().into());
    }
    Ok(Client {
        id,
        settings,
        authenticated: false,
    })
}

/// Whether the service principal exists in this tenant and is active.
pub(crate) async fn client_is_active(
    state: &AppState,
    tenant: &Tenant,
    id: ServicePrincipalId,
) -> Result<bool, StoreError> {
    match state.store.service_principal(tenant.id, id).await {
        Ok(sp) => Ok(sp.state == LifecycleState::Active),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) async fn client_settings(
    state: &AppState,
    tenant: &Tenant,
    id: ServicePrincipalId,
) -> Result<ClientSettings, Issue> {
    let now = std::time::Instant::now();
    if let Some(settings) = state.token_caches.clients.get(&id, now) {
        return Ok(settings);
    }
    let settings = state
        .store
        .oauth_client(tenant.id, id)
        .await?
        .ok_or_else(not_a_client)?;
    state.token_caches.clients.insert(id, settings.clone(), now);
    Ok(settings)
}

fn not_a_client() -> OAuthError {
    OAuthError::UnauthorizedClient("this service principal is not set up as an OAuth client".into())
}

fn refused_key(refusal: KeyRefusal) -> Issue {
    match refusal {
        KeyRefusal::Invalid => OAuthError::InvalidClient(UNKNOWN_CLIENT.into()).into(),
        KeyRefusal::Throttled(seconds) => ApiError::TooManyRequests {
            retry_after_seconds: seconds,
        }
        .into(),
        KeyRefusal::Failed(error) => error.into(),
    }
}

/// `private_key_jwt`: the client proves itself with an assertion signed by a key it registered;
/// each assertion is accepted once. Failures are throttled per source address, the signature
/// check and the count in one step.
async fn assertion_client(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Client, Issue> {
    let address_key = format!("ip:{}", origin.source_ip.as_deref().unwrap_or("unknown"));
    let started = std::time::Instant::now();
    let throttled = |client_id: Option<&str>, seconds: u64| -> Issue {
        let (method, now) = ("client_assertion", state.clock.now());
        state
            .throttled
            .note_refused(tenant.id, client_id, origin, method, now);
        refused_key(KeyRefusal::Throttled(seconds))
    };
    if let Some(seconds) = state.failures.blocked_for(&address_key, started) {
        return Err(throttled(form.get("client_id"), seconds));
    }
    if headers.contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
        return Err(
            OAuthError::InvalidRequest("authenticate the client one way only".into()).into(),
        );
    }
    if form.get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(OAuthError::InvalidRequest(format!(
            "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
        ))
        .into());
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| OAuthError::InvalidRequest("client_assertion is missing".into()))?;
    // Without `client_id`, the client is whoever the assertion says issued it; an assertion
    // that cannot even say is a failed authentication like any other, counted and audited.
    let named = match form.get("client_id") {
        Some(id) => Ok(id.to_owned()),
        None => assertion_issuer(assertion).map_err(|e| e.to_string()),
    };
    let client_id = named.clone().unwrap_or_default();
    let client = match named.map(|id| id.parse::<ServicePrincipalId>()) {
        Ok(Ok(id)) if client_is_active(state, tenant, id).await? => {
            Ok((id, client_settings(state, tenant, id).await?))
        }
        Ok(Ok(_)) => Err("unknown or disabled client".to_owned()),
        Ok(Err(_)) => Err("unknown client".to_owned()),
        Err(unreadable) => Err(unreadable),
    };
    let issuer = issuer(state, tenant);
    let audiences = [format!("{issuer}/oauth/token"), issuer];
    let now = state.clock.now();
    let checked = state.failures.attempt(&address_key, started, || {
        let (id, settings) = client?;
        settings
            .verify_assertion(assertion, &client_id, &audiences, now.unix_timestamp())
            .map(|verified| (id, settings, verified))
            .map_err(|error| error.to_string())
    });
    let fail = async |reason: &str| -> Issue {
        assertion_failure(state, tenant, origin, &client_id, reason).await
    };
    let (id, settings, verified) = match checked {
        Err(seconds) => return Err(throttled(Some(&client_id), seconds)),
        Ok(Err(reason)) => return Err(fail(&reason).await),
        Ok(Ok(accepted)) => accepted,
    };
    if !state
        .store
        .use_assertion_jti(tenant.id, id, &verified.jti, verified.expires_at, now)
        .await?
    {
        let replayed = "client_assertion replayed (jti already used)";
        return Err(
            match state
                .failures
                .attempt(&address_key, started, || Err::<(), _>(replayed))
            {
                Err(seconds) => throttled(Some(&client_id), seconds),
                Ok(_) => fail(replayed).await,
            },
        );
    }
    Ok(Client {
        id,
        settings,
        authenticated: true,
    })
}

/// A refused client assertion (already counted against its address): audited with its
/// reason, answered with `invalid_client` and that reason.
async fn assertion_failure(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    client_id: &str,
    reason: &str,
) -> Issue {
    metrics::counter!("portcullis_auth_failures_total").increment(1);
    let event = NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "authn.client_assertion".into(),
        target: (!client_id.is_empty()).then(|| Target::new("service_principal", client_id)),
        outcome: Outcome::Failure,
        reason: Some(reason.into()),
        origin: origin.clone(),
        details: json!({}),
    };
    if let Err(e) = state.audit.append(event).await {
        return Issue::Api(e.into());
    }
    OAuthError::InvalidClient(format!("client authentication failed: {reason}")).into()
}

async fn issue(
    state: &AppState,
    tenant: &Tenant,
    origin: portcullis_core::audit::Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Issue> {
    let form = TokenForm::parse(headers, body)?;
    let grant = form.require("grant_type")?;
    let client = authenticate_client(state, tenant, &origin, headers, &form).await?;
    let (kind, response) = match grant {
        "client_credentials" => (
            "client_credentials",
            client_credentials_grant(state, tenant, origin, &client, &form).await?,
        ),
        "authorization_code" => (
            "authorization_code",
            grants::authorization_code(state, tenant, origin, &client, &form).await?,
        ),
        "refresh_token" => (
            "refresh_token",
            grants::refresh_token(state, tenant, origin, &client, &form).await?,
        ),
        DEVICE_CODE_GRANT_TYPE => (
            "device_code",
            grants::device_code(state, tenant, origin, &client, &form).await?,
        ),
        other => {
            return Err(OAuthError::UnsupportedGrantType(format!(
                "the grant type {other:?} is not supported; use authorization_code, refresh_token, client_credentials or {DEVICE_CODE_GRANT_TYPE}"
            ))
            .into());
        }
    };
    metrics::counter!("portcullis_tokens_issued_total", "grant" => kind).increment(1);
    Ok(response)
}

/// The refusal for a client that may not use `grant`.
pub(crate) fn require_grant(
    client: &Client,
    grant: GrantType,
    name: &str,
) -> Result<(), OAuthError> {
    if client.settings.grants(grant) {
        Ok(())
    } else {
        Err(OAuthError::UnauthorizedClient(format!(
            "this client may not use the {name} grant"
        )))
    }
}

/// A random token id (`jti`).
pub(crate) fn new_jti() -> Result<String, ApiError> {
    Ok(hex::encode(
        random_bytes::<16>()
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .as_ref(),
    ))
}

/// A token response (RFC 6749 §5.1), never cached.
pub(crate) fn token_response(body: serde_json::Value) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}

async fn client_credentials_grant(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    form: &TokenForm,
) -> Result<Response, Issue> {
    require_grant(client, GrantType::ClientCredentials, "client_credentials")?;
    let judged = crate::conditional::for_workload(
        state,
        tenant.id,
        client.id,
        portcullis_core::conditional::Application::Client(client.id),
        &origin,
    )
    .await
    .map_err(ApiError::from)?;
    let proofs = portcullis_core::conditional::Proofs::default();
    let controls = crate::conditional::token_refusal(state, &judged, &proofs, "workload", &origin)
        .await?
        .map_err(OAuthError::UnauthorizedClient)?;
    let settings = &client.settings;
    let scopes = settings.grant_scopes(form.get("scope"), false)?;
    let issuer = issuer(state, tenant);
    let audience = settings.audience(&form.resources, &issuer)?;
    let address = origin.source_ip.clone();
    let key = current_key(state, tenant, settings.signing_alg, origin).await?;
    let claims = AccessTokenClaims::for_client(
        &issuer,
        &client.id.to_string(),
        audience,
        &scopes,
        state.clock.now(),
        controls.token_seconds(settings.access_token_seconds),
        new_jti()?,
    );
    let token = key
        .sign("at+jwt", &claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": claims.exp - claims.iat,
    });
    if !scopes.is_empty() {
        body["scope"] = json!(scopes.join(" "));
    }
    crate::conditional::note_workload_sign_in(state, tenant.id, client.id, address);
    Ok(token_response(body))
}
