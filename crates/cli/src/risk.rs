//! Identity protection from the command line: detections, risky users, an administrator's
//! verdict on one, and loading a breached-password corpus into the leaked-password list.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use portcullis_api::risk::{DetectionQuery, LeakedPasswords, RiskVerdict, RiskyUserQuery};

use crate::api::{Api, NO_QUERY};
use crate::args::{instant, optional, typed};
use crate::names::{Kind, resolve};

/// Hashes sent per request when loading a list (the server takes at most 1,000: a batch must
/// fit its 64 KiB request body).
const BATCH: usize = 1_000;

#[derive(Subcommand)]
pub enum RiskCommand {
    /// Detections, newest first: risky sign-ins and the reasons users are at risk.
    Detections {
        /// Only this user's (name, e-mail or id).
        #[arg(long)]
        user: Option<String>,
        /// brute_force, password_spray, impossible_travel, new_country, unfamiliar_properties,
        /// anonymous_address, leaked_credentials or admin_confirmed_compromised.
        #[arg(long)]
        kind: Option<String>,
        /// low, medium or high.
        #[arg(long)]
        level: Option<String>,
        /// at_risk, confirmed_compromised, dismissed or remediated.
        #[arg(long)]
        state: Option<String>,
        /// Detections at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        paging: crate::admin::Paging,
    },
    /// Users at risk, riskiest first.
    Users {
        /// Only users at this level or above: low (the default), medium or high.
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Confirm a user compromised: high risk, and every session and refresh token ended.
    ConfirmCompromised {
        /// The user (name, e-mail or id).
        user: String,
        /// Why, for the audit trail.
        #[arg(long)]
        note: Option<String>,
    },
    /// Dismiss a user's open detections as harmless.
    Dismiss {
        /// The user (name, e-mail or id).
        user: String,
        /// Why, for the audit trail.
        #[arg(long)]
        note: Option<String>,
    },
    /// The deployment's list of leaked (breached) passwords (operator administrators only).
    LeakedPasswords {
        #[command(subcommand)]
        command: LeakedCommand,
    },
}

#[derive(Subcommand)]
pub enum LeakedCommand {
    /// How many hashes the list holds.
    Count,
    /// Add the SHA-1 hashes in a file, one per line (40 hex digits, optionally `:count`, as in
    /// the Pwned Passwords corpus; `#` comments and blank lines are skipped).
    Load {
        /// The file; `-` for standard input.
        file: PathBuf,
    },
}

pub async fn run(api: &Api, command: RiskCommand) -> anyhow::Result<Value> {
    match command {
        RiskCommand::Detections {
            user,
            kind,
            level,
            state,
            since,
            paging,
        } => {
            let user_id = match user {
                Some(name) => Some(typed("user", resolve(api, Kind::User, &name).await?)?),
                None => None,
            };
            let page = paging.query();
            let query = DetectionQuery {
                user_id,
                kind: optional("kind", kind)?,
                level: optional("level", level)?,
                state: optional("state", state)?,
                since: instant("since", since)?,
                cursor: page.cursor,
                limit: page.limit,
            };
            api.get("/v1/risk/detections", &query).await
        }
        RiskCommand::Users { level, limit } => {
            let query = RiskyUserQuery {
                level: optional("level", level)?,
                limit,
            };
            api.get("/v1/risk/users", &query).await
        }
        RiskCommand::ConfirmCompromised { user, note } => {
            verdict(api, &user, "confirm-compromised", note).await
        }
        RiskCommand::Dismiss { user, note } => verdict(api, &user, "dismiss", note).await,
        RiskCommand::LeakedPasswords { command } => match command {
            LeakedCommand::Count => api.get("/v1/leaked-passwords", NO_QUERY).await,
            LeakedCommand::Load { file } => load(api, &file).await,
        },
    }
}

async fn verdict(api: &Api, user: &str, what: &str, note: Option<String>) -> anyhow::Result<Value> {
    let id = resolve(api, Kind::User, user).await?;
    api.post(
        &format!("/v1/risk/users/{id}/{what}"),
        &RiskVerdict { note },
    )
    .await
}

/// Sends the file's lines in batches, with progress. Lines are checked by the server, which
/// names a bad one; the batches before it stay loaded, and loading again skips what is there.
async fn load(api: &Api, file: &PathBuf) -> anyhow::Result<Value> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let opened =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} loading leaked passwords: {pos} lines ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let (mut added, mut lines, mut batch) = (0u64, 0u64, Vec::with_capacity(BATCH));
    let send = async |batch: &mut Vec<String>, first_line: u64| -> anyhow::Result<u64> {
        let answer = api
            .post(
                "/v1/leaked-passwords",
                &LeakedPasswords {
                    hashes: std::mem::take(batch),
                },
            )
            .await
            .with_context(|| format!("in the batch starting at line {}", first_line + 1))?;
        Ok(answer["added"].as_u64().unwrap_or(0))
    };
    for line in reader.lines() {
        let line = line.with_context(|| format!("cannot read {}", file.display()))?;
        batch.push(line);
        lines += 1;
        if batch.len() == BATCH {
            added += send(&mut batch, lines - BATCH as u64).await?;
            bar.set_position(lines);
        }
    }
    if !batch.is_empty() {
        let first = lines - batch.len() as u64;
        added += send(&mut batch, first).await?;
    }
    bar.finish_and_clear();
    let total = api.get("/v1/leaked-passwords", NO_QUERY).await?;
    Ok(json!({ "lines": lines, "added": added, "total": total["total"] }))
}
