//! Who is calling, and may they do this? An admin request carries `Authorization: Bearer …`
//! with either an API key or an access token from the caller's tenant.
//!
//! - An API key is looked up by its public prefix and its secret checked against the stored
//!   keyed hash in constant time. Failures are throttled per source address, answered with one
//!   undistinguishing 401, and recorded in the audit trail with the real reason.
//! - An access token (a JWT of the tenant's issuer, for the admin API's resource) speaks for a
//!   person or for a client acting for itself; it is checked against the store at every
//!   request, so revoking it, ending the session or disabling the user takes effect at once.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde_json::json;
use time::Duration;

use portcullis_core::administrators::ApiKeyUse;
use portcullis_core::audit::{Actor, ActorAuthentication, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::engine::tenant::{Verdict, instant};
use portcullis_core::identity::{KeyUnusable, LifecycleState, PrincipalKind, PrincipalRef, Tenant};
use portcullis_core::lockout::Removal;
use portcullis_core::oauth::OFFLINE_ACCESS;
use portcullis_core::secrets::PresentedApiKey;
use portcullis_core::session::StepUp;
use portcullis_core::{ServicePrincipalId, SessionId, TenantId, UserId};
use portcullis_store::{ApiKeyCredential, RoleAssignerGuard, WriteContext};

use crate::cache::TtlCache;
use crate::engine::{Current, Freshness};
use crate::error::ApiError;
use crate::extract::origin_of;
use crate::state::AppState;

/// How often a key's last-used time is written at most.
const LAST_USED_GRANULARITY: Duration = Duration::minutes(1);

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: PrincipalRef,
    pub tenant: Tenant,
    pub actor: Actor,
    pub origin: Origin,
    /// A person's sign-in session and the time of the sign-in their token was issued from
    /// (`auth_time`), which the tenant's policy for administrators holds to account; `None`
    /// for a key or a workload's token.
    session: Option<(SessionId, time::OffsetDateTime)>,
    /// For a caller with an API key, whether its tenant refuses privileged principals' keys
    /// (read with the key); `None` for tokens and sessions.
    api_key_use: Option<ApiKeyUse>,
    /// The tenant's authorization snapshot this request's decisions are made with, taken at
    /// the first decision so that every check of one request sees the same revision.
    engine: tokio::sync::OnceCell<Arc<Current>>,
}

const INVALID: ApiError = ApiError::Unauthenticated {
    detail: "Send a valid API key as `Authorization: Bearer pcs_…`. The key given is missing, malformed, unknown, \
             expired or revoked, or its owner is disabled.",
};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        conditional_access(state, &caller).await?;
        note_api_use(state, &caller);
        Ok(caller)
    }
}

