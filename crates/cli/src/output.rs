//! How admin commands print the server's answers: readable tables and indented fields for a
//! person at a terminal, the JSON itself for scripts. `--output` (or `PORTCULLIS_OUTPUT`)
//! chooses; without it, a terminal gets tables and a pipe gets JSON, so `… | jq` keeps working.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::OnceLock;

use serde_json::{Map, Value};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Columns for lists, `field: value` lines for one object.
    Table,
    /// The API's JSON answer, pretty-printed.
    Json,
}

/// The mode, and whether it was asked for (rather than guessed from the terminal).
static MODE: OnceLock<(Output, bool)> = OnceLock::new();

/// Fixes the output mode for this run: as asked, else a table on a terminal and JSON otherwise.
pub fn choose(asked: Option<Output>) {
    let guessed = if std::io::stdout().is_terminal() {
        Output::Table
    } else {
        Output::Json
    };
    let _ = MODE.set((asked.unwrap_or(guessed), asked.is_some()));
}

pub fn mode() -> Output {
    MODE.get().map_or(Output::Json, |(mode, _)| *mode)
}

/// Whether the person asked for JSON in so many words (commands whose own text is the point,
/// such as `explain`, print JSON only then).
pub fn json_asked() -> bool {
    MODE.get() == Some(&(Output::Json, true))
}

pub fn print(value: &Value) -> anyhow::Result<ExitCode> {
    match mode() {
        Output::Json if !value.is_null() => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Json => {}
        Output::Table => print!("{}", render(value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A cell is cut to this many characters.
const CELL: usize = 40;
/// At most this many columns: the most telling ones come first.
const COLUMNS: usize = 8;
/// Fields left out of tables: the same for every row, or only for machines.
const HIDDEN: &[&str] = &["tenant_id", "hash", "prev_hash"];
/// Fields shown first, in this order, when present.
const FIRST: &[&str] = &[
    "at",
    "actor",
    "name",
    "user_name",
    "display_name",
    "email",
    "principal",
    "role",
    "scope",
    "kind",
    "state",
    "action",
    "outcome",
    "method",
    "id",
];

/// The text a person reads for `value`: a table for a list (`{"items": […]}` or an array), the
/// fields of an object one per line (nested objects indented), nothing for no answer.
pub fn render(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Array(items) => table(items, None),
        Value::Object(fields) => match fields.get("items") {
            Some(Value::Array(items)) => table(items, fields.get("next_cursor")),
            _ => {
                let mut out = String::new();
                object(fields, 0, &mut out);
                out
            }
        },
        other => format!("{}\n", scalar(other)),
    }
}

fn object(fields: &Map<String, Value>, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let width = fields.keys().map(String::len).max().unwrap_or(0);
    let nested = |value: &Value| match value {
        Value::Object(_) => !is_reference(value),
        Value::Array(items) => items.iter().any(Value::is_object),
        _ => false,
    };
    // The object's own fields first, then its parts.
    let ordered = fields
        .iter()
        .filter(|(_, v)| !nested(v))
        .chain(fields.iter().filter(|(_, v)| nested(v)));
    for (key, value) in ordered {
        match value {
            Value::Object(inner) if !is_reference(value) => {
                out.push_str(&format!("{indent}{key}:\n"));
                object(inner, depth + 1, out);
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out.push_str(&format!("{indent}{key}:\n"));
                for line in table(items, None).lines() {
                    out.push_str(&format!("{indent}  {line}\n"));
                }
            }
            _ => out.push_str(&format!("{indent}{key:width$}  {}\n", text(value))),
        }
    }
}

fn table(items: &[Value], next_cursor: Option<&Value>) -> String {
    if items.is_empty() {
        return "No results.\n".to_owned();
    }
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        if let Value::Object(fields) = item {
            for (key, value) in fields {
                if shown_in_column(value)
                    && !columns.contains(key)
                    && !HIDDEN.contains(&key.as_str())
                {
                    columns.push(key.clone());
                }
            }
        }
    }
    columns.retain(|c| items.iter().any(|i| !i[c].is_null()));
    columns.sort_by_key(|c| FIRST.iter().position(|f| f == c).unwrap_or(FIRST.len()));
    columns.truncate(COLUMNS);
    let mut out = String::new();
    if columns.is_empty() {
        for item in items {
            out.push_str(&format!("{}\n", cell(item)));
        }
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|c| cell(&item[c])).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(text, width)| format!("{text:width$}"))
                .collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        out.push_str(&line(
            &columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
        ));
        for row in &rows {
            out.push_str(&line(row));
        }
    }
    if let Some(Value::String(cursor)) = next_cursor {
        out.push_str(&format!("More: add --cursor {cursor}\n"));
    }
    out
}

