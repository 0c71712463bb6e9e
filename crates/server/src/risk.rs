//! Identity protection at the sign-in pages: what a wrong or a right password says (brute
//! force, spray, leaked), and what a completed sign-in says against the user's earlier ones.
//! The rules are `portcullis_core::risk`'s; this gathers their inputs and records their
//! findings, each in the tenant's audited write.

use secrecy::{ExposeSecret, SecretString};

use portcullis_core::audit::{Actor, Origin};
use portcullis_core::conditional::RiskLevel;
use portcullis_core::identity::{Tenant, User};
use portcullis_core::password::PasswordPolicy;
use portcullis_core::risk::{self, Detection, DetectionKind, RiskState};
use portcullis_core::{TenantId, UserId, ValidationError};
use portcullis_store::{Finding, StoreError, WriteContext};

use crate::conditional::Judged;
use crate::state::AppState;

/// A keyed hash of a tried password: equal for equal passwords, so one password tried across
/// accounts can be counted, and useless to anyone without the server's pepper. The password
/// itself is never stored.
fn password_mac(state: &AppState, password: &SecretString) -> Vec<u8> {
    let mut input = b"password-spray:".to_vec();
    input.extend_from_slice(password.expose_secret().as_bytes());
    let mac = state.hasher.hash(&input);
    secrecy::zeroize::Zeroize::zeroize(&mut input);
    mac
}

fn context(state: &AppState, tenant: TenantId, origin: &Origin) -> WriteContext {
    WriteContext {
        tenant_id: tenant,
        actor: Actor::system(),
        origin: origin.clone(),
        now: state.clock.now(),
        keep_role_assigner: None,
    }
}

fn finding<'a>(
    user: Option<UserId>,
    detection: &'a Detection,
    subject: &str,
    origin: &'a Origin,
) -> Finding<'a> {
    Finding {
        user_id: user,
        detection,
        fingerprint: format!("{}:{subject}", detection.kind.as_str()),
        source_ip: origin.source_ip.as_deref(),
        country: None,
    }
}

async fn record(
    state: &AppState,
    tenant: TenantId,
    origin: &Origin,
    findings: &[Finding<'_>],
) -> Result<(), StoreError> {
    if findings.is_empty() {
        return Ok(());
    }
    for found in findings {
        metrics::counter!(
            "portcullis_risk_detections_total",
            "kind" => found.detection.kind.as_str(),
            "level" => found.detection.level.as_str()
        )
        .increment(1);
    }
    state
        .store
        .record_detections(&context(state, tenant, origin), findings)
        .await?;
    Ok(())
}

/// A wrong password at `account_key` (the user's, if the name is one): counted with the hour's
/// others, and a brute-force run at the account or a spray of the password recorded when the
/// counts make one.
pub async fn wrong_password(
    state: &AppState,
    tenant: &Tenant,
    account_key: &str,
    user: Option<&User>,
    password: &SecretString,
    origin: &Origin,
) -> Result<(), StoreError> {
    let mac = password_mac(state, password);
    // A keyed hash of the name too: people type passwords into the name field, and a name
    // may hold bytes no database column takes.
    let account = hex::encode(state.hasher.hash(account_key.as_bytes()));
    let counts = state
        .store
        .record_password_failure(
            tenant.id,
            &account,
            mac.clone(),
            origin.source_ip.as_deref(),
            state.clock.now(),
        )
        .await?;
    let brute_force =
        user.and_then(|_| risk::brute_force(counts.at_account.0, counts.at_account.1));
    let spray = risk::password_spray(counts.with_password.0, counts.with_password.1);
    let spray_subject = hex::encode(&mac[..16]);
    let mut findings = Vec::new();
    if let (Some(user), Some(detection)) = (user, &brute_force) {
        findings.push(finding(
            Some(user.id),
            detection,
            &user.id.to_string(),
            origin,
        ));
    }
    if let Some(detection) = &spray {
        findings.push(finding(None, detection, &spray_subject, origin));
    }
    record(state, tenant.id, origin, &findings).await
}

/// A right password: on the leaked-password list, or one just sprayed across the tenant's
/// accounts, it puts its user at high risk (whoever holds it may not be them).
pub async fn right_password(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    password: &SecretString,
    origin: &Origin,
) -> Result<(), StoreError> {
    let store = &state.store;
    let mut detections = Vec::new();
    if store
        .is_leaked(risk::leaked_password_hash(password.expose_secret()))
        .await?
    {
        detections.push(Detection {
            kind: DetectionKind::LeakedCredentials,
            level: RiskLevel::High,
            evidence: serde_json::json!({ "source": "the leaked-password list" }),
        });
    }
    let (accounts, sources) = store
        .sprayed(tenant.id, password_mac(state, password), state.clock.now())
        .await?;
    if let Some(mut spray) = risk::password_spray(accounts, sources) {
        spray.level = RiskLevel::High;
        spray.evidence["signed_in_with_the_sprayed_password"] = true.into();
        detections.push(spray);
    }
    let subject = user.id.to_string();
    let findings: Vec<_> = detections
        .iter()
        .map(|d| finding(Some(user.id), d, &subject, origin))
        .collect();
    record(state, tenant.id, origin, &findings).await
}

/// Records what a finished sign-in showed: its detections, with the user, so their risky
/// sign-ins can be listed. (Where a successful one was seen is kept with its session.)
pub async fn judged_sign_in(
    state: &AppState,
    judged: &Judged,
    user: &User,
    origin: &Origin,
) -> Result<(), StoreError> {
    let at = judged.request.at;
    let findings: Vec<_> = judged
        .detections
        .iter()
        .map(|d| Finding {
            country: judged.place.country,
            // One finding per sign-in: the same kind an hour later is another.
            ..finding(
                Some(user.id),
                d,
                &format!("{}:{}", user.id, at.unix_timestamp()),
                origin,
            )
        })
        .collect();
    record(state, user.tenant_id, origin, &findings).await
}

/// Whether `password` may become `user`'s: the tenant's policy, and not on the leaked-password
/// list (a breached password is the first one an attacker tries).
pub async fn check_new_password(
    state: &AppState,
    policy: &PasswordPolicy,
    user: &User,
    password: &SecretString,
) -> Result<Result<(), ValidationError>, StoreError> {
    if let Err(weak) = policy.check(password, &user.known_words()) {
        return Ok(Err(weak));
    }
    let leaked = state
        .store
        .is_leaked(risk::leaked_password_hash(password.expose_secret()))
        .await?;
    Ok(if leaked {
        Err(ValidationError::new(
            "password",
            "is on the list of passwords exposed in data breaches; choose one nobody else could have",
        ))
    } else {
        Ok(())
    })
}

/// A user's password was replaced: by the user after a second factor, or by an administrator.
/// Whoever held the old one holds nothing now, so the user's open detections are remediated.
pub async fn password_replaced(
    state: &AppState,
    ctx: &WriteContext,
    user: UserId,
) -> Result<(), StoreError> {
    if state.store.user_risk(ctx.tenant_id, user).await? == RiskLevel::None {
        return Ok(());
    }
    state
        .store
        .judge_user_risk(ctx, user, RiskState::Remediated, None)
        .await?;
    Ok(())
}