/// Conditional access on the admin API: the tenant's policies for `admin_api` (or every
/// application), judged for the person or workload behind the request, from where it comes,
/// with what its sign-in proved. A tenant without policies pays one atomic load.
async fn conditional_access(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    use crate::conditional::Verdict as Access;
    use portcullis_core::conditional::{Application, ClientType, Proofs};
    use portcullis_core::session::{Assurance, Strength};
    let held = crate::conditional::snapshot(state, caller.tenant.id, Freshness::Held).await?;
    if held.access.is_empty() {
        return Ok(());
    }
    let tenant = caller.tenant.id;
    let authentication = caller.actor.authentication.as_ref();
    let judged = match caller.principal.kind {
        PrincipalKind::User => {
            let user = state
                .store
                .user(tenant, UserId::from_uuid(caller.principal.id))
                .await?;
            let client_type = match authentication.map(|a| a.method.as_str()) {
                Some("session") => ClientType::Browser,
                _ => ClientType::Native,
            };
            let (application, origin) = (Application::AdminApi, &caller.origin);
            crate::conditional::for_user(
                state,
                &user,
                application,
                client_type,
                origin,
                Freshness::Held,
            )
            .await?
        }
        _ => {
            let workload = ServicePrincipalId::from_uuid(caller.principal.id);
            crate::conditional::for_workload(
                state,
                tenant,
                workload,
                Application::AdminApi,
                &caller.origin,
            )
            .await?
        }
    };
    let strength = authentication
        .and_then(|a| a.acr.as_deref())
        .and_then(Strength::parse);
    let terms_accepted = match caller.principal.kind {
        PrincipalKind::User => {
            let user = UserId::from_uuid(caller.principal.id);
            crate::conditional::terms_accepted(state, &judged, user).await?
        }
        _ => false,
    };
    let proofs = Proofs {
        strength,
        terms_accepted,
        ..Proofs::default()
    };
    let (verdict, evaluation) = crate::conditional::verdict(&judged, &proofs);
    let why = match verdict {
        Access::Allow => {
            let signed_in = caller.session.map(|(_, at)| at);
            let controls = evaluation.session;
            return match signed_in.filter(|at| controls.sign_in_too_old(*at, state.clock.now())) {
                None => Ok(()),
                Some(_) => Err(ApiError::InsufficientUserAuthentication {
                    need: Assurance {
                        strength: strength.unwrap_or(Strength::Password),
                        max_age: controls
                            .sign_in_frequency_minutes
                            .map(|m| Duration::minutes(i64::from(m))),
                    },
                    detail: "Conditional access asks for a more recent sign-in for the admin API. Sign in again.".into(),
                }),
            };
        }
        Access::StepUp(need) => {
            return Err(ApiError::InsufficientUserAuthentication {
                need: Assurance {
                    strength: need,
                    max_age: None,
                },
                detail: format!(
                    "Conditional access requires a {} sign-in for the admin API. Sign in again with it.",
                    need.as_str().replace('_', "-")
                ),
            });
        }
        Access::Refuse(why) => why,
    };
    let refused = evaluation.refused();
    crate::conditional::record_refusal(state, &judged, &refused, &why, "admin_api", &caller.origin)
        .await?;
    Err(ApiError::Forbidden(format!("refused: {why}")))
}

/// When a principal last used the API, per method, is kept by the minute: this node writes
/// it at most once a minute per principal and method, in the background, and never audits it.
pub(crate) const API_USE_EVERY: StdDuration = StdDuration::from_secs(60);

fn note_api_use(state: &AppState, caller: &Caller) {
    let Some(method) = caller
        .actor
        .authentication
        .as_ref()
        .map(|a| match a.method.as_str() {
            "api_key" => "api_key",
            "session" => "session",
            _ => "access_token",
        })
    else {
        return;
    };
    let key = (caller.tenant.id, caller.principal, method);
    let seen = Instant::now();
    if state.token_caches.api_use.get(&key, seen).is_some() {
        return;
    }
    state.token_caches.api_use.insert(key, (), seen);
    let (store, now) = (state.store.clone(), state.clock.now());
    let (tenant, principal) = (caller.tenant.id, caller.principal);
    tokio::spawn(async move {
        if let Err(error) = store
            .touch_admin_api_use(tenant, principal, method, now)
            .await
        {
            tracing::warn!(%error, "could not record when a principal last used the API");
        }
    });
}

