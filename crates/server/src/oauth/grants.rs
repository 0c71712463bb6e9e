//! The token endpoint's user grants: a code redeemed once with its PKCE verifier
//! (`authorization_code`), and refresh tokens rotated at every use, where a reused one revokes
//! everything its sign-in led to (`refresh_token`). Both answer with an RFC 9068 access token,
//! an ID token when `openid` was granted, and a refresh token when the client may refresh.

use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::authorize::{IdTokenClaims, at_hash, pkce_matches};
use portcullis_core::authz::RoleRef;
use portcullis_core::conditional::{Application, ClientType, Proofs, SessionControls};
use portcullis_core::identity::{PrincipalRef, Tenant, User};
use portcullis_core::oauth::{
    AccessTokenClaims, ClientSettings, GrantType, OAuthError, UserAuthentication,
};
use portcullis_core::session::{Strength, new_session_token};
use portcullis_store::{DeviceDecision, Poll, Redemption, StoreError, StoredGrant};

use super::{
    Client, Issue, TokenForm, current_key, issuer, new_jti, require_grant, token_response,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The keyed hash under which codes, refresh tokens and request handles are stored.
pub(crate) fn secret_hash(state: &AppState, token: &str) -> String {
    hex::encode(state.hasher.hash(token.as_bytes()))
}

/// Conditional access on a user's token: the grant's sign-in, to this client, from where the
/// request comes now (so a refresh from a place a policy now blocks fails, and so does one
/// whose sign-in is older than a policy's sign-in frequency). Returns the session controls
/// the tokens are issued under.
async fn admitted(
    state: &AppState,
    client: &Client,
    grant: &StoredGrant,
    user: &User,
    origin: &Origin,
) -> Result<SessionControls, Issue> {
    let client_type = match client.settings.client_type {
        portcullis_core::oauth::ClientType::Public => ClientType::Native,
        portcullis_core::oauth::ClientType::Confidential => ClientType::Browser,
    };
    let judged = crate::conditional::for_user(
        state,
        user,
        Application::Client(client.id),
        client_type,
        origin,
        crate::engine::Freshness::Held,
    )
    .await
    .map_err(ApiError::from)?;
    let proofs = Proofs {
        strength: Strength::parse(&grant.acr),
        terms_accepted: crate::conditional::terms_accepted(state, &judged, user.id).await?,
        ..Proofs::default()
    };
    let controls = crate::conditional::token_refusal(state, &judged, &proofs, "token", origin)
        .await?
        .map_err(|why: String| invalid_grant(&why))?;
    if controls.sign_in_too_old(grant.auth_time, state.clock.now()) {
        return Err(invalid_grant(
            "conditional access asks for a new sign-in at this interval; sign in again",
        ));
    }
    Ok(controls)
}

fn invalid_grant(why: &str) -> Issue {
    OAuthError::InvalidGrant(why.into()).into()
}

pub(super) async fn authorization_code(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    form: &TokenForm,
) -> Result<axum::response::Response, Issue> {
    require_grant(client, GrantType::AuthorizationCode, "authorization_code")?;
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    let verifier = form.get("code_verifier").ok_or_else(|| {
        OAuthError::InvalidRequest("code_verifier is missing: PKCE is required".into())
    })?;
    let now = state.clock.now();
    let Some((grant, used)) = state
        .store
        .grant_by_code(tenant.id, client.id, &secret_hash(state, code))
        .await?
    else {
        return Err(invalid_grant(
            "the code is unknown, or was issued to another client",
        ));
    };
    if used {
        return Err(code_reused(state, tenant, &origin, client, &grant, now).await);
    }
    if now >= grant.code_expires_at {
        return Err(invalid_grant("the code has expired: codes last 60 seconds"));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the one the code was sent to",
        ));
    }
    if !pkce_matches(verifier, &grant.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if !form.resources.is_empty() && form.resources != [grant.audience.clone()] {
        return Err(OAuthError::InvalidTarget(
            "resource must be the one named in the authorization request".into(),
        )
        .into());
    }
    redeem(state, tenant, origin, client, &grant, now).await
}

