//! What happens to applications when a sign-in session ends: the grants tied to the session are
//! revoked (except `offline_access` ones), and every client that got tokens from it and
//! registered a back-channel logout URI is sent a signed logout token (OIDC Back-Channel
//! Logout 1.0), in the background, so a slow application never holds up the user.

use std::collections::HashSet;

use serde_json::Value;

use portcullis_core::authorize::LogoutTokenClaims;
use portcullis_core::identity::Tenant;
use portcullis_core::{ServicePrincipalId, SessionId, UserId};
use portcullis_store::StoreError;

use super::{current_key, issuer, new_jti};
use crate::error::ApiError;
use crate::state::AppState;

/// Call after ending one session of a user (`Some`), or all of them (`None`).
pub(crate) async fn session_ended(
    state: &AppState,
    tenant: &Tenant,
    user: UserId,
    session: Option<SessionId>,
    origin: portcullis_core::audit::Origin,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    let grants = state
        .store
        .end_session_grants(tenant.id, user, session, now)
        .await?;
    let mut told: HashSet<(ServicePrincipalId, SessionId)> = HashSet::new();
    for grant in grants {
        if !told.insert((grant.client_id, grant.session_id)) {
            continue;
        }
        let settings = match state.store.oauth_client(tenant.id, grant.client_id).await {
            Ok(Some(settings)) => settings,
            Ok(None) | Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(uri) = settings.backchannel_logout_uri else {
            continue;
        };
        let key = current_key(state, tenant, settings.signing_alg, origin.clone()).await?;
        let claims = LogoutTokenClaims::new(
            &issuer(state, tenant),
            &grant.client_id.to_string(),
            &user.to_string(),
            &grant.session_id.to_string(),
            now.unix_timestamp(),
            new_jti()?,
        );
        let token = key
            .sign("logout+jwt", &claims)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        tokio::spawn(deliver(state.http.clone(), uri, token, grant.client_id));
    }
    Ok(())
}

/// POSTs the logout token (form field `logout_token`); one retry after a second. The outcome
/// is logged and counted, never shown to the user.
async fn deliver(http: reqwest::Client, uri: String, token: String, client: ServicePrincipalId) {
    for attempt in 1..=2 {
        let sent = http
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                metrics::counter!("portcullis_backchannel_logouts_total", "outcome" => "delivered")
                    .increment(1);
                return;
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                tracing::warn!(%client, status, %body, attempt, "back-channel logout refused");
            }
            Err(error) => tracing::warn!(%client, %error, attempt, "back-channel logout failed"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    metrics::counter!("portcullis_backchannel_logouts_total", "outcome" => "failed").increment(1);
}
