//! Users: members and guests, and their lifecycle (active, disabled, deleted → restored or purged).

use crate::routes::items;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_api::Items;
use portcullis_api::users::{
    AccountLockout, CreateUser, EmailVerification, EndedSessions, EnrolmentLink,
    EnrolmentLinkRequest, MfaStatus, SetPassword, UnlockRequest, UpdateUser, UserQuery,
};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::audit::{Origin, Outcome, Target};
use portcullis_core::authz::{Action, Scope};
use portcullis_core::identity::{
    Group, LifecycleState, PrincipalRef, User, UserKind, parse_external_id, validate_sponsorship,
};
use portcullis_core::lockout::Removal;
use portcullis_core::mail::LinkPurpose;
use portcullis_core::names::{Name, parse_description, parse_email, parse_name};
use portcullis_core::oauth::ConsentSummary;
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::passkey::PasskeySummary;
use portcullis_core::password::PasswordStatus;
use portcullis_core::session::Session;
use portcullis_core::{PasskeyId, ServicePrincipalId, UserId, ValidationError};
use portcullis_store::{
    AuditFilter, NewUser, SessionsAfterRemoval, StoreError, UserChanges, UserFilter, UserMatch,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Precondition, Tagged};
use crate::routes::concurrent;
use crate::state::AppState;

fn optional_text(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    Ok(value
        .map(|v| parse_description(field, &v))
        .transpose()?
        .filter(|v| !v.is_empty()))
}

fn email(value: Option<String>) -> ApiResult<Option<Name>> {
    Ok(value.map(|e| parse_email("email", &e)).transpose()?)
}

/// Checks the guest rules against the sponsor as stored now.
async fn check_sponsorship(
    state: &AppState,
    caller: &Caller,
    kind: UserKind,
    sponsor_id: Option<UserId>,
    expires_at: Option<OffsetDateTime>,
) -> ApiResult<()> {
    let sponsor = match sponsor_id {
        Some(id) => match state.store.user(caller.tenant_id(), id).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound) => {
                return Err(
                    ValidationError::new("sponsor_id", "no such user in this tenant").into(),
                );
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    validate_sponsorship(kind, sponsor.as_ref(), expires_at, state.clock.now())?;
    Ok(())
}

fn user_target(id: UserId) -> Option<Target> {
    Some(Target::new("user", id))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserQuery), responses((status = 200, body = Page<User>)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<Page<User>>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, None)
        .await?;
    let filter = UserFilter {
        state: q.state,
        kind: q.kind,
        business_unit_id: q.business_unit_id,
    };
    let tenant = caller.tenant_id();
    if q.prefix
        .as_ref()
        .is_some_and(|p| p.chars().count() > portcullis_core::names::MAX_NAME_CHARS)
    {
        return Err(ValidationError::new(
            "prefix",
            format!(
                "must be at most {} characters, as long as the longest user name",
                portcullis_core::names::MAX_NAME_CHARS
            ),
        )
        .into());
    }
    let Some(prefix) = q.prefix.filter(|p| !p.is_empty()) else {
        let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
        return Ok(Json(state.store.users(tenant, &filter, page).await?));
    };
    // A search pages by the key that matched: its cursor holds that key and the user's id,
    // bound to the search so that it resumes no other.
    let limit = PageRequest::parse(None, q.limit)?.limit;
    let search = search_binding(&prefix, &filter);
    let after = q
        .cursor
        .as_deref()
        .map(|cursor| {
            let position =
                portcullis_core::page::bound::position(search.as_bytes(), cursor, "cursor")?;
            position
                .split_once(' ')
                .and_then(|(id, key)| {
                    Some(UserMatch {
                        id: id.parse().ok()?,
                        key: key.to_owned(),
                    })
                })
                .ok_or_else(|| {
                    ValidationError::new("cursor", "is not a cursor this server returned")
                })
        })
        .transpose()?;
    let (items, next) = state
        .store
        .search_users(tenant, &prefix, &filter, after.as_ref(), limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|m| {
            portcullis_core::page::bound::token(search.as_bytes(), &format!("{} {}", m.id, m.key))
        }),
    }))
}

/// What a search's cursor is bound to: the prefix and every filter.
fn search_binding(prefix: &str, filter: &UserFilter) -> String {
    format!(
        "users\n{prefix}\n{:?}\n{:?}\n{:?}",
        filter.state, filter.kind, filter.business_unit_id
    )
}