/// Who the request's credential names: an access token, the browser's session (same-origin
/// pages only) or an API key.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let origin = origin_of(parts);
    let token = bearer_token(&parts.headers);
    // API keys have no dots; a JWS compact token has two.
    if let Some(token) = token.filter(|t| crate::oauth::is_jwt(t)) {
        let tenant = token_tenant(state, token).await?;
        let audience = admin_api_resource(state);
        return token_caller(state, tenant, token, &audience, Holders::Anyone, origin).await;
    }
    let header = parts.headers.get(header::AUTHORIZATION);
    if header.is_none()
        && let Some(signed_in) = crate::pages::admin_api_session(state, &parts.headers).await?
    {
        return Ok(session_caller(signed_in, origin));
    }
    let credential =
        match authenticate_key(state, "api_key", header.is_some(), token, &origin, None).await {
            Ok(credential) => credential,
            Err(KeyRefusal::Throttled(retry_after_seconds)) => {
                return Err(ApiError::TooManyRequests {
                    retry_after_seconds,
                });
            }
            Err(KeyRefusal::Invalid) => return Err(INVALID),
            Err(KeyRefusal::Failed(error)) => return Err(error),
        };
    metrics::counter!("portcullis_api_authentications_total", "method" => "api_key").increment(1);
    Ok(Caller {
        principal: PrincipalRef::service_principal(credential.owner.id),
        session: None,
        api_key_use: Some(credential.tenant_api_keys),
        engine: tokio::sync::OnceCell::new(),
        actor: Actor {
            kind: "service_principal".into(),
            id: Some(credential.owner.id.to_string()),
            display: Some(format!(
                "{} ({})",
                credential.owner.name, credential.key.prefix
            )),
            authentication: Some(ActorAuthentication {
                method: "api_key".into(),
                api_key: Some(credential.key.prefix.clone()),
                ..ActorAuthentication::default()
            }),
        },
        tenant: credential.tenant,
        origin,
    })
}

/// A person on the admin API through their browser's sign-in session (the console): held to
/// the tenant's policy for administrators with every proof the session holds.
fn session_caller(signed_in: crate::pages::ApiSession, origin: Origin) -> Caller {
    let crate::pages::ApiSession {
        tenant,
        session,
        user,
    } = signed_in;
    metrics::counter!("portcullis_api_authentications_total", "method" => "session").increment(1);
    let principal = PrincipalRef::user(user.id);
    Caller {
        actor: Actor {
            kind: principal.kind.as_str().into(),
            id: Some(user.id.to_string()),
            display: Some(user.user_name),
            authentication: Some(ActorAuthentication {
                method: "session".into(),
                session_id: Some(session.id.to_string()),
                amr: session.amr(),
                acr: Some(portcullis_core::authorize::acr_value(session.strength).into()),
                auth_time: Some(session.authenticated_at().unix_timestamp()),
                ..ActorAuthentication::default()
            }),
        },
        principal,
        session: Some((session.id, session.authenticated_at())),
        api_key_use: None,
        engine: tokio::sync::OnceCell::new(),
        tenant,
        origin,
    }
}

/// The console's caller: the person signed in to the browser session, held to conditional
/// access for the admin API and to the tenant's policy for administrators exactly as the same
/// session is on `/v1` (the console calls the API's own handlers with it).
pub(crate) async fn console_caller(
    state: &AppState,
    signed_in: crate::pages::ApiSession,
    origin: Origin,
) -> Result<Caller, ApiError> {
    let caller = session_caller(signed_in, origin);
    conditional_access(state, &caller).await?;
    note_api_use(state, &caller);
    Ok(caller)
}

/// The resource (RFC 8707) that access tokens for the admin API are issued for: their `aud`.
/// A client gets such tokens only if it lists this among its `resources`.
pub(crate) fn admin_api_resource(state: &AppState) -> String {
    format!("{}/v1", state.config.public_url)
}

/// A caller of a tenant's AuthZEN API: one of its service principals, by API key or by an
/// access token the tenant issued to it with `client_credentials` for the tenant's policy
/// decision point (`aud` = `{public_url}/t/{tenant}`). What it may ask is decided as for any
/// caller: it must hold `access.evaluate`.
pub struct PepCaller(pub Caller);

impl FromRequestParts<AppState> for PepCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer_token(&parts.headers).filter(|t| crate::oauth::is_jwt(t)) else {
            return Caller::from_request_parts(parts, state)
                .await
                .map(PepCaller);
        };
        let tenant_name = parts
            .uri
            .path()
            .strip_prefix("/t/")
            .and_then(|rest| rest.split('/').next())
            .ok_or(ApiError::NotFound)?;
        let tenant = crate::oauth::cached_tenant(state, tenant_name).await?;
        let audience = crate::routes::access::decision_point(state, &tenant.name);
        let origin = origin_of(parts);
        token_caller(
            state,
            tenant,
            token,
            &audience,
            Holders::ServicePrincipals,
            origin,
        )
        .await
        .map(|caller| {
            note_api_use(state, &caller);
            PepCaller(caller)
        })
    }
}

