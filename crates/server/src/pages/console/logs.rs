//! The console's logs: the audit trail and the sign-in log with filters and paging, each
//! event's details in place, exports as CSV or JSON, the last day's sign-ins drawn as inline
//! SVG, and a check of the audit chain. Each page reads through the admin API's handlers
//! (`crate::routes::audit`) with the person's caller, so it needs `audit.read` like the API.

use std::collections::BTreeMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use portcullis_api::audit::{AuditQuery, ChainQuery, SignInQuery};
use portcullis_core::ValidationError;
use portcullis_core::audit::{AuditRecord, ChainVerifier, Outcome};
use portcullis_core::page::Page;

use super::{Console, ConsoleError, Frame, Section, list_link};
use crate::extract::{ApiQuery, RequestOrigin};
use crate::routes::audit as api;
use crate::state::AppState;

/// Events on one page of a log.
const PAGE_SIZE: u32 = 50;
/// Most events one export holds: larger ones are for `portcullis audit export`.
const MAX_EXPORT: usize = 10_000;
/// Most sign-ins the day's charts count.
pub(super) const MAX_CHARTED: usize = 5_000;
/// Most records the console verifies in one look: longer chains are for `portcullis audit verify`.
const MAX_VERIFIED: i64 = 50_000;

/// The filters of the audit log, as the form sends them (empty: not filtered).
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    after: Option<String>,
    /// `csv` or `json`, for an export.
    #[serde(default)]
    format: String,
}

fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The start of a day given as `YYYY-MM-DD` (a date input), in UTC.
fn day(field: &str, value: &str) -> Result<Option<OffsetDateTime>, ValidationError> {
    let Some(value) = text(value) else {
        return Ok(None);
    };
    time::Date::parse(
        &value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|date| Some(date.midnight().assume_utc()))
    .map_err(|_| ValidationError::new(field, "must be a date, YYYY-MM-DD"))
}

fn outcome(value: &str) -> Option<Outcome> {
    Outcome::parse(value.trim())
}

impl AuditForm {
    /// The API's query for these filters; `to` counts its whole day.
    fn query(&self, cursor: Option<String>, limit: u32) -> Result<AuditQuery, ValidationError> {
        Ok(AuditQuery {
            from: day("from", &self.from)?,
            to: day("to", &self.to)?.map(|at| at + time::Duration::days(1)),
            actor_id: text(&self.actor),
            target_id: text(&self.target),
            action: text(&self.action),
            outcome: outcome(&self.outcome),
            cursor,
            limit: Some(limit),
        })
    }

    fn params(&self) -> [(&'static str, &str); 6] {
        [
            ("action", self.action.trim()),
            ("outcome", self.outcome.trim()),
            ("actor", self.actor.trim()),
            ("target", self.target.trim()),
            ("from", self.from.trim()),
            ("to", self.to.trim()),
        ]
    }
}

/// One event as a row: what happened, by whom, to what, and everything else in place.
struct EventRow {
    seq: i64,
    at: String,
    action: String,
    actor: String,
    target: String,
    /// Whom a sign-in was by, in words: the user's name once known, else what was typed.
    who: String,
    success: bool,
    reason: String,
    source: String,
    details: String,
}

fn row(record: &AuditRecord) -> EventRow {
    let actor = &record.actor;
    let target = record
        .target
        .as_ref()
        .map(|t| format!("{} {}", t.kind, t.id))
        .unwrap_or_default();
    let who = match (&actor.display, &record.target) {
        (Some(name), _) if actor.kind == "user" => name.clone(),
        (_, Some(t)) if t.kind == "user_name" => t.id.clone(),
        _ => target.clone(),
    };
    EventRow {
        seq: record.seq,
        at: crate::pages::minute(&record.at),
        action: record.action.clone(),
        actor: actor
            .display
            .clone()
            .or_else(|| actor.id.clone())
            .map_or_else(
                || actor.kind.clone(),
                |who| format!("{who} ({})", actor.kind),
            ),
        target,
        who,
        success: record.outcome == Outcome::Success,
        reason: record.reason.clone().unwrap_or_default(),
        source: record.origin.source_ip.clone().unwrap_or_default(),
        details: serde_json::to_string_pretty(&record.details).unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "console/logs.html")]
struct AuditPage<'a> {
    frame: Frame<'a>,
    filters: &'a AuditForm,
    events: Vec<EventRow>,
    next: Option<String>,
    first_page: Option<String>,
    export_csv: String,
    export_json: String,
    error: Option<String>,
}