/// Refuses vouching for an address the user does not have.
fn vouched_address(email: Option<&Name>, email_verified: Option<bool>) -> ApiResult<()> {
    if email_verified == Some(true) && email.is_none() {
        return Err(ApiError::Validation(ValidationError::new(
            "email_verified",
            "only an address can be verified: give email too",
        )));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<Tagged<User>> {
    caller
        .authorize(&state, Action::UserCreate, Scope::Tenant, None)
        .await?;
    let kind = body.kind.unwrap_or(UserKind::Member);
    let user_name = parse_name("user_name", &body.user_name)?;
    let email = email(body.email)?;
    let display_name = optional_text("display_name", body.display_name)?;
    check_sponsorship(&state, &caller, kind, body.sponsor_id, body.expires_at).await?;
    let business_unit_id = match body.business_unit_id {
        Some(id) => id,
        None => state.store.root_business_unit(caller.tenant_id()).await?.id,
    };
    vouched_address(email.as_ref(), body.email_verified)?;
    let new = NewUser {
        user_name,
        external_id: parse_external_id(body.external_id)?,
        email_verified: body.email_verified.unwrap_or(false),
        email,
        display_name,
        kind,
        sponsor_id: body.sponsor_id,
        expires_at: body.expires_at,
        business_unit_id,
    };
    let user = state
        .store
        .create_user(&caller.write_context(&state), new)
        .await?;
    Ok(Tagged::created(user.version, user))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = User, headers(("etag" = String))), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Tagged<User>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    let user = state.store.user(caller.tenant_id(), id).await?;
    Ok(Tagged::ok(user.version, user))
}

/// Changes a user. Fields left out keep their value; `null` clears an optional one.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Tagged<User>> {
    caller
        .authorize_change_to(&state, Action::UserUpdate, PrincipalRef::user(id))
        .await?;
    let current = state.store.user(caller.tenant_id(), id).await?;
    let user_name = parse_name(
        "user_name",
        body.user_name.as_deref().unwrap_or(&current.user_name),
    )?;
    let email = match body.email {
        None => email(current.email.clone())?,
        Some(value) => email(value)?,
    };
    let display_name = match body.display_name {
        None => current.display_name.clone(),
        Some(value) => optional_text("display_name", value)?,
    };
    let new_state = body.state.unwrap_or(current.state);
    if new_state == LifecycleState::Deleted && current.state != LifecycleState::Deleted {
        return Err(ApiError::bad_request(
            "state",
            "to delete a user, send DELETE /v1/users/{id}",
        ));
    }
    let sponsor_id = body.sponsor_id.or(current.sponsor_id);
    let expires_at = body.expires_at.unwrap_or(current.expires_at);
    if body.sponsor_id.is_some() || body.expires_at.is_some() {
        check_sponsorship(&state, &caller, current.kind, sponsor_id, expires_at).await?;
    }
    vouched_address(email.as_ref(), body.email_verified)?;
    let changes = UserChanges {
        user_name,
        external_id: match body.external_id {
            None => current.external_id.clone(),
            Some(value) => parse_external_id(value)?,
        },
        email_verified: body.email_verified,
        email,
        display_name,
        state: new_state,
        sponsor_id,
        expires_at,
        business_unit_id: body.business_unit_id.unwrap_or(current.business_unit_id),
    };
    let version = precondition.check(current.version)?;
    // Disabled, or on its way out: the tenant must keep someone who can assign roles.
    let ctx = if changes.state != LifecycleState::Active || changes.expires_at.is_some() {
        caller
            .guarded_write_context(&state, Removal::Principal(PrincipalRef::user(id)))
            .await?
    } else {
        caller.write_context(&state)
    };
    let user = state
        .store
        .update_user(&ctx, id, version, changes)
        .await
        .map_err(|e| concurrent(e, &precondition))?;
    if user.state == LifecycleState::Disabled && current.state != LifecycleState::Disabled {
        // Their sessions are dead already; tell the applications that got tokens from them.
        tell_applications_sessions_ended(&state, &caller, id, ctx.origin).await?;
    }
    Ok(Tagged::ok(user.version, user))
}

/// Soft-deletes a user. It stops working at once and can be restored within the retention window.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    precondition: Precondition,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Tagged<User>> {
    caller
        .authorize_change_to(&state, Action::UserDelete, PrincipalRef::user(id))
        .await?;
    let current = state.store.user(caller.tenant_id(), id).await?;
    let ctx = caller
        .guarded_write_context(&state, Removal::Principal(PrincipalRef::user(id)))
        .await?;
    let user = state
        .store
        .delete_user(&ctx, id, precondition.expected(current.version)?)
        .await?;
    Ok(Tagged::ok(user.version, user))
}