/// Redeems a grant's one-time code (an authorization code, or an approved device code): its
/// tokens, and its first refresh token if the client may refresh. A code raced by a copy of
/// it is redeemed once, and the loser revokes what the winner got.
async fn redeem(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    grant: &StoredGrant,
    now: OffsetDateTime,
) -> Result<axum::response::Response, Issue> {
    // Conditional access judged this authorization at the authorization endpoint, from the
    // person's browser; the code's redemption comes from the application, wherever it runs.
    let (user, _) = usable_user(state, grant, now).await?;
    let refresh = if client.settings.grants(GrantType::RefreshToken) {
        Some(new_session_token().map_err(|e| ApiError::Internal(e.to_string()))?)
    } else {
        None
    };
    let refresh_hash = refresh.as_ref().map(|token| secret_hash(state, token));
    let first_refresh = refresh_hash
        .as_deref()
        .map(|hash| (hash, refresh_expiry(&client.settings, grant, now)));
    // The code is taken, and its refresh token stored, in one transaction.
    if state.store.redeem_code(grant, first_refresh, now).await? == Redemption::Reused {
        return Err(code_reused(state, tenant, &origin, client, grant, now).await);
    }
    let minted = Mint {
        grant,
        user: &user,
        scopes: &grant.scopes,
        nonce: grant.nonce.as_deref(),
        refresh,
        // Judged at the authorization endpoint, from the person's browser, and kept with the
        // grant: the code comes back from the application, wherever it runs.
        controls: SessionControls::default(),
    };
    mint(state, tenant, origin, client, minted).await
}

/// RFC 8628 §3.4–3.5: the device polls with its device code until the user has answered.
pub(super) async fn device_code(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    form: &TokenForm,
) -> Result<axum::response::Response, Issue> {
    require_grant(client, GrantType::DeviceCode, "device_code")?;
    let hash = secret_hash(state, form.require("device_code")?);
    let now = state.clock.now();
    let Some((request, poll)) = state
        .store
        .poll_device_authorization(tenant.id, client.id, &hash, now)
        .await?
    else {
        return Err(invalid_grant(
            "the device code is unknown, or was issued to another client",
        ));
    };
    if let Poll::TooSoon(interval) = poll {
        return Err(OAuthError::SlowDown(interval).into());
    }
    match request.decision {
        Some(DeviceDecision::Denied) => Err(OAuthError::AccessDenied.into()),
        Some(DeviceDecision::Approved) => {
            let Some((grant, used)) = state
                .store
                .grant_by_code(tenant.id, client.id, &hash)
                .await?
            else {
                return Err(invalid_grant(
                    "the approval of this device code was withdrawn",
                ));
            };
            if used {
                return Err(code_reused(state, tenant, &origin, client, &grant, now).await);
            }
            if now >= grant.code_expires_at {
                return Err(OAuthError::ExpiredToken.into());
            }
            redeem(state, tenant, origin, client, &grant, now).await
        }
        None if now >= request.expires_at => Err(OAuthError::ExpiredToken.into()),
        None => Err(OAuthError::AuthorizationPending.into()),
    }
}

pub(super) async fn refresh_token(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    form: &TokenForm,
) -> Result<axum::response::Response, Issue> {
    require_grant(client, GrantType::RefreshToken, "refresh_token")?;
    let presented = form.require("refresh_token")?;
    let old_hash = secret_hash(state, presented);
    let now = state.clock.now();
    let Some(record) = state.store.refresh_token(tenant.id, &old_hash).await? else {
        return Err(invalid_grant("the refresh token is unknown"));
    };
    let grant = record.grant;
    if grant.client_id != client.id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if record.used {
        revoke_for_reuse(state, tenant, &origin, client, &grant, now).await?;
        return Err(invalid_grant(
            "the refresh token was already used; its whole family is now revoked",
        ));
    }
    if !grant.is_live(now) {
        return Err(invalid_grant("the refresh token has been revoked"));
    }
    if now >= record.expires_at {
        return Err(invalid_grant("the refresh token has expired"));
    }
    let (user, session_live) = usable_user(state, &grant, now).await?;
    let controls = admitted(state, client, &grant, &user, &origin).await?;
    if !grant.has_scope(portcullis_core::oauth::OFFLINE_ACCESS) && !session_live {
        return Err(invalid_grant(
            "the sign-in session this token belongs to has ended (ask for offline_access to outlive it)",
        ));
    }
    let scopes = narrowed_scopes(&grant, form.get("scope"))?;
    if !form.resources.is_empty() && form.resources != [grant.audience.clone()] {
        return Err(OAuthError::InvalidTarget(
            "resource must be the one named in the authorization request".into(),
        )
        .into());
    }
    let next = new_session_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires_at = refresh_expiry(&client.settings, &grant, now);
    let rotated = state
        .store
        .rotate_refresh_token(
            grant.tenant_id,
            grant.id,
            &old_hash,
            &secret_hash(state, &next),
            now,
            expires_at,
        )
        .await?;
    if !rotated {
        // Two requests raced with the same token: one of them holds a copy.
        revoke_for_reuse(state, tenant, &origin, client, &grant, now).await?;
        return Err(invalid_grant(
            "the refresh token was already used; its whole family is now revoked",
        ));
    }
    let minted = Mint {
        grant: &grant,
        user: &user,
        scopes: &scopes,
        nonce: None,
        refresh: Some(next),
        controls,
    };
    mint(state, tenant, origin, client, minted).await
}

