//! `portcullis user import`: a CSV file of users sent to the server, followed with a progress
//! bar until every line is done, then the report.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::api::{Api, NO_QUERY};

/// How often the progress is asked for.
const POLL: Duration = Duration::from_millis(300);

pub async fn import_users(api: &Api, file: &Path) -> anyhow::Result<Value> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read the file {}", file.display()))?;
    let file_name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let started = api
        .post_csv("/v1/user-imports", &[("file_name", file_name)], bytes)
        .await?;
    let id = started["id"]
        .as_str()
        .context("the server did not say which import it started")?
        .to_owned();
    let bar = ProgressBar::new(started["total"].as_u64().unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} lines ({per_sec}, {eta} left) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let report = api.get(&format!("/v1/user-imports/{id}"), NO_QUERY).await?;
        bar.set_position(report["processed"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{} created, {} failed",
            report["created"].as_u64().unwrap_or(0),
            report["failed"].as_u64().unwrap_or(0)
        ));
        match report["state"].as_str() {
            Some("running") => tokio::time::sleep(POLL).await,
            Some("interrupted") => {
                bar.abandon();
                anyhow::bail!(
                    "the import stopped when the server did, after {} of {} lines. The users created \
                     stay; import the same file again to create the rest (the others are reported as \
                     already there)",
                    report["processed"],
                    report["total"]
                );
            }
            _ => {
                bar.finish();
                return Ok(report);
            }
        }
    }
}