/// Whether a field fits a column: a scalar, a `{kind, id}` reference or a list of scalars.
fn shown_in_column(value: &Value) -> bool {
    match value {
        Value::Object(_) => is_reference(value),
        Value::Array(items) => items.iter().all(|i| !i.is_object() && !i.is_array()),
        _ => true,
    }
}

/// `{"kind": "user", "id": "…"}` and the like, shown as `user:…`, or by its `display` name
/// when it has one (an audit event's actor).
fn is_reference(value: &Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.get("kind").is_some_and(Value::is_string)
            && (o.len() == 2 && o.contains_key("id")
                || o.get("display").is_some_and(Value::is_string))
    })
}

/// A value in full, on one line.
fn text(value: &Value) -> String {
    match value {
        Value::Object(_) if value["display"].is_string() => scalar(&value["display"]),
        Value::Object(_) if is_reference(value) => {
            format!("{}:{}", scalar(&value["kind"]), scalar(&value["id"]))
        }
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => scalar(other),
    }
}

/// A value in a table's cell, cut to fit.
fn cell(value: &Value) -> String {
    let text = text(value);
    if text.chars().count() > CELL {
        let cut: String = text.chars().take(CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_are_tables_with_the_telling_columns_first() {
        let page = json!({"items": [
            {"id": "u1", "user_name": "ada", "email": null, "state": "active", "version": 1,
             "profile": {"a": 1}},
            {"id": "u2", "user_name": "grace", "email": "g@example.com", "state": "disabled", "version": 3,
             "profile": {"a": 2}},
        ], "next_cursor": "abc"});
        let text = render(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["USER_NAME", "EMAIL", "STATE", "ID", "VERSION"]
        );
        assert!(
            lines[1].starts_with("ada ") && lines[1].contains(" - "),
            "{text}"
        );
        assert!(lines[2].contains("g@example.com"));
        assert_eq!(lines[3], "More: add --cursor abc");
        assert!(
            !text.contains("profile"),
            "nested objects stay out of columns"
        );
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(render(&json!({"items": []})), "No results.\n");
        assert_eq!(render(&json!([])), "No results.\n");
        assert_eq!(render(&Value::Null), "");
    }

    #[test]
    fn one_object_is_fields_with_references_and_nested_parts_readable() {
        let me = json!({
            "principal": {"kind": "user", "id": "u1"},
            "display": "alice",
            "authentication": {"method": "access_token", "amr": ["pwd", "otp", "mfa"], "acr": "mfa"},
            "grants": [{"role": "tenant_administrator", "scope": "tenant", "via_group": null}],
        });
        let text = render(&me);
        assert!(text.contains("principal       user:u1"), "{text}");
        assert!(
            text.contains("authentication:\n  method  access_token\n  amr     pwd, otp, mfa"),
            "{text}"
        );
        assert!(
            text.contains("grants:\n  ROLE                  SCOPE\n  tenant_administrator  tenant"),
            "{text}"
        );
    }

    #[test]
    fn audit_events_show_who_and_when_and_leave_the_chain_to_machines() {
        let text = render(&json!({"items": [{
            "seq": 4, "at": "2026-12-06T01:32:52Z", "tenant_id": "t", "hash": "h", "prev_hash": "p",
            "actor": {"kind": "user", "id": "u1", "display": "alice"}, "action": "user.create",
        }]}));
        let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["AT", "ACTOR", "ACTION", "SEQ"]);
        assert!(text.lines().nth(1).unwrap().contains(" alice "), "{text}");
    }

    #[test]
    fn long_cells_are_cut() {
        let text = render(&json!([{"name": "x".repeat(100)}]));
        assert!(text.lines().nth(1).unwrap().ends_with('…'));
        assert_eq!(text.lines().nth(1).unwrap().chars().count(), CELL);
    }
}