/// Whose access tokens an API takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holders {
    /// People and workloads (the admin API).
    Anyone,
    /// Only clients acting for themselves (`client_credentials`): a policy enforcement point
    /// asks about others, never as a signed-in person.
    ServicePrincipals,
}

/// The tenant whose issuer a token names, from its unverified `iss`: only to pick the keys
/// its signature is then checked with (which also checks `iss`).
async fn token_tenant(state: &AppState, token: &str) -> Result<Tenant, ApiError> {
    let prefix = format!("{}/t/", state.config.public_url);
    let name = portcullis_core::oauth::claimed_issuer(token)
        .and_then(|iss| iss.strip_prefix(&prefix).map(str::to_owned))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| refused_token("it was not issued by a tenant of this server".into()))?;
    match crate::oauth::cached_tenant(state, &name).await {
        Err(ApiError::NotFound) => Err(refused_token(
            "its issuer is not an active tenant of this server".into(),
        )),
        other => other,
    }
}

/// The caller an access token speaks for, if the token is active now (signature, times,
/// revocation of the token and of its sign-in, the user and the client still enabled: read
/// afresh at every request, so a revocation anywhere is refused at once) and was issued for
/// `audience`. A person's token also needs their sign-in session alive, even when its grant
/// would outlive the session (`offline_access`): an administrator who signed out is out.
async fn token_caller(
    state: &AppState,
    tenant: Tenant,
    token: &str,
    audience: &str,
    holders: Holders,
    origin: Origin,
) -> Result<Caller, ApiError> {
    let active = match crate::oauth::active_access_token(state, &tenant, token).await? {
        Ok(active) => active,
        Err(why) => return Err(refused_token(why)),
    };
    let claims = active.claims;
    if claims.aud != audience {
        let here = match holders {
            Holders::Anyone => "the admin API",
            Holders::ServicePrincipals => "this tenant's policy decision point",
        };
        return Err(refused_token(format!(
            "it was issued for {:?}, not for {here} ({audience})",
            claims.aud
        )));
    }
    let client = claims
        .client_id
        .parse::<ServicePrincipalId>()
        .map_err(|_| refused_token("it names no client of this issuer".into()))?;
    let mut authentication = ActorAuthentication {
        method: "access_token".into(),
        token_id: Some(claims.jti.clone()),
        client_id: Some(claims.client_id.clone()),
        ..ActorAuthentication::default()
    };
    let mut session = None;
    let (principal, display) = match (active.user, claims.user) {
        (Some(_), _) if holders == Holders::ServicePrincipals => {
            return Err(refused_token(
                "it was issued to a person; a policy enforcement point authenticates as itself, with client_credentials"
                    .into(),
            ));
        }
        (Some((user, grant)), Some(signed_in)) => {
            let now = state.clock.now();
            if grant.has_scope(OFFLINE_ACCESS)
                && !state
                    .store
                    .grant_user(&grant, now)
                    .await?
                    .is_some_and(|(_, session_live)| session_live)
            {
                return Err(refused_token(
                    "the sign-in session it came from has ended".into(),
                ));
            }
            session = Some((grant.session_id, grant.auth_time));
            authentication.session_id = Some(signed_in.sid);
            authentication.amr = signed_in.amr;
            authentication.acr = Some(signed_in.acr);
            authentication.auth_time = Some(signed_in.auth_time);
            (PrincipalRef::user(user.id), user.user_name)
        }
        (Some(_), None) => {
            return Err(refused_token("it names a user but no sign-in".into()));
        }
        (None, _) => {
            let name = active.client.map(|c| c.name).unwrap_or_default();
            (PrincipalRef::service_principal(client), name)
        }
    };
    metrics::counter!("portcullis_api_authentications_total", "method" => "access_token")
        .increment(1);
    Ok(Caller {
        actor: Actor {
            kind: principal.kind.as_str().into(),
            id: Some(principal.id.to_string()),
            display: Some(display),
            authentication: Some(authentication),
        },
        principal,
        session,
        api_key_use: None,
        engine: tokio::sync::OnceCell::new(),
        tenant,
        origin,
    })
}

