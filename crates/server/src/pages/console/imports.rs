//! The console's import of users from a CSV file: the upload, then a page that follows the
//! import line by line (refreshed in place while it runs) and ends with each line that failed
//! and why. The upload goes through `routes::user_imports`, as the API's does.

use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};

use portcullis_core::UserImportId;
use portcullis_core::import::{COLUMNS, ImportState, MAX_IMPORT_ROWS, UserImport};

use super::{Console, ConsoleError, Frame, Section};
use crate::error::ApiError;
use crate::extract::{ApiPath, RequestOrigin};
use crate::pages::PageError;
use crate::routes::user_imports as api;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/import.html")]
struct UploadPage<'a> {
    frame: Frame<'a>,
    error: Option<String>,
}

impl UploadPage<'_> {
    fn columns(&self) -> String {
        COLUMNS.join(",")
    }

    fn max_rows(&self) -> usize {
        MAX_IMPORT_ROWS
    }
}

pub(super) async fn upload_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let page = UploadPage {
        frame: me.frame(Section::Users),
        error: None,
    };
    Ok(me.page(&page))
}

/// The upload's route with a body limit that fits the largest file.
pub(super) fn with_room_for_a_file(
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route.layer(axum::extract::DefaultBodyLimit::max(api::IMPORT_BODY_BYTES))
}

pub(super) async fn upload(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    mut body: Multipart,
) -> Result<Response, ConsoleError> {
    let unreadable = |_| {
        PageError::BadRequest(
            "The upload could not be read (a file may be at most 8 MiB). Go back and try again."
                .into(),
        )
    };
    let (mut csrf, mut file, mut file_name) = (String::new(), Vec::new(), None);
    while let Some(field) = body.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "csrf" => csrf = field.text().await.map_err(unreadable)?,
            "file" => {
                file_name = field.file_name().map(str::to_owned);
                file = field.bytes().await.map_err(unreadable)?.to_vec();
            }
            _ => {}
        }
    }
    let me = Console::post(&state, &tenant, &headers, origin, &csrf).await?;
    match api::start(&state, &me.caller, file_name.as_deref(), &file).await {
        Ok(import) => Ok(Redirect::to(&format!(
            "/t/{}/console/users/import/{}",
            me.tenant(),
            import.id
        ))
        .into_response()),
        Err(refusal @ ApiError::Validation(_)) => {
            let page = UploadPage {
                frame: me.frame(Section::Users),
                error: Some(super::form_error(&refusal)),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, me.page(&page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "console/import_report.html")]
struct ReportPage<'a> {
    frame: Frame<'a>,
    import: UserImport,
    here: String,
}

impl ReportPage<'_> {
    fn running(&self) -> bool {
        self.import.state == ImportState::Running
    }

    fn interrupted(&self) -> bool {
        self.import.state == ImportState::Interrupted
    }
}

pub(super) async fn report(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    RequestOrigin(origin): RequestOrigin,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let id: UserImportId = id
        .parse()
        .map_err(|_| PageError::NotFound("There is no such import."))?;
    let axum::Json(import) =
        api::get_user_import(State(state.clone()), me.caller.clone(), ApiPath(id)).await?;
    let page = ReportPage {
        frame: me.frame(Section::Users),
        here: format!("/t/{}/console/users/import/{id}", me.tenant()),
        import,
    };
    Ok(me.page(&page))
}