/// The scopes of a refresh: the grant's, or fewer of them (RFC 6749 §6).
fn narrowed_scopes(grant: &StoredGrant, requested: Option<&str>) -> Result<Vec<String>, Issue> {
    let Some(requested) = requested else {
        return Ok(grant.scopes.clone());
    };
    let mut scopes = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !grant.has_scope(scope) {
            return Err(OAuthError::InvalidScope(format!(
                "{scope:?} was not granted at sign-in; a refresh can only keep or narrow the scopes"
            ))
            .into());
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

/// A code presented again: everything issued from it is revoked (if not already), audited.
async fn code_reused(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    client: &Client,
    grant: &StoredGrant,
    now: OffsetDateTime,
) -> Issue {
    let revoked = state
        .store
        .revoke_grant(tenant.id, grant.id, "authorization code used twice", now)
        .await;
    let audited = audit_revocation(state, tenant, origin, client, grant.id, "code reused").await;
    match (revoked, audited) {
        (Err(e), _) => e.into(),
        (_, Err(issue)) => issue,
        _ => invalid_grant("the code was already used; every token issued from it is now revoked"),
    }
}

/// Each refresh token lives `refresh_token_seconds`, never past the grant's last day.
fn refresh_expiry(
    settings: &ClientSettings,
    grant: &StoredGrant,
    now: OffsetDateTime,
) -> OffsetDateTime {
    (now + Duration::seconds(i64::from(settings.refresh_token_seconds))).min(grant.expires_at)
}

/// The grant's user, if still allowed in (disabling a user stops their tokens at once), and
/// whether the sign-in session behind the grant is still open.
async fn usable_user(
    state: &AppState,
    grant: &StoredGrant,
    now: OffsetDateTime,
) -> Result<(User, bool), Issue> {
    let Some((user, session_live)) = state.store.grant_user(grant, now).await? else {
        return Err(invalid_grant("the user no longer exists"));
    };
    if user.unusable_reason(now).is_some() {
        return Err(invalid_grant("the user is disabled or has expired"));
    }
    Ok((user, session_live))
}

async fn revoke_for_reuse(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    client: &Client,
    grant: &StoredGrant,
    now: OffsetDateTime,
) -> Result<(), Issue> {
    state
        .store
        .revoke_grant(tenant.id, grant.id, "refresh token reused", now)
        .await?;
    audit_revocation(
        state,
        tenant,
        origin,
        client,
        grant.id,
        "refresh token reused",
    )
    .await
}

/// A grant revoked because something was replayed: a security event for the audit trail.
async fn audit_revocation(
    state: &AppState,
    tenant: &Tenant,
    origin: &Origin,
    client: &Client,
    grant_id: portcullis_core::GrantId,
    reason: &str,
) -> Result<(), Issue> {
    metrics::counter!("portcullis_oauth_replays_total").increment(1);
    let event = NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::service_principal(client.id),
        action: "oauth.grant.revoke".into(),
        target: Some(Target::new("oauth_grant", grant_id)),
        outcome: Outcome::Failure,
        reason: Some(reason.into()),
        origin: origin.clone(),
        details: json!({}),
    };
    state.audit.append(event).await.map_err(ApiError::from)?;
    Ok(())
}

struct Mint<'a> {
    grant: &'a StoredGrant,
    user: &'a User,
    scopes: &'a [String],
    nonce: Option<&'a str>,
    refresh: Option<String>,
    /// The session controls judged for this request, on top of those kept with the grant.
    controls: SessionControls,
}