/// A refused access token: counted, logged with its reason (never the token), and answered
/// with RFC 6750's `invalid_token`. Not audited: expiry is routine, and a forged token names
/// nobody worth an event.
fn refused_token(why: String) -> ApiError {
    metrics::counter!("portcullis_auth_failures_total", "method" => "access_token").increment(1);
    tracing::info!(reason = %why, "access token refused");
    ApiError::InvalidToken(why)
}

/// The credential of an `Authorization: Bearer …` header (the scheme in either case RFC 9110
/// allows callers to send it in).
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
}

/// Why an API key (or a client secret, which is one) was not accepted.
pub(crate) enum KeyRefusal {
    /// Too many failures from this address; retry after this many seconds.
    Throttled(u64),
    /// Missing, malformed, unknown, wrong, expired or revoked, or its owner is disabled: the
    /// caller learns no more than that, the audit trail records which.
    Invalid,
    Failed(ApiError),
}

impl From<portcullis_store::StoreError> for KeyRefusal {
    fn from(e: portcullis_store::StoreError) -> Self {
        KeyRefusal::Failed(e.into())
    }
}

/// Checks a presented API key (or a client secret, `method` says which): looked up by its
/// public prefix, its secret compared with the stored keyed hash in constant time, its expiry,
/// revocation and owner checked. Failures are throttled per source address, the check and the
/// count in one step; each is audited with its real reason, refusals past the limit only in
/// the aggregated `authn.throttled` events.
pub(crate) async fn authenticate_key(
    state: &AppState,
    method: &'static str,
    offered: bool,
    secret: Option<&str>,
    origin: &Origin,
    cache: Option<&TtlCache<String, ApiKeyCredential>>,
) -> Result<ApiKeyCredential, KeyRefusal> {
    let address_key = format!("ip:{}", origin.source_ip.as_deref().unwrap_or("unknown"));
    let started = Instant::now();
    let presented = secret.map(str::trim).and_then(PresentedApiKey::parse);
    let throttled = |tenant: TenantId, retry_after_seconds: u64| {
        let prefix = presented.as_ref().map(|p| p.prefix.as_str());
        let now = state.clock.now();
        state
            .throttled
            .note_refused(tenant, prefix, origin, method, now);
        KeyRefusal::Throttled(retry_after_seconds)
    };
    if let Some(seconds) = state.failures.blocked_for(&address_key, started) {
        return Err(throttled(state.operator_tenant, seconds));
    }
    let cached = presented
        .as_ref()
        .and_then(|p| cache.and_then(|c| c.get(&p.prefix, started)));
    let from_store = cached.is_none();
    let found = match (cached, &presented) {
        (Some(credential), _) => Some(credential),
        (None, Some(presented)) => state.store.api_key_credential(&presented.prefix).await?,
        (None, None) => None,
    };
    let now = state.clock.now();
    let checked = state.failures.attempt(&address_key, started, || {
        let Some(presented) = &presented else {
            return Err(if offered {
                "malformed credential"
            } else {
                "no credential"
            });
        };
        let Some(credential) = &found else {
            return Err("unknown API key");
        };
        if !state
            .hasher
            .verify(presented.secret_bytes(), &credential.secret_hash)
        {
            return Err("wrong API key secret");
        }
        match credential.key.check_usable(now) {
            Err(KeyUnusable::Revoked) => Err("API key revoked"),
            Err(KeyUnusable::Expired) => Err("API key expired"),
            Ok(()) if credential.owner.state != LifecycleState::Active => {
                Err("service principal disabled")
            }
            Ok(()) if credential.tenant.state != LifecycleState::Active => Err("tenant disabled"),
            Ok(()) => Ok(()),
        }
    });
    let key_target = found
        .as_ref()
        .zip(presented.as_ref())
        .map(|(credential, presented)| (credential.tenant.id, &presented.prefix));
    match checked {
        Err(seconds) => {
            let tenant = key_target.map_or(state.operator_tenant, |(tenant, _)| tenant);
            return Err(throttled(tenant, seconds));
        }
        Ok(Err(reason)) => return Err(fail(state, key_target, reason, origin.clone()).await),
        Ok(Ok(())) => {}
    }
    let Some(mut credential) = found else {
        return Err(KeyRefusal::Failed(ApiError::Internal(
            "a key passed its check without being found".into(),
        )));
    };
    let prefix = credential.key.prefix.clone();
    if credential
        .key
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_GRANULARITY)
    {
        state
            .store
            .touch_api_key(credential.key.id, now, LAST_USED_GRANULARITY)
            .await?;
        credential.key.last_used_at = Some(now);
        if let Some(cache) = cache.filter(|_| !from_store) {
            // The remembered record still shows the old last-used time: read it afresh.
            cache.forget(&prefix);
        }
    }
    // Only what was just read from the store is remembered, stamped with when it was read: a
    // busy client must not keep an old record alive past the cache's lifetime.
    if let Some(cache) = cache.filter(|_| from_store) {
        cache.insert(prefix, credential.clone(), started);
    }
    Ok(credential)
}

