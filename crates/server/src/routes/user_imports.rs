//! Bulk import of users from a CSV file: the file is read and checked at once, then its lines
//! are created in the background through the same handler as `POST /v1/users` (the same checks,
//! the same audit record per user), while anyone allowed to read users follows the progress
//! and the report from any node.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use tokio::task::JoinSet;

use portcullis_api::users::CreateUser;
use portcullis_core::UserImportId;
use portcullis_core::authz::{Action, Scope};
use portcullis_core::import::{
    ImportFailure, ImportLine, ImportedUser, MAX_IMPORT_BYTES, MAX_REPORTED_FAILURES, UserImport,
    parse_users,
};
use portcullis_store::ImportProgress;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The body limit of an import: the largest file, with room for the request around it.
pub const IMPORT_BODY_BYTES: usize = MAX_IMPORT_BYTES + 64 * 1024;

/// Users created at once: enough to fill the writer's group commits, few enough to leave the
/// server to everyone else.
const CONCURRENT_CREATES: usize = 16;

/// How often the progress is saved while an import runs.
const SAVE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// The file's name, to tell imports apart in the report.
    pub file_name: Option<String>,
}

/// Starts an import of users from a CSV file (`Content-Type: text/csv`): a header line naming
/// the columns (`user_name` required; `email`, `display_name`, `external_id`,
/// `email_verified`), then a user per line, at most 50,000 lines and 8 MiB. A file that cannot
/// be read as such is refused whole (422, nothing created); otherwise the import runs in the
/// background and a wrong line is reported by number while the others go on.
#[utoipa::path(post, path = "/v1/user-imports", tag = "users", params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 202, body = UserImport), (status = 403, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn start_user_import(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ImportParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UserImport>)> {
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    if !csv {
        return Err(ApiError::UnsupportedMediaType);
    }
    let import = start(&state, &caller, params.file_name.as_deref(), &body).await?;
    Ok((StatusCode::ACCEPTED, Json(import)))
}

/// An import's progress and report: lines done, users created, and each line that failed with
/// its number and why.
#[utoipa::path(get, path = "/v1/user-imports/{id}", tag = "users", params(("id" = UserImportId, Path)),
    responses((status = 200, body = UserImport), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user_import(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<UserImportId>,
) -> ApiResult<Json<UserImport>> {
    caller
        .authorize(&state, Action::UserRead, Scope::Tenant, None)
        .await?;
    let import = state
        .store
        .user_import(caller.tenant_id(), id, state.clock.now())
        .await?;
    Ok(Json(import))
}

/// Checks and starts an import, for the API and the console's upload alike.
pub(crate) async fn start(
    state: &AppState,
    caller: &Caller,
    file_name: Option<&str>,
    file: &[u8],
) -> ApiResult<UserImport> {
    caller
        .authorize(state, Action::UserCreate, Scope::Tenant, None)
        .await?;
    let file_name = file_name
        .map(|name| portcullis_core::names::parse_description("file_name", name))
        .transpose()?;
    let lines = parse_users(file)?;
    let total = u64::try_from(lines.len()).unwrap_or(u64::MAX);
    let import = state
        .store
        .start_user_import(&caller.write_context(state), file_name.as_deref(), total)
        .await?;
    tokio::spawn(run(state.clone(), caller.clone(), import.id, lines));
    Ok(import)
}

fn failure(progress: &mut ImportProgress, line: u64, user_name: String, error: String) {
    progress.failed += 1;
    if progress.failures.len() < MAX_REPORTED_FAILURES {
        progress.failures.push(ImportFailure {
            line,
            user_name,
            error,
        });
    }
}

/// Why the API refused a line, in words for the report.
fn refusal(error: &ApiError) -> String {
    match error {
        ApiError::Validation(e) => format!("{} {}", e.field, e.message),
        other => other.problem().detail,
    }
}

async fn create_one(
    state: AppState,
    caller: Caller,
    line: u64,
    user: ImportedUser,
) -> (u64, String, Result<(), String>) {
    let body = CreateUser {
        user_name: user.user_name.clone(),
        email: user.email,
        email_verified: user.email_verified,
        display_name: user.display_name,
        kind: None,
        sponsor_id: None,
        expires_at: None,
        business_unit_id: None,
        external_id: user.external_id,
    };
    let made = crate::routes::users::create_user(State(state), caller, ApiJson(body)).await;
    (
        line,
        user.user_name,
        made.map(|_| ()).map_err(|e| refusal(&e)),
    )
}

async fn save(
    state: &AppState,
    caller: &Caller,
    id: UserImportId,
    progress: &ImportProgress,
    finished: bool,
) {
    let saved = state
        .store
        .record_user_import_progress(&caller.write_context(state), id, progress, finished)
        .await;
    if let Err(error) = saved {
        tracing::warn!(import = %id, %error, "could not save an import's progress");
    }
}

/// Creates the users of an import, a few at a time, saving the progress as it goes.
async fn run(state: AppState, caller: Caller, id: UserImportId, lines: Vec<ImportLine>) {
    let mut progress = ImportProgress::default();
    let mut creating = JoinSet::new();
    let mut saved_at = Instant::now();
    let tally =
        |progress: &mut ImportProgress,
         done: Result<(u64, String, Result<(), String>), tokio::task::JoinError>| {
            progress.processed += 1;
            match done {
                Ok((_, _, Ok(()))) => progress.created += 1,
                Ok((line, user_name, Err(error))) => failure(progress, line, user_name, error),
                Err(panicked) => failure(progress, 0, String::new(), panicked.to_string()),
            }
        };
    for line in lines {
        while creating.len() >= CONCURRENT_CREATES {
            if let Some(done) = creating.join_next().await {
                tally(&mut progress, done);
            }
        }
        match line.user {
            Ok(user) => {
                creating.spawn(create_one(state.clone(), caller.clone(), line.line, user));
            }
            Err(error) => {
                progress.processed += 1;
                failure(&mut progress, line.line, String::new(), error);
            }
        }
        if saved_at.elapsed() >= SAVE_EVERY {
            save(&state, &caller, id, &progress, false).await;
            saved_at = Instant::now();
        }
    }
    while let Some(done) = creating.join_next().await {
        tally(&mut progress, done);
    }
    progress.failures.sort_by_key(|f| f.line);
    save(&state, &caller, id, &progress, true).await;
}
