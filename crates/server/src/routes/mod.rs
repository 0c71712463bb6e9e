//! The HTTP surface: routes, their OpenAPI description (generated from the same handler
//! annotations, so the document cannot drift from the code), and the middleware every request
//! passes through.

pub(crate) mod access;
pub(crate) mod audit;
pub(crate) mod branding;
pub(crate) mod conditional;
mod devices;
pub(crate) mod directory;
pub(crate) mod explorer;
pub(crate) mod groups;
mod ops;
pub(crate) mod resources;
pub(crate) mod risk;
pub(crate) mod roles;
pub(crate) mod service_principals;
pub(crate) mod signing_keys;
pub(crate) mod tenants;
pub(crate) mod user_imports;
pub(crate) mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Identity and access management: tenants, identities, role assignments and the audit trail. \
                       Authenticate with `Authorization: Bearer <API key or access token>`. Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "tenants", description = "Organizations; the operator tenant manages the others."),
        (name = "directory", description = "Environments and the business-unit tree."),
        (name = "users", description = "Human identities: members and guests, with their lifecycle."),
        (name = "groups", description = "Security groups, nestable."),
        (name = "service principals", description = "Workload identities and their API keys."),
        (name = "roles", description = "Built-in roles and role assignments."),
        (name = "authorization", description = "The authorization engine: resource types, custom roles, records, shares, deny assignments, and the AuthZEN decision API."),
        (name = "audit", description = "The hash-chained audit trail."),
        (name = "conditional access", description = "Policies on who may sign in and get tokens from where, with which device, client and risk; named locations; the what-if tool."),
        (name = "devices", description = "Devices registered by their users with a key pair they keep, proven at sign-in, and marked compliant by administrators or an MDM."),
        (name = "identity protection", description = "Risk: detections (brute force, password spray, impossible travel, new country, unfamiliar properties, anonymous addresses, leaked credentials), risky users and an administrator's verdict on them, and the leaked-password list."),
        (name = "operations", description = "Health, readiness, metrics.")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key pcs_<16 hex>_<43 base64url>, or a JWT access token")
                    .description(Some(
                        "An API key of a service principal (`pcs_…`), or an access token (JWT) from the caller's tenant's \
                         issuer `{public_url}/t/{tenant}` for the resource `{public_url}/v1`: a person's (code flow) or a \
                         client's own (`client_credentials`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::protected_resource))
        .routes(routes!(tenants::whoami))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(tenants::get_tenant, tenants::update_tenant))
        .routes(routes!(
            directory::list_environments,
            directory::create_environment
        ))
        .routes(routes!(
            directory::get_environment,
            directory::update_environment,
            directory::delete_environment
        ))
        .routes(routes!(
            directory::list_business_units,
            directory::create_business_unit
        ))
        .routes(routes!(
            directory::get_business_unit,
            directory::update_business_unit,
            directory::delete_business_unit
        ))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::restore_user))
        .routes(routes!(users::purge_user))
        .routes(routes!(users::user_groups))
        .routes(routes!(
            users::password_status,
            users::set_password,
            users::remove_password
        ))
        .routes(routes!(users::list_sessions, users::end_sessions))
        .routes(routes!(users::list_passkeys))
        .routes(routes!(users::remove_passkey))
        .routes(routes!(users::mfa_status, users::reset_mfa))
        .routes(routes!(users::lockout))
        .routes(routes!(users::unlock))
        .routes(routes!(users::create_enrolment_link))
        .routes(routes!(users::send_email_verification))
        .routes(routes!(users::list_consents))
        .routes(routes!(users::withdraw_consent))
        .routes(routes!(
            tenants::get_sign_in_settings,
            tenants::put_sign_in_settings
        ))
        .routes(routes!(
            tenants::get_administrator_policy,
            tenants::put_administrator_policy
        ))
        .routes(routes!(
            conditional::list_named_locations,
            conditional::create_named_location
        ))
        .routes(routes!(
            conditional::get_named_location,
            conditional::put_named_location,
            conditional::delete_named_location
        ))
        .routes(routes!(
            conditional::list_access_policies,
            conditional::create_access_policy
        ))
        .routes(routes!(
            conditional::get_access_policy,
            conditional::put_access_policy,
            conditional::delete_access_policy
        ))
        .routes(routes!(conditional::what_if))
        .routes(routes!(conditional::list_templates))
        .routes(routes!(conditional::create_from_template))
        .routes(routes!(
            conditional::get_settings,
            conditional::put_settings
        ))
        .routes(routes!(devices::register))
        .routes(routes!(devices::list))
        .routes(routes!(devices::get, devices::remove))
        .routes(routes!(devices::set_compliance))
        .routes(routes!(risk::list_detections))
        .routes(routes!(risk::list_risky_users))
        .routes(routes!(risk::confirm_compromised))
        .routes(routes!(risk::dismiss))
        .routes(routes!(
            risk::leaked_password_count,
            risk::add_leaked_passwords
        ))
        .routes(routes!(signing_keys::list_signing_keys))
        .routes(routes!(signing_keys::rotate_signing_key))
        .routes(routes!(audit::sign_ins))
        .routes(routes!(groups::list_groups, groups::create_group))
        .routes(routes!(
            groups::get_group,
            groups::update_group,
            groups::delete_group
        ))
        .routes(routes!(groups::list_members, groups::add_member))
        .routes(routes!(groups::remove_member))
        .routes(routes!(
            service_principals::list_service_principals,
            service_principals::create_service_principal
        ))
        .routes(routes!(
            service_principals::get_service_principal,
            service_principals::update_service_principal,
            service_principals::delete_service_principal
        ))
        .routes(routes!(
            service_principals::list_api_keys,
            service_principals::create_api_key
        ))
        .routes(routes!(service_principals::revoke_api_key))
        .routes(routes!(
            service_principals::get_oauth_client,
            service_principals::put_oauth_client
        ))
        .routes(routes!(roles::list_roles))
        .routes(routes!(explorer::check))
        .routes(routes!(explorer::who_can))
        .routes(routes!(
            roles::list_role_assignments,
            roles::create_role_assignment
        ))
        .routes(routes!(
            roles::get_role_assignment,
            roles::delete_role_assignment
        ))
        .routes(routes!(
            resources::list_resource_types,
            resources::create_resource_type
        ))
        .routes(routes!(
            resources::get_resource_type,
            resources::put_resource_type,
            resources::delete_resource_type
        ))
        .routes(routes!(
            resources::list_custom_roles,
            resources::create_custom_role
        ))
        .routes(routes!(
            resources::get_custom_role,
            resources::put_custom_role,
            resources::delete_custom_role
        ))
        .routes(routes!(resources::list_records))
        .routes(routes!(
            resources::get_record,
            resources::put_record,
            resources::delete_record
        ))
        .routes(routes!(resources::list_shares, resources::create_share))
        .routes(routes!(resources::delete_share))
        .routes(routes!(
            resources::list_deny_assignments,
            resources::create_deny_assignment
        ))
        .routes(routes!(resources::delete_deny_assignment))
        .routes(routes!(resources::clone_role))
        .routes(routes!(
            resources::get_access_settings,
            resources::put_access_settings
        ))
        .routes(routes!(access::evaluation))
        .merge(
            // A CSV file of users is larger than any JSON body.
            OpenApiRouter::new()
                .routes(routes!(user_imports::start_user_import))
                .layer(Extension(BodyLimit(user_imports::IMPORT_BODY_BYTES)))
                .layer(DefaultBodyLimit::max(user_imports::IMPORT_BODY_BYTES)),
        )
        .routes(routes!(user_imports::get_user_import))
        .merge(
            // A logo makes this body larger than the usual limit.
            OpenApiRouter::new()
                .routes(routes!(branding::get_branding, branding::put_branding))
                .layer(Extension(BodyLimit(branding::BRANDING_BODY_BYTES)))
                .layer(DefaultBodyLimit::max(branding::BRANDING_BODY_BYTES)),
        )
        .merge(
            // A full batch of evaluations is larger than any other request body.
            OpenApiRouter::new()
                .routes(routes!(access::evaluations))
                .layer(Extension(BodyLimit(access::EVALUATIONS_BODY_BYTES)))
                .layer(DefaultBodyLimit::max(access::EVALUATIONS_BODY_BYTES)),
        )
        .routes(routes!(access::search_subject))
        .routes(routes!(access::search_resource))
        .routes(routes!(access::search_action))
        .routes(routes!(access::configuration))
        .routes(routes!(access::configuration_under_tenant))
        .routes(routes!(audit::list_events))
        .routes(routes!(audit::chain))
        .routes(routes!(audit::api_use))
        .split_for_parts();
    doc.paths.paths.insert(
        "/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This OpenAPI 3.1 document."))
                .security(utoipa::openapi::security::SecurityRequirement::default())
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The document")
                        .build(),
                )
                .build(),
        ),
    );
    (router, doc)
}