/// Records a failed authentication (already counted against its address) in the audit trail
/// (of the key's tenant when the key exists, else of the operator tenant) and returns the 401.
/// Failures are deliberately not counted per key: key prefixes are public, so such a count
/// would let anyone lock a known key out, and guessing a 256-bit secret is hopeless anyway.
async fn fail(
    state: &AppState,
    key: Option<(TenantId, &String)>,
    reason: &str,
    origin: Origin,
) -> KeyRefusal {
    metrics::counter!("portcullis_auth_failures_total").increment(1);
    let event = NewAuditEvent {
        tenant_id: key.map_or(state.operator_tenant, |(tenant, _)| tenant),
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "authn.api_key".into(),
        target: key.map(|(_, prefix)| Target::new("api_key", prefix)),
        outcome: Outcome::Failure,
        reason: Some(reason.into()),
        origin,
        details: json!({}),
    };
    if let Err(error) = state.audit.append(event).await {
        tracing::error!(%error, "could not record a failed authentication");
        return KeyRefusal::Failed(ApiError::Unavailable(
            "The audit trail cannot be written; refusing to continue.".into(),
        ));
    }
    KeyRefusal::Invalid
}

impl Caller {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// The context in which this caller's writes are made and audited.
    pub fn write_context(&self, state: &AppState) -> WriteContext {
        WriteContext {
            tenant_id: self.tenant.id,
            actor: self.actor.clone(),
            origin: self.origin.clone(),
            now: state.clock.now(),
            keep_role_assigner: None,
        }
    }

    /// The context for a change that can take the power to assign roles from someone (see
    /// `portcullis_core::lockout`): its write refuses to commit, with `409`, if it would leave
    /// nobody in the tenant with it.
    pub async fn guarded_write_context(
        &self,
        state: &AppState,
        removal: Removal,
    ) -> Result<WriteContext, ApiError> {
        let current = self.engine(state, Freshness::Latest).await?;
        let mut ctx = self.write_context(state);
        ctx.keep_role_assigner = Some(RoleAssignerGuard {
            removal,
            before: Some((current.engine.clone(), current.revision)),
        });
        Ok(ctx)
    }

