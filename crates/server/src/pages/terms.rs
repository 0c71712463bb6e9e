//! The terms-of-use page: where a session a `terms_of_use` control holds back is sent, shows
//! the tenant's current terms, and records the person's acceptance of that version.

use crate::pages::TenantFace;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{
    NotSignedIn, PageError, PageKind, check_csrf, continue_to, csrf_token, html, signed_in,
    user_context, with_cookies,
};
use crate::extract::RequestOrigin;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "terms.html")]
struct TermsPage<'a> {
    tenant: TenantFace<'a>,
    csrf: &'a str,
    version: &'a str,
    paragraphs: Vec<&'a str>,
    error: Option<String>,
    notice: Option<String>,
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, NotSignedIn> {
    let me = signed_in(&state, &tenant, &headers, origin, PageKind::Terms).await?;
    let settings = state.store.access_policy_settings(me.tenant.id).await?;
    let Some(terms) = settings.terms_of_use else {
        let to = format!("/t/{}/account", me.tenant.name);
        return Ok(Redirect::to(&to).into_response());
    };
    let (csrf, set) = csrf_token(&state, &headers)?;
    let page = TermsPage {
        tenant: TenantFace::of(&me.tenant),
        csrf: &csrf,
        version: &terms.version,
        paragraphs: terms.text.split("\n\n").map(str::trim).collect(),
        error: None,
        notice: None,
    };
    Ok(with_cookies(html(&page), set))
}

#[derive(Deserialize)]
pub(super) struct AcceptForm {
    csrf: String,
    version: String,
}

/// Accepts the version the page showed; if the terms changed meanwhile, shows the new ones.
pub(super) async fn accept(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<AcceptForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &form.csrf)?;
    let me = match signed_in(&state, &tenant, &headers, origin, PageKind::Terms).await {
        Ok(me) => me,
        Err(not) => return Ok(not.into_response()),
    };
    let back = format!("/t/{}/account/terms", me.tenant.name);
    let ctx = user_context(&me.tenant, &me.user, me.origin.clone(), state.clock.now());
    match state
        .store
        .accept_terms(&ctx, me.user.id, &form.version)
        .await
    {
        Ok(()) => {}
        // The terms changed while the page was open: show the new ones.
        Err(portcullis_store::StoreError::Conflict { .. }) => {
            return Ok((StatusCode::SEE_OTHER, Redirect::to(&back)).into_response());
        }
        Err(other) => return Err(other.into()),
    }
    let next = continue_to(&state, &me.tenant.name, &headers)
        .unwrap_or_else(|| format!("/t/{}/account", me.tenant.name));
    Ok(Redirect::to(&next).into_response())
}
