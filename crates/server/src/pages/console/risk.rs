//! The console's identity protection: the users at risk, riskiest first, with the verdicts an
//! administrator gives (confirm compromised, dismiss), and the latest detections (risky
//! sign-ins and the other reasons users are at risk). Every page calls the API's handler for
//! the same operation (`routes::risk`) as the person.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use portcullis_api::risk::{DetectionQuery, RiskVerdict, RiskyUserQuery};
use portcullis_core::UserId;
use portcullis_core::conditional::RiskLevel;
use portcullis_core::risk::{RiskDetection, RiskyUser};

use super::{Console, ConsoleError, Frame, Section, given};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestOrigin};
use crate::pages::PageError;
use crate::routes::risk as api;
use crate::state::AppState;

/// Detections shown at once.
const DETECTIONS: u32 = 50;

struct Detection {
    detection: RiskDetection,
    /// The user's name, if the detection is about one who still exists.
    user_name: Option<String>,
}

#[derive(Template)]
#[template(path = "console/risk.html")]
struct RiskPage<'a> {
    frame: Frame<'a>,
    users: Vec<RiskyUser>,
    detections: Vec<Detection>,
    level: &'static str,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct RiskQuery {
    level: Option<String>,
    done: Option<String>,
}

fn level_of(text: Option<&str>) -> RiskLevel {
    match text {
        Some("medium") => RiskLevel::Medium,
        Some("high") => RiskLevel::High,
        _ => RiskLevel::Low,
    }
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<RiskQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let level = level_of(query.level.as_deref());
    let axum::Json(users) = api::list_risky_users(
        State(state.clone()),
        me.caller.clone(),
        ApiQuery(RiskyUserQuery {
            level: Some(level),
            limit: Some(100),
        }),
    )
    .await?;
    // The API filters detections by one level: ask for each level at or above the one chosen,
    // then keep the newest.
    let mut found = Vec::new();
    for wanted in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High] {
        if wanted < level {
            continue;
        }
        let axum::Json(page) = api::list_detections(
            State(state.clone()),
            me.caller.clone(),
            ApiQuery(DetectionQuery {
                level: Some(wanted),
                limit: Some(DETECTIONS),
                ..DetectionQuery::default()
            }),
        )
        .await?;
        found.extend(page.items);
    }
    found.sort_by_key(|d| std::cmp::Reverse(d.detected_at));
    found.truncate(DETECTIONS as usize);
    // One lookup per user, however many of their detections are shown.
    let mut user_names: std::collections::HashMap<UserId, Option<String>> =
        std::collections::HashMap::new();
    let mut detections = Vec::with_capacity(found.len());
    for detection in found {
        let user_name = match detection.user_id {
            Some(id) => match user_names.get(&id) {
                Some(known) => known.clone(),
                None => {
                    let name = state
                        .store
                        .user(me.caller.tenant_id(), id)
                        .await
                        .ok()
                        .map(|u| u.user_name);
                    user_names.insert(id, name.clone());
                    name
                }
            },
            None => None,
        };
        detections.push(Detection {
            detection,
            user_name,
        });
    }
    let page = RiskPage {
        frame: me.frame(Section::Risk),
        users: users.items,
        detections,
        level: level.as_str(),
        notice: match query.done.as_deref() {
            Some("compromised") => Some(
                "The user is confirmed compromised: at high risk, signed out everywhere, their refresh tokens revoked.",
            ),
            Some("dismissed") => {
                Some("The user's detections were dismissed; they are no longer at risk.")
            }
            _ => None,
        },
    };
    Ok(me.page(&page))
}

#[derive(Deserialize)]
pub(super) struct VerdictForm {
    csrf: String,
    verdict: String,
    #[serde(default)]
    note: String,
}

pub(super) async fn judge(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<VerdictForm>,
) -> Result<Response, ConsoleError> {
    let me = Console::post(&state, &tenant, &headers, origin, &form.csrf).await?;
    let id: UserId = id
        .parse()
        .map_err(|_| PageError::NotFound("There is no such user."))?;
    let body = RiskVerdict {
        note: given(&form.note),
    };
    let (axum::Json(_), done) = match form.verdict.as_str() {
        "compromised" => (
            api::confirm_compromised(State(state), me.caller.clone(), ApiPath(id), ApiJson(body))
                .await?,
            "compromised",
        ),
        "dismiss" => (
            api::dismiss(State(state), me.caller.clone(), ApiPath(id), ApiJson(body)).await?,
            "dismissed",
        ),
        _ => {
            return Err(PageError::BadRequest(
                "Confirm the compromise or dismiss the detections. Go back and choose one.".into(),
            )
            .into());
        }
    };
    Ok(Redirect::to(&format!("/t/{}/console/risk?done={done}", me.tenant())).into_response())
}