pub(super) async fn audit(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(form): Query<AuditForm>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/logs");
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let link = |path: &str, extra: &[(&str, &str)], after: Option<&str>| {
        let mut params: Vec<(&str, &str)> = form.params().to_vec();
        params.extend_from_slice(extra);
        list_link(path, &params, after)
    };
    let export = format!("{here}/export");
    let mut page = AuditPage {
        frame: me.frame(Section::Logs),
        filters: &form,
        events: Vec::new(),
        next: None,
        first_page: form.after.is_some().then(|| link(&here, &[], None)),
        export_csv: link(&export, &[("format", "csv")], None),
        export_json: link(&export, &[("format", "json")], None),
        error: None,
    };
    let query = match form.query(form.after.clone(), PAGE_SIZE) {
        Ok(query) => query,
        Err(invalid) => {
            page.error = Some(format!("{}: {}", invalid.field, invalid.message));
            return Ok(me.page(&page));
        }
    };
    let Json(found) = api::list_events(State(state), me.caller.clone(), ApiQuery(query)).await?;
    page.events = found.items.iter().map(row).collect();
    page.next = found
        .next_cursor
        .as_deref()
        .map(|cursor| link(&here, &[], Some(cursor)));
    Ok(me.page(&page))
}

/// Quotes a CSV field, and defuses one a spreadsheet would run as a formula (a value starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return, written there by whoever chose a user
/// name or a passkey's name) by starting it with an apostrophe.
fn csv_field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