    /// The tenant's authorization snapshot for this request: at least as fresh as
    /// `freshness` demands if this is the request's first decision, else the one its earlier
    /// decisions used.
    pub async fn engine(
        &self,
        state: &AppState,
        freshness: Freshness,
    ) -> Result<Arc<Current>, crate::engine::EngineError> {
        let wait = StdDuration::from_millis(state.config.authz_max_wait_ms);
        self.engine
            .get_or_try_init(|| {
                state
                    .engines
                    .fresh(&state.store, self.tenant.id, freshness, wait)
            })
            .await
            .cloned()
    }

    /// The engine's answer to whether the caller may do `action` at `scope`. Unless the request
    /// already holds a snapshot, it takes one that reflects every change committed before it,
    /// on any node: a role removed is refused at once everywhere.
    pub async fn decide(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
    ) -> Result<Verdict, ApiError> {
        let current = self.engine(state, Freshness::Latest).await?;
        let now = instant(state.clock.now());
        Ok(current
            .engine
            .check_control(self.principal, action, scope, now))
    }

    /// Allows the request or refuses it with 403, recording the refusal in the audit trail.
    pub async fn authorize(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
        target: Option<Target>,
    ) -> Result<(), ApiError> {
        let decision = self.decide(state, action, scope).await?;
        if decision.allowed {
            metrics::counter!("portcullis_authz_decisions_total", "outcome" => "allow")
                .increment(1);
            return self.check_sign_in(state, action, scope, target).await;
        }
        metrics::counter!("portcullis_authz_decisions_total", "outcome" => "deny").increment(1);
        let reason = decision.reason.to_string();
        let details = json!({"scope": scope.to_string(), "decision": decision.reason});
        self.record_refusal(state, action, target, &reason, details)
            .await?;
        Err(ApiError::Forbidden(reason))
    }

    /// A person the engine allowed `action` must also have signed in as strongly and as
    /// recently as the tenant's policy for administrators asks; otherwise the client is told
    /// what to come back with (RFC 9470), and the refusal is audited. The proofs are those of
    /// the token's session up to the sign-in it was issued from, each with its own time; the
    /// policy is read at every request, so a stricter one applies at once on every node.
    async fn check_sign_in(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
        target: Option<Target>,
    ) -> Result<(), ApiError> {
        let Some((session_id, auth_time)) = self.session else {
            return self.check_api_key_use(state, action, scope, target).await;
        };
        let policy = state.store.administrator_policy(self.tenant.id).await?;
        let Some(need) = policy.need(action) else {
            return Ok(());
        };
        let now = state.clock.now();
        let Some(session) = state
            .store
            .live_session(self.tenant.id, session_id, now)
            .await?
        else {
            return Err(refused_token(
                "the sign-in session it came from has ended".into(),
            ));
        };
        let missing = match session.as_of(auth_time).step_up(need, now) {
            StepUp::Satisfied => return Ok(()),
            StepUp::Passkey => "a passkey",
            StepUp::SecondFactor => "a second factor",
            StepUp::Password => "a fresh sign-in",
        };
        metrics::counter!("portcullis_authz_decisions_total", "outcome" => "step_up").increment(1);
        let recency = need.max_age.map_or(String::new(), |age| {
            format!(" within the last {} minutes", age.whole_minutes())
        });
        let reason = format!(
            "{action} needs a sign-in of strength {:?}{recency}; this session lacks {missing}",
            portcullis_core::authorize::acr_value(need.strength),
        );
        let details = json!({
            "scope": scope.to_string(),
            "acr_values": portcullis_core::authorize::acr_value(need.strength),
            "max_age": need.max_age.map(|age| age.whole_seconds()),
        });
        self.record_refusal(state, action, target, &reason, details)
            .await?;
        Err(ApiError::InsufficientUserAuthentication {
            need,
            detail: format!(
                "{reason}. Sign in again as asked (`portcullis login` does it), then retry."
            ),
        })
    }

    /// Whether the caller came with an API key (not a token or a session).
    pub fn uses_api_key(&self) -> bool {
        self.actor
            .authentication
            .as_ref()
            .is_some_and(|a| a.method == "api_key")
    }

