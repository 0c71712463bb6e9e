//! Health, readiness, metrics and the admin API's resource metadata: the only endpoints (with
//! the OpenAPI document) that answer without a credential.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use portcullis_api::ops::Health;

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        tenants_with_membership_cycles: None,
    })
}

/// Readiness: the database answers, so requests can be served.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(|error| {
        // The cause goes to the log only: this endpoint answers anyone.
        tracing::warn!(%error, "readiness check: the database does not answer");
        ApiError::Unavailable("The database does not answer; see the server log.".into())
    })?;
    let cycles = state.engines.tenants_with_cycles();
    Ok(Json(Health {
        status: "ready",
        tenants_with_membership_cycles: (cycles > 0).then_some(cycles),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The admin API as an OAuth protected resource (RFC 9728): the resource identifier its access
/// tokens are issued for (`aud`) and how to send them. Each tenant's issuer
/// (`{public_url}/t/{tenant}`) is an authorization server for it, for its own tenant only.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/v1", tag = "operations", security(()),
    responses((status = 200, body = Object)))]
pub async fn protected_resource(State(state): State<AppState>) -> impl IntoResponse {
    let resource = crate::auth::admin_api_resource(&state);
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(serde_json::json!({
            "resource": resource,
            "resource_name": "Portcullis admin API",
            "bearer_methods_supported": ["header"],
            "resource_documentation": format!("{}/v1/openapi.json", state.config.public_url),
        })),
    )
}