fn csv(records: &[AuditRecord]) -> String {
    let mut out = String::from(
        "seq,at,action,outcome,actor_kind,actor_id,actor_name,target_kind,target_id,reason,source_ip,user_agent,details\r\n",
    );
    for record in records {
        let at = record
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let fields = [
            record.seq.to_string(),
            at,
            record.action.clone(),
            record.outcome.as_str().to_owned(),
            record.actor.kind.clone(),
            record.actor.id.clone().unwrap_or_default(),
            record.actor.display.clone().unwrap_or_default(),
            record
                .target
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default(),
            record
                .target
                .as_ref()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            record.reason.clone().unwrap_or_default(),
            record.origin.source_ip.clone().unwrap_or_default(),
            record.origin.user_agent.clone().unwrap_or_default(),
            record.details.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The filtered events, newest first, as a file to download: CSV for spreadsheets, JSON (the
/// API's records, hashes included) for tools.
pub(super) async fn export(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(form): Query<AuditForm>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let json = match form.format.as_str() {
        "json" => true,
        "csv" => false,
        _ => {
            return Err(crate::pages::PageError::BadRequest(
                "Choose the export's format: csv or json.".into(),
            )
            .into());
        }
    };
    let query = form
        .query(None, portcullis_core::page::MAX_LIMIT)
        .map_err(crate::pages::PageError::from)?;
    let (records, _) = up_to(MAX_EXPORT, |cursor| {
        let query = AuditQuery {
            cursor,
            ..query.clone()
        };
        api::list_events(State(state.clone()), me.caller.clone(), ApiQuery(query))
    })
    .await?;
    let stamp = state
        .clock
        .now()
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute]"
        ))
        .unwrap_or_default();
    let (body, kind, extension) = if json {
        let body = serde_json::to_string_pretty(&records)
            .map_err(|e| crate::pages::PageError::Internal(e.to_string()))?;
        (body, "application/json", "json")
    } else {
        (csv(&records), "text/csv; charset=utf-8", "csv")
    };
    let disposition = format!(
        "attachment; filename=\"audit-{}-{stamp}.{extension}\"",
        me.tenant()
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Reads pages of events with `fetch` (given each page's cursor) until none are left or
/// `most` are read; returns at most `most` events, and whether there were more.
pub(super) async fn up_to<F, Fut>(
    most: usize,
    mut fetch: F,
) -> Result<(Vec<AuditRecord>, bool), ConsoleError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = crate::error::ApiResult<Json<Page<AuditRecord>>>>,
{
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let Json(found) = fetch(cursor).await?;
        records.extend(found.items);
        cursor = found.next_cursor;
        if cursor.is_none() || records.len() >= most {
            let more = cursor.is_some() || records.len() > most;
            records.truncate(most);
            return Ok((records, more));
        }
    }
}

/// The filters of the sign-in log.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    user: String,
    after: Option<String>,
}

/// One bar of a chart: a label, the counts drawn, and where.
struct Bar {
    label: String,
    successes: usize,
    failures: usize,
    /// Heights (or widths) in the drawing's units.
    success_size: u32,
    failure_size: u32,
    x: u32,
}

#[derive(Template)]
#[template(path = "console/sign_ins.html")]
struct SignInPage<'a> {
    frame: Frame<'a>,
    filters: &'a SignInForm,
    events: Vec<EventRow>,
    next: Option<String>,
    first_page: Option<String>,
    hours: Vec<Bar>,
    reasons: Vec<Bar>,
    day_successes: usize,
    day_failures: usize,
    /// The day had more sign-ins than the charts count.
    sampled: bool,
    error: Option<String>,
}

/// Scales `count` of `most` to at most `size` units (at least 1 for a count above 0).
fn scaled(count: usize, most: usize, size: u32) -> u32 {
    if count == 0 || most == 0 {
        return 0;
    }
    let units = (count as u64 * u64::from(size)).div_ceil(most as u64);
    u32::try_from(units).unwrap_or(size).clamp(1, size)
}

/// Sign-ins per hour of the last day by outcome, and the failures' reasons.
fn charts(records: &[AuditRecord], now: OffsetDateTime) -> (Vec<Bar>, Vec<Bar>) {
    let mut per_hour = [(0usize, 0usize); 24];
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let hours_ago = (now - record.at).whole_hours();
        let Ok(index) = usize::try_from(23 - hours_ago) else {
            continue;
        };
        let Some(slot) = per_hour.get_mut(index) else {
            continue;
        };
        if record.outcome == Outcome::Success {
            slot.0 += 1;
        } else {
            slot.1 += 1;
            let reason = record
                .reason
                .clone()
                .unwrap_or_else(|| "no reason given".into());
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let tallest = per_hour.iter().map(|(s, f)| s + f).max().unwrap_or(0);
    let hours = per_hour
        .iter()
        .enumerate()
        .map(|(i, (s, f))| {
            let start = now - time::Duration::hours(23 - i as i64);
            Bar {
                label: format!("{:02}:00", start.hour()),
                successes: *s,
                failures: *f,
                success_size: scaled(*s, tallest, 120),
                failure_size: scaled(*f, tallest, 120),
                x: 40 + 22 * i as u32,
            }
        })
        .collect();
    let mut by_count: Vec<(String, usize)> = reasons.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_count.truncate(8);
    let most = by_count.first().map_or(0, |(_, n)| *n);
    let reasons = by_count
        .into_iter()
        .enumerate()
        .map(|(i, (label, n))| Bar {
            label,
            successes: 0,
            failures: n,
            success_size: 0,
            failure_size: scaled(n, most, 300),
            x: 10 + 28 * i as u32,
        })
        .collect();
    (hours, reasons)
}

pub(super) async fn sign_ins(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    Query(form): Query<SignInForm>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/sign-ins");
    let me = Console::enter_asked(&state, &tenant, &headers, origin, &uri).await?;
    let link = |after: Option<&str>| {
        list_link(
            &here,
            &[("outcome", form.outcome.trim()), ("user", form.user.trim())],
            after,
        )
    };
    let mut page = SignInPage {
        frame: me.frame(Section::SignIns),
        filters: &form,
        events: Vec::new(),
        next: None,
        first_page: form.after.is_some().then(|| link(None)),
        hours: Vec::new(),
        reasons: Vec::new(),
        day_successes: 0,
        day_failures: 0,
        sampled: false,
        error: None,
    };
    let refused = |page: &mut SignInPage<'_>, message: String| {
        page.error = Some(message);
        me.page(&*page)
    };
    let user_id = match text(&form.user) {
        None => None,
        Some(id) if id.parse::<portcullis_core::UserId>().is_ok() => Some(id),
        Some(name) => match user_named(&state, &me, &name).await {
            Ok(Some(id)) => Some(id),
            Ok(None) => return Ok(refused(&mut page, format!("No user is named “{name}”."))),
            Err(crate::error::ApiError::Forbidden(_)) => {
                let why = "Finding a user by name needs permission to read users (user.read): give the user's id instead.";
                return Ok(refused(&mut page, why.to_owned()));
            }
            Err(other) => return Err(other.into()),
        },
    };
    let query = SignInQuery {
        outcome: outcome(&form.outcome),
        user_id: user_id.clone(),
        cursor: form.after.clone(),
        limit: Some(PAGE_SIZE),
        ..SignInQuery::default()
    };
    let Json(found) =
        api::sign_ins(State(state.clone()), me.caller.clone(), ApiQuery(query)).await?;
    page.events = found.items.iter().map(row).collect();
    page.next = found.next_cursor.as_deref().map(|c| link(Some(c)));

    let now = state.clock.now();
    let (day, sampled) = up_to(MAX_CHARTED, |cursor| {
        let query = SignInQuery {
            from: Some(now - time::Duration::hours(24)),
            user_id: user_id.clone(),
            cursor,
            limit: Some(portcullis_core::page::MAX_LIMIT),
            ..SignInQuery::default()
        };
        api::sign_ins(State(state.clone()), me.caller.clone(), ApiQuery(query))
    })
    .await?;
    page.sampled = sampled;
    page.day_successes = day.iter().filter(|r| r.outcome == Outcome::Success).count();
    page.day_failures = day.len() - page.day_successes;
    (page.hours, page.reasons) = charts(&day, now);
    Ok(me.page(&page))
}

/// The id of the user with exactly this user name (case-insensitively), through the API's
/// search as the person.
async fn user_named(
    state: &AppState,
    me: &Console,
    name: &str,
) -> Result<Option<String>, crate::error::ApiError> {
    let query = portcullis_api::users::UserQuery {
        prefix: Some(name.to_owned()),
        limit: Some(20),
        ..portcullis_api::users::UserQuery::default()
    };
    let Json(found) =
        crate::routes::users::list_users(State(state.clone()), me.caller.clone(), ApiQuery(query))
            .await?;
    let key = portcullis_core::names::name_key(name);
    Ok(found
        .items
        .into_iter()
        .find(|u| portcullis_core::names::name_key(&u.user_name) == key)
        .map(|u| u.id.to_string()))
}

#[derive(Template)]
#[template(path = "console/chain.html")]
struct ChainPage<'a> {
    frame: Frame<'a>,
    head_seq: i64,
    head_hash: String,
    verified: i64,
    /// Where the chain breaks, if it does.
    broken: Option<String>,
    /// The chain is longer than the console verifies.
    too_long: bool,
}