/// Restores a deleted user to the state it had before deletion.
#[utoipa::path(post, path = "/v1/users/{id}/restore", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn restore_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Tagged<User>> {
    caller
        .authorize_change_to(&state, Action::UserDelete, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    let not_before = ctx.now - time::Duration::days(i64::from(state.config.deleted_retention_days));
    let user = state.store.restore_user(&ctx, id, not_before).await?;
    Ok(Tagged::ok(user.version, user))
}

/// Permanently removes a deleted user, with its memberships and role assignments.
#[utoipa::path(post, path = "/v1/users/{id}/purge", tag = "users", params(("id" = UserId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn purge_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserDelete, PrincipalRef::user(id))
        .await?;
    state
        .store
        .purge_user(&caller.write_context(&state), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The groups a user belongs to directly.
#[utoipa::path(get, path = "/v1/users/{id}/groups", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = Items<Group>), (status = 404, body = Problem)))]
pub async fn user_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<Items<Group>>> {
    caller
        .authorize(&state, Action::GroupRead, Scope::Tenant, user_target(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    Ok(items(
        state
            .store
            .memberships(caller.tenant_id(), PrincipalRef::user(id))
            .await?,
    ))
}

/// Whether the user has a password, and whether it must be changed. Never the hash.
#[utoipa::path(get, path = "/v1/users/{id}/password", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = PasswordStatus), (status = 404, body = Problem)))]
pub async fn password_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<PasswordStatus>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    Ok(Json(
        state.store.password_status(caller.tenant_id(), id).await?,
    ))
}

/// Sets or resets a user's password. Resetting the password of a user who holds a role needs
/// `role.assign` as well: otherwise it would be a way into that user's privileges.
#[utoipa::path(put, path = "/v1/users/{id}/password", tag = "users", params(("id" = UserId, Path)),
    request_body = SetPassword,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<SetPassword>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let password = SecretString::from(body.password);
    let user = state.store.user(caller.tenant_id(), id).await?;
    let policy = state
        .store
        .sign_in_settings(caller.tenant_id())
        .await?
        .password_policy;
    crate::risk::check_new_password(&state, &policy, &user, &password)
        .await?
        .map_err(ApiError::Validation)?;
    let hash = hash_password(&state, password).await?;
    let ctx = caller.write_context(&state);
    state
        .store
        .set_password(&ctx, id, hash, body.must_change.unwrap_or(true))
        .await?;
    crate::risk::password_replaced(&state, &ctx, id).await?;
    tell_applications_sessions_ended(&state, &caller, id, ctx.origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's password: it can no longer be used to sign in.
#[utoipa::path(delete, path = "/v1/users/{id}/password", tag = "users", params(("id" = UserId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    state.store.remove_password(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hashes off the async workers, a bounded number at a time: each hash holds a core and tens of
/// MiB for tens of milliseconds.
pub(crate) async fn hash_password(
    state: &AppState,
    password: SecretString,
) -> Result<String, ApiError> {
    let _permit = state
        .password_permits
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("The server is shutting down.".into()))?;
    let passwords = state.passwords.clone();
    tokio::task::spawn_blocking(move || passwords.hash(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The user's live sessions (never their tokens).
#[utoipa::path(get, path = "/v1/users/{id}/sessions", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = Items<Session>), (status = 404, body = Problem)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<Items<Session>>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    Ok(items(
        state
            .store
            .sessions_of_user(caller.tenant_id(), id, state.clock.now())
            .await?,
    ))
}

/// Signs the user out everywhere, at once. Applications that got tokens from those sessions
/// are told (back-channel logout), and the sessions' grants are revoked except
/// `offline_access` ones.
#[utoipa::path(delete, path = "/v1/users/{id}/sessions", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = EndedSessions), (status = 404, body = Problem)))]
pub async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<EndedSessions>> {
    caller
        .authorize_change_to(&state, Action::UserUpdate, PrincipalRef::user(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    let ctx = caller.write_context(&state);
    let ended = state.store.end_sessions(&ctx, id, None).await?;
    tell_applications_sessions_ended(&state, &caller, id, ctx.origin).await?;
    Ok(Json(EndedSessions { ended }))
}

/// The user's passkeys: names and dates, never key material.
#[utoipa::path(get, path = "/v1/users/{id}/passkeys", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = Items<PasskeySummary>), (status = 404, body = Problem)))]
pub async fn list_passkeys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<Items<PasskeySummary>>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    Ok(items(state.store.passkeys(caller.tenant_id(), id).await?))
}

/// Removes one of the user's passkeys, e.g. on a lost device; it stops working at once, and
/// every session of the user ends (one may have been opened with it).
#[utoipa::path(delete, path = "/v1/users/{id}/passkeys/{passkey_id}", tag = "users",
    params(("id" = UserId, Path), ("passkey_id" = PasskeyId, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_passkey(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, passkey_id)): ApiPath<(UserId, PasskeyId)>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    state
        .store
        .remove_passkey(&ctx, id, passkey_id, SessionsAfterRemoval::End)
        .await?;
    tell_applications_sessions_ended(&state, &caller, id, ctx.origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which second factors the user has: an authenticator app, how many recovery codes are left,
/// how many passkeys. Never a secret.
#[utoipa::path(get, path = "/v1/users/{id}/mfa", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = MfaStatus), (status = 404, body = Problem)))]
pub async fn mfa_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<MfaStatus>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    Ok(Json(state.store.mfa_status(caller.tenant_id(), id).await?))
}

/// Resets the user's second factor (a lost or stolen phone): their authenticator app and
/// recovery codes are removed and every session of theirs ends. Where the tenant requires MFA
/// they set up a new one at their next sign-in.
#[utoipa::path(delete, path = "/v1/users/{id}/mfa", tag = "users", params(("id" = UserId, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    state.store.reset_mfa(&ctx, id).await?;
    tell_applications_sessions_ended(&state, &caller, id, ctx.origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// After a change ended the user's sessions: their grants end with them, and the
/// applications that got tokens are told.
async fn tell_applications_sessions_ended(
    state: &AppState,
    caller: &Caller,
    user: UserId,
    origin: Origin,
) -> ApiResult<()> {
    let tenant = state.store.tenant(caller.tenant_id()).await?;
    crate::oauth::session_ended(state, &tenant, user, None, origin).await
}

/// The lock-out status of one user, with their latest failed sign-ins, so that the help desk
/// can tell a forgotten password from an attack before unlocking.
#[utoipa::path(get, path = "/v1/users/{id}/lockout", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = AccountLockout), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn lockout(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<AccountLockout>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    let user = state.store.user(caller.tenant_id(), id).await?;
    let settings = state.store.sign_in_settings(caller.tenant_id()).await?;
    let now = state.clock.now();
    let standing = state
        .sign_in_accounts
        .standing(
            &crate::pages::account_backoff_key(caller.tenant_id(), &user.user_name),
            now,
            &crate::pages::account_backoff(&settings),
        )
        .await?;
    let failures = AuditFilter {
        target_id: Some(id.to_string()),
        action: Some("signin".into()),
        outcome: Some(Outcome::Failure),
        ..AuditFilter::default()
    };
    let recent = state
        .store
        .audit_events(
            caller.tenant_id(),
            &failures,
            PageRequest::parse_seq(None, Some(RECENT_FAILURES))?,
        )
        .await?;
    Ok(Json(AccountLockout {
        locked: standing.is_some_and(|s| s.wait.is_some()),
        retry_after_seconds: standing
            .and_then(|s| s.wait)
            .map(|wait| wait.as_secs().max(1)),
        failures: standing.map_or(0, |s| s.failures),
        free_failures: settings.lockout.free_failures,
        last_failure_at: standing.map(|s| now - s.since_last),
        recent_failures: recent.items,
    }))
}

const RECENT_FAILURES: u32 = 10;

/// Unlocks an account that the sign-in back-off has locked: its counted failures are
/// forgotten and the user may try again at once. The reason is required and audited.
#[utoipa::path(post, path = "/v1/users/{id}/lockout/unlock", tag = "users",
    params(("id" = UserId, Path)), request_body = UnlockRequest,
    responses((status = 200, body = AccountLockout), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UnlockRequest>,
) -> ApiResult<Json<AccountLockout>> {
    let reason = parse_description("reason", &body.reason)?;
    if reason.is_empty() {
        return Err(ApiError::Validation(ValidationError::new(
            "reason",
            "say why the account is unlocked (the ticket, how the person was verified)",
        )));
    }
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let user = state.store.user(caller.tenant_id(), id).await?;
    let forgotten = state
        .sign_in_accounts
        .forget(&crate::pages::account_backoff_key(
            caller.tenant_id(),
            &user.user_name,
        ))
        .await?
        .unwrap_or(0);
    caller
        .record(
            &state,
            "user.unlock",
            user_target(id),
            (Outcome::Success, Some(reason)),
            json!({"failures_forgotten": forgotten}),
        )
        .await?;
    lockout(State(state), caller, ApiPath(id)).await
}

const MAX_LINK_HOURS: u32 = 30 * 24;

/// Creates a single-use, expiring enrolment link for an active user, replacing any unused one.
/// Using it sets their password and ends their sessions. With `send`, it is mailed to the
/// user's address (an invitation); otherwise it is returned: give it to the user over a
/// channel you trust, as whoever holds it can set the password.
#[utoipa::path(post, path = "/v1/users/{id}/enrolment-link", tag = "users",
    params(("id" = UserId, Path)), request_body = EnrolmentLinkRequest,
    responses((status = 201, body = EnrolmentLink), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_enrolment_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<EnrolmentLinkRequest>,
) -> ApiResult<(StatusCode, Json<EnrolmentLink>)> {
    let hours = body
        .expires_in_hours
        .unwrap_or(LinkPurpose::Enrol.default_hours());
    if !(1..=MAX_LINK_HOURS).contains(&hours) {
        return Err(ApiError::Validation(ValidationError::new(
            "expires_in_hours",
            format!("must be between 1 and {MAX_LINK_HOURS}"),
        )));
    }
    let send = body.send.unwrap_or(false);
    if send {
        mail_delivered(&state, "send")?;
    }
    caller
        .authorize_change_to(&state, Action::UserCredentialReset, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    let issued = crate::mail::issue_link(
        &state,
        &ctx,
        &caller.tenant.name,
        (id, LinkPurpose::Enrol),
        hours,
        send,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentLink {
            url: issued.url,
            sent_to: issued.created.sent_to,
            expires_at: issued.expires_at,
            replaced: issued.created.replaced,
        }),
    ))
}

/// Refuses a request that needs mail on a server that sends none.
fn mail_delivered(state: &AppState, field: &str) -> ApiResult<()> {
    if state.config.mail.is_none() {
        return Err(ApiError::Conflict {
            field: Some(field.to_owned()),
            detail: "this server sends no mail: its operator has not set smtp_url".into(),
        });
    }
    Ok(())
}

/// Mails the user a link with which they prove the address on their account is theirs (the
/// `email_verified` claim), replacing any unused one.
#[utoipa::path(post, path = "/v1/users/{id}/email-verification", tag = "users",
    params(("id" = UserId, Path)),
    responses((status = 202, body = EmailVerification), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn send_email_verification(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<(StatusCode, Json<EmailVerification>)> {
    mail_delivered(&state, "email")?;
    caller
        .authorize_change_to(&state, Action::UserUpdate, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    let issued = crate::mail::issue_link(
        &state,
        &ctx,
        &caller.tenant.name,
        (id, LinkPurpose::Verify),
        LinkPurpose::Verify.default_hours(),
        true,
    )
    .await?;
    let sent_to = issued.created.sent_to.unwrap_or_default();
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailVerification {
            sent_to,
            expires_at: issued.expires_at,
        }),
    ))
}

/// The applications the user approved (third-party clients that ask for consent).
#[utoipa::path(get, path = "/v1/users/{id}/consents", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = Items<ConsentSummary>), (status = 404, body = Problem)))]
pub async fn list_consents(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<Items<ConsentSummary>>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, user_target(id))
        .await?;
    state.store.user(caller.tenant_id(), id).await?;
    Ok(items(state.store.consents(caller.tenant_id(), id).await?))
}

/// Withdraws the user's approval of an application and revokes every grant they gave it: its
/// refresh tokens stop working and its access tokens introspect as inactive.
#[utoipa::path(delete, path = "/v1/users/{id}/consents/{client_id}", tag = "users",
    params(("id" = UserId, Path), ("client_id" = ServicePrincipalId, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, client_id)): ApiPath<(UserId, ServicePrincipalId)>,
) -> ApiResult<StatusCode> {
    caller
        .authorize_change_to(&state, Action::UserUpdate, PrincipalRef::user(id))
        .await?;
    let ctx = caller.write_context(&state);
    state.store.withdraw_consent(&ctx, id, client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