/// The complete application with its middleware.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api();
    let doc = Arc::new(doc);
    let body_limit = state.config.max_body_bytes;
    let trusted_proxies = state.config.trusted_proxies.clone();
    let request_id = HeaderName::from_static("x-request-id");
    router
        .merge(crate::pages::router(&state))
        .merge(crate::oauth::router())
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(|request, next| {
            uniform_rejections(Surface::Api, request, next)
        }))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a request handler panicked".into()).into_response()
        }))
        .layer(Extension(BodyLimit(body_limit)))
        .layer(Extension(trusted_proxies))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route, request_id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Which kind of client a router serves, and so in which form it is told of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// The REST API, AuthZEN and metadata documents: RFC 9457 problem documents.
    Api,
    /// The OAuth endpoints: RFC 6749 §5.2 error objects.
    OAuth,
    /// The pages people see in a browser: a page.
    Page,
}

/// Rejection texts are a sentence or two; anything longer is not one.
const REJECTION_TEXT_BYTES: usize = 4096;

/// The framework's own refusals (a body over the limit, a path or form that does not decode,
/// a wrong content type) are plain text. Every surface answers in its own form instead, with
/// the same status and a reason a person can act on; handlers' own errors pass untouched.
/// Each router layers it with its surface (`middleware::from_fn(|r, n| uniform_rejections(
/// Surface::OAuth, r, n))`); the API's layer is the outermost, for everything else.
pub(crate) async fn uniform_rejections(surface: Surface, request: Request, next: Next) -> Response {
    let limit = request.extensions().get::<BodyLimit>().map(|l| l.0);
    let response = next.run(request).await;
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = response.status();
    if !plain_text || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), REJECTION_TEXT_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let error = match (status, limit) {
        (StatusCode::PAYLOAD_TOO_LARGE, Some(limit)) => ApiError::PayloadTooLarge { limit },
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, _) if surface == Surface::Api => {
            ApiError::UnsupportedMediaType
        }
        _ => ApiError::BadRequest {
            field: None,
            detail: if text.is_empty() {
                "The request cannot be read as sent.".to_owned()
            } else {
                format!("The request cannot be read as sent: {text}")
            },
        },
    };
    let detail = error.problem().detail;
    match surface {
        Surface::Api => error.into_response(),
        Surface::OAuth => {
            let error = portcullis_core::oauth::OAuthError::InvalidRequest(detail);
            let mut response = crate::oauth::oauth_error(&error);
            *response.status_mut() = status;
            response
        }
        Surface::Page => crate::pages::refusal_page(status, &detail),
    }
}

/// Counts requests and their latencies by route template (never the raw path, which would give
/// one series per object) and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed: Duration = started.elapsed();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    response
}

/// A list answered in the shape every list has: `{"items": [...]}`.
pub(crate) fn items<T>(items: Vec<T>) -> Json<portcullis_api::Items<T>> {
    Json(portcullis_api::Items { items })
}

/// A version mismatch on a write that carried no `If-Match` means another writer got there
/// between our read and our write: that is a conflict to retry, not a failed precondition.
pub(crate) fn concurrent(
    error: portcullis_store::StoreError,
    precondition: &crate::extract::Precondition,
) -> ApiError {
    match error {
        portcullis_store::StoreError::VersionMismatch { .. } if !precondition.is_explicit() => ApiError::Conflict {
            field: None,
            detail: "the object was changed by another request at the same time; read it again and retry".into(),
        },
        other => other.into(),
    }
}