/// Reads the tenant's whole chain through the API and checks every link, as `portcullis audit
/// verify` does, for chains up to `MAX_VERIFIED` records.
pub(super) async fn chain(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let here = format!("/t/{tenant}/console/logs/chain");
    let me = Console::enter(&state, &tenant, &headers, origin, &here).await?;
    let mut verifier = ChainVerifier::default();
    let mut broken = None;
    let (mut head_seq, mut head_hash) = (0, String::new());
    loop {
        let query = ChainQuery {
            after: Some(verifier.verified_through()),
            limit: None,
        };
        let Json(page) =
            api::chain(State(state.clone()), me.caller.clone(), ApiQuery(query)).await?;
        if head_seq == 0 {
            (head_seq, head_hash) = (page.head_seq, page.head_hash.clone());
        }
        if page.head_seq > MAX_VERIFIED {
            break;
        }
        if let Some(error) = page.records.iter().find_map(|r| verifier.push(r).err()) {
            broken = Some(error.to_string());
            break;
        }
        if page.records.is_empty() || verifier.verified_through() >= head_seq {
            if let Err(error) = verifier.finish(head_seq, &head_hash) {
                broken = Some(error.to_string());
            }
            break;
        }
    }
    let page = ChainPage {
        frame: me.frame(Section::Logs),
        head_seq,
        head_hash,
        verified: verifier.verified_through(),
        broken,
        too_long: head_seq > MAX_VERIFIED,
    };
    Ok(me.page(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for risky in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_field(risky).starts_with("\"'"), "{risky}");
        }
    }

    #[test]
    fn bars_scale_to_the_tallest_and_show_any_count() {
        assert_eq!(scaled(0, 10, 120), 0);
        assert_eq!(scaled(10, 10, 120), 120);
        assert_eq!(scaled(1, 1000, 120), 1);
        assert_eq!(scaled(5, 10, 120), 60);
    }
}
