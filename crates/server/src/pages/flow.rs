//! The end of every sign-in step. The facts are gathered (the user's factors, the tenant's
//! rules, what its conditional access policies decide), the state machine in `core` says what
//! comes next, and this carries it out: the code page, a session, or a refusal recorded with
//! each policy's result.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::conditional::{Application, ClientType, Compiled, Control, Proofs};
use portcullis_core::device_key::{RegisteredDevice, verify_proof};
use portcullis_core::identity::{Tenant, User};
use portcullis_core::session::SignInSettings;
use portcullis_core::signin::{self, Facts, Next, Refusal, Step};

use super::{PageError, continue_to, mfa, open_session, passkeys, tenant_requires_mfa};
use crate::conditional::{self, Judged};
use crate::engine::Freshness;
use crate::state::AppState;

/// How a step ends.
pub(super) enum Finished {
    /// On to the code page.
    Challenge(Response),
    /// The session is open; on to where the person was going.
    Opened(Response),
    /// The sign-in cannot go on (already audited): the status and what to tell the person.
    Refused { status: StatusCode, message: String },
}

impl Finished {
    /// Whether the sign-in goes on to the code page.
    pub(super) fn asks_for_a_code(&self) -> bool {
        matches!(self, Self::Challenge(_))
    }

    /// The response, with a refusal rendered on the page the step came from.
    pub(super) fn respond(self, page: impl FnOnce(String) -> Response) -> Response {
        match self {
            Self::Challenge(response) | Self::Opened(response) => response,
            Self::Refused { status, message } => {
                let mut response = page(message);
                *response.status_mut() = status;
                response
            }
        }
    }
}

/// What the person is told when a sign-in is refused.
fn explain(refusal: &Refusal, policies: &Compiled) -> String {
    let name = |id| {
        policies
            .policy(id)
            .map_or_else(String::new, |p| format!(" (policy \"{}\")", p.name))
    };
    match refusal {
        Refusal::Blocked { policy } => format!(
            "Your organisation does not allow this sign-in from here{}. If you think this is wrong, tell your administrator.",
            name(*policy)
        ),
        Refusal::PasskeyRequired => {
            "Your organisation requires more than a password: use \"Sign in with a passkey\" below."
                .into()
        }
        Refusal::Unsatisfiable { policy, control } => {
            let needs = match control {
                Control::Mfa => "a second factor",
                Control::PhishingResistant => "a passkey, and you have none set up",
                Control::CompliantDevice => "a device your organisation manages",
                Control::PasswordChange => "a new password",
                Control::TermsOfUse => "the terms of use accepted",
            };
            format!(
                "This sign-in needs {needs}{}. Ask your administrator for help.",
                policy.map(name).unwrap_or_default()
            )
        }
    }
}

/// Carries a completed `step` of `user`'s sign-in on.
pub(super) async fn complete(
    state: &AppState,
    tenant: &Tenant,
    settings: &SignInSettings,
    user: &User,
    step: Step,
    origin: Origin,
    headers: &HeaderMap,
) -> Result<Finished, PageError> {
    let (facts, judged, evaluation, seen) =
        gather(state, (tenant, settings), user, &step, &origin, headers).await?;
    match signin::next(&step, &facts) {
        Next::SecondFactor => Ok(Finished::Challenge(mfa::challenge(
            state,
            tenant,
            user,
            state.clock.now(),
        )?)),
        Next::Open(opening) => {
            crate::risk::judged_sign_in(state, &judged, user, &origin).await?;
            let context = conditional::log_details(&judged, &evaluation);
            if judged.policies().is_emergency_account(user.id) {
                emergency_sign_in(state, tenant, user, &origin).await?;
            }
            let landing = match &step {
                Step::Enrolment { .. } => Some(enrolment_landing(state, tenant, settings)),
                _ => continue_to(state, &tenant.name, headers),
            };
            let response = open_session(
                state,
                tenant,
                user,
                origin,
                (opening, evaluation.session, seen),
                context,
                landing,
            )
            .await?;
            Ok(Finished::Opened(response))
        }
        Next::Refuse(refusal) => {
            crate::risk::judged_sign_in(state, &judged, user, &origin).await?;
            let context = conditional::log_details(&judged, &evaluation.refused());
            let mut details = json!({ "method": step_method(&step), "refusal": refusal });
            if let (Some(details), Some(context)) = (details.as_object_mut(), context.as_object()) {
                details.extend(context.clone());
            }
            super::record_refusal(
                state,
                tenant,
                Some(user),
                refusal.reason(),
                details,
                &origin,
            )
            .await?;
            Ok(Finished::Refused {
                status: StatusCode::FORBIDDEN,
                message: explain(&refusal, judged.policies()),
            })
        }
    }
}

type Gathered = (
    Facts,
    Judged,
    portcullis_core::conditional::Evaluation,
    portcullis_core::risk::Sighting,
);