    /// A tenant may refuse the API keys of principals that hold privileged actions (its
    /// policy's `recent_actions`): a static key neither ends with a session nor proves a
    /// second factor. Decided by the same snapshot as the request's other checks, so a key
    /// whose owner is given such a role stops working at once.
    async fn check_api_key_use(
        &self,
        state: &AppState,
        action: Action,
        scope: Scope,
        target: Option<Target>,
    ) -> Result<(), ApiError> {
        // Only a key whose tenant refuses privileged keys costs a read of the whole policy.
        if self.api_key_use != Some(ApiKeyUse::UnprivilegedOnly) {
            return Ok(());
        }
        let policy = state.store.administrator_policy(self.tenant.id).await?;
        if policy.api_keys == ApiKeyUse::Allowed {
            return Ok(());
        }
        let current = self.engine(state, Freshness::Latest).await?;
        let now = instant(state.clock.now());
        let privileged = policy.recent_actions.iter().copied();
        if !current.engine.holds_any(self.principal, privileged, now) {
            return Ok(());
        }
        let reason = "refused: this tenant does not accept API keys for principals that hold privileged \
                      actions; use an OAuth access token instead (`client_credentials` with \
                      `private_key_jwt` for automation, `portcullis login` for people)";
        let details = json!({"scope": scope.to_string(), "api_keys": policy.api_keys.as_str()});
        self.record_refusal(state, action, target, reason, details)
            .await?;
        Err(ApiError::Forbidden(reason.into()))
    }

    async fn record_refusal(
        &self,
        state: &AppState,
        action: Action,
        target: Option<Target>,
        reason: &str,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.record(
            state,
            action.as_str(),
            target,
            (Outcome::Denied, Some(reason.into())),
            details,
        )
        .await
    }

    /// Appends an event by the caller that goes with no stored change (a refusal, or an act on
    /// the server's memory such as an unlock).
    pub(crate) async fn record(
        &self,
        state: &AppState,
        action: &str,
        target: Option<Target>,
        (outcome, reason): (Outcome, Option<String>),
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let event = NewAuditEvent {
            tenant_id: self.tenant.id,
            at: state.clock.now(),
            actor: self.actor.clone(),
            action: action.into(),
            target,
            outcome,
            reason,
            origin: self.origin.clone(),
            details,
        };
        state.audit.append(event).await?;
        Ok(())
    }

    /// May the caller make the change `action` to `principal`? Every endpoint that changes a
    /// principal (its attributes, state, memberships, credentials, sessions or consents) asks
    /// this and nothing else. Changing a principal that holds any role (directly or through
    /// its groups), or a group that a deny assignment reaches, is itself a privileged act: it needs
    /// `role.assign` on top of `action`: otherwise a user administrator could take over or lock
    /// out a tenant administrator, add themselves to an administrators' group, or leave the
    /// group a guardrail holds (or join the one it excepts). Assignments that start later
    /// count too: joining a group whose role begins tomorrow is the same escalation, delayed.
    pub async fn authorize_change_to(
        &self,
        state: &AppState,
        action: Action,
        principal: PrincipalRef,
    ) -> Result<(), ApiError> {
        let target = Target::new(principal.kind.as_str(), principal.id);
        self.authorize(state, action, Scope::Tenant, Some(target.clone()))
            .await?;
        // Only a group's memberships move a guardrail; a user or service principal it holds
        // stays the user administrator's to edit.
        let guarded = principal.kind == PrincipalKind::Group
            && self
                .engine(state, Freshness::Latest)
                .await?
                .engine
                .under_deny_assignment(principal);
        if !guarded
            && state
                .store
                .grants_now_or_later(self.tenant.id, principal, state.clock.now())
                .await?
                .is_empty()
        {
            return Ok(());
        }
        self.authorize(state, Action::RoleAssign, Scope::Tenant, Some(target))
            .await
    }
}