/// The access token of a user grant has this `jti`: the grant's id, a dot, a random part, so
/// introspection finds the grant (and whether it was revoked) from the token alone.
pub(crate) fn grant_of_jti(jti: &str) -> Option<portcullis_core::GrantId> {
    jti.split_once('.')
        .and_then(|(grant, _)| grant.parse().ok())
}

async fn mint(
    state: &AppState,
    tenant: &Tenant,
    origin: Origin,
    client: &Client,
    minted: Mint<'_>,
) -> Result<axum::response::Response, Issue> {
    let Mint {
        grant,
        user,
        scopes,
        nonce,
        refresh,
        controls,
    } = minted;
    let settings = &client.settings;
    let lifetime = controls.token_seconds(
        grant
            .token_seconds
            .map_or(settings.access_token_seconds, |cap| {
                cap.min(settings.access_token_seconds)
            }),
    );
    let issuer = issuer(state, tenant);
    let key = current_key(state, tenant, settings.signing_alg, origin).await?;
    let (groups, roles) = directory_claims(state, tenant, settings, user).await?;
    let mut access = AccessTokenClaims::for_client(
        &issuer,
        &client.id.to_string(),
        grant.audience.clone(),
        scopes,
        state.clock.now(),
        lifetime,
        format!("{}.{}", grant.id, new_jti()?),
    );
    access.sub = user.id.to_string();
    access.user = Some(UserAuthentication {
        auth_time: grant.auth_time.unix_timestamp(),
        acr: grant.acr.clone(),
        amr: grant.amr.clone(),
        sid: grant.session_id.to_string(),
        groups: groups.clone(),
        roles: roles.clone(),
    });
    let access_token = key
        .sign("at+jwt", &access)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scopes.join(" "),
    });
    if scopes.iter().any(|s| s == "openid") {
        let mut profile = profile_claims(user, scopes);
        if let Some(groups) = groups {
            profile.insert("groups".into(), json!(groups));
        }
        if let Some(roles) = roles {
            profile.insert("roles".into(), json!(roles));
        }
        let id_token = IdTokenClaims {
            iss: issuer,
            sub: user.id.to_string(),
            aud: client.id.to_string(),
            azp: client.id.to_string(),
            iat: access.iat,
            exp: access.exp,
            auth_time: grant.auth_time.unix_timestamp(),
            nonce: nonce.map(str::to_owned),
            acr: grant.acr.clone(),
            amr: grant.amr.clone(),
            sid: grant.session_id.to_string(),
            at_hash: Some(at_hash(&access_token)),
            profile,
        };
        body["id_token"] = json!(
            key.sign("JWT", &id_token)
                .map_err(|e| ApiError::Internal(e.to_string()))?
        );
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    Ok(token_response(body))
}

/// The user's claims that `scopes` allow (OIDC Core §5.4): `profile` gives the names, `email`
/// the address.
pub(crate) fn profile_claims(user: &User, scopes: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    if scopes.iter().any(|s| s == "profile") {
        claims.insert("preferred_username".into(), json!(user.user_name));
        claims.insert(
            "name".into(),
            json!(user.display_name.as_deref().unwrap_or(&user.user_name)),
        );
        claims.insert("updated_at".into(), json!(user.updated_at.unix_timestamp()));
    }
    if scopes.iter().any(|s| s == "email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(user.email_verified));
    }
    claims
}

/// The user's group names (through nested groups too) and role names, if the client asked
/// for them.
pub(crate) async fn directory_claims(
    state: &AppState,
    tenant: &Tenant,
    settings: &ClientSettings,
    user: &User,
) -> Result<(Option<Vec<String>>, Option<Vec<String>>), StoreError> {
    let principal = PrincipalRef::user(user.id);
    let groups = if settings.groups_claim {
        Some(
            state
                .store
                .group_names_transitive(tenant.id, principal)
                .await?,
        )
    } else {
        None
    };
    let roles = if settings.roles_claim {
        let mut names: Vec<String> = state
            .store
            .grants(tenant.id, principal, state.clock.now())
            .await?
            .into_iter()
            // Custom roles are named by id, which means nothing to an application.
            .filter_map(|g| match g.role {
                RoleRef::Builtin(role) => Some(role.as_str().to_owned()),
                RoleRef::Custom(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        Some(names)
    } else {
        None
    };
    Ok((groups, roles))
}