async fn gather(
    state: &AppState,
    (tenant, settings): (&Tenant, &SignInSettings),
    user: &User,
    step: &Step,
    origin: &Origin,
    headers: &HeaderMap,
) -> Result<Gathered, PageError> {
    let store = &state.store;
    let has_totp = settings.allow_totp
        && store
            .totp(tenant.id, user.id)
            .await?
            .is_some_and(|t| t.confirmed);
    let has_passkey = passkeys::available(state, settings).is_some()
        && !store.passkeys(tenant.id, user.id).await?.is_empty();
    let must_change_password = !matches!(step, Step::Enrolment { .. })
        && store
            .password(tenant.id, user.id)
            .await?
            .is_some_and(|p| p.must_change);
    let mut judged = conditional::for_user(
        state,
        user,
        Application::Account,
        ClientType::Browser,
        origin,
        Freshness::Latest,
    )
    .await
    .map_err(crate::error::ApiError::from)?;
    let seen = conditional::assess_sign_in(state, &mut judged, user).await?;
    let device = proven_device(state, tenant, user, headers).await?;
    if let Some(device) = &device {
        judged.request.device = device.state();
        judged.request.platform = device.platform;
    }
    let proofs = Proofs {
        strength: Some(step.strength()),
        compliant_device: device.is_some_and(|d| d.compliant),
        terms_accepted: conditional::terms_accepted(state, &judged, user.id).await?,
        ..Proofs::default()
    };
    let evaluation = judged.policies().evaluate(&judged.request, &proofs);
    let facts = Facts {
        has_totp,
        has_passkey,
        tenant_requires_mfa: tenant_requires_mfa(state, tenant, settings, user.id).await?,
        must_change_password,
        access: evaluation.decision.clone(),
    };
    Ok((facts, judged, evaluation, seen))
}

/// The header a device's proof comes in (see `portcullis_core::device_key`).
pub(super) const DEVICE_PROOF_HEADER: &str = "portcullis-device-proof";

/// The user's registered device this sign-in step proved it comes from, if any: a proof in
/// [`DEVICE_PROOF_HEADER`], for this tenant, bound to this browser's anti-forgery token, fresh,
/// by a key registered to this user. Anything less is a sign-in from an unregistered device,
/// not an error: policies decide what that means.
async fn proven_device(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    headers: &HeaderMap,
) -> Result<Option<RegisteredDevice>, PageError> {
    let Some(proof) = headers
        .get(DEVICE_PROOF_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|p| p.len() <= 4096)
    else {
        return Ok(None);
    };
    let (binding, _) = super::csrf_token(state, headers)?;
    let audience = crate::oauth::issuer(state, tenant);
    let now = state.clock.now();
    let thumbprint = match verify_proof(proof, &audience, &binding, now) {
        Ok(thumbprint) => thumbprint,
        Err(why) => {
            tracing::info!(tenant = %tenant.id, user = %user.id, %why, "a device proof was not accepted");
            return Ok(None);
        }
    };
    let found = state.store.device_by_key(tenant.id, &thumbprint).await?;
    let Some(device) = found.filter(|d| d.user_id == user.id) else {
        return Ok(None);
    };
    state.store.device_seen(tenant.id, device.id, now).await?;
    Ok(Some(device))
}

fn step_method(step: &Step) -> &'static str {
    match step {
        Step::Password { .. } | Step::Enrolment { .. } => "pwd",
        Step::SecondFactor { method, .. } => method,
        Step::Passkey { .. } => "hwk",
    }
}

/// Where a new user goes after enrolling: to set up a second factor if they can.
fn enrolment_landing(state: &AppState, tenant: &Tenant, settings: &SignInSettings) -> String {
    if passkeys::available(state, settings).is_some() {
        format!("/t/{}/account/passkeys?welcome=1", tenant.name)
    } else if settings.allow_totp {
        format!("/t/{}/account/mfa", tenant.name)
    } else {
        format!("/t/{}/account", tenant.name)
    }
}

/// An emergency access account signed in: audited as high severity, always, so that every use
/// of one is seen and questioned.
async fn emergency_sign_in(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    origin: &Origin,
) -> Result<(), PageError> {
    tracing::warn!(tenant = %tenant.id, user = %user.id, "an emergency access account signed in");
    metrics::counter!("portcullis_emergency_account_sign_ins_total").increment(1);
    let event = NewAuditEvent {
        tenant_id: tenant.id,
        at: state.clock.now(),
        actor: Actor::anonymous(),
        action: "signin.emergency_account".into(),
        target: Some(Target::new("user", user.id)),
        outcome: Outcome::Success,
        reason: Some("an emergency access account signed in".into()),
        origin: origin.clone(),
        details: json!({ "severity": "high", "user_name": user.user_name }),
    };
    state.audit.append(event).await?;
    Ok(())
}
