//! `portcullis audit`: verify the hash chain (over the API or from an export), export it as
//! JSON lines, and search events.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use portcullis_core::audit::{AuditRecord, ChainVerifier};

use portcullis_api::audit::{ApiUseQuery, AuditQuery, ChainPage, ChainQuery, SignInQuery};

use crate::Connection;
use crate::api::Api;
use crate::args::{instant, optional};
use crate::names::{Kind, resolve};

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the tenant's hash chain from its first record and report the first broken link.
    Verify {
        /// Verify an export written by `audit export` instead of asking the server.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Write the tenant's chain as JSON lines, in order.
    Export {
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Search events, newest first.
    List {
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        actor_id: Option<String>,
        #[arg(long)]
        target_id: Option<String>,
        #[command(flatten)]
        search: Search,
    },
    /// Search the sign-in log (password, code, passkey and federated sign-ins, their outcome
    /// and reason), newest first.
    SignIns {
        /// Only this user (name, e-mail or id).
        #[arg(long, conflicts_with = "service_principal")]
        user: Option<String>,
        /// Only this workload's token requests (name or id).
        #[arg(long)]
        service_principal: Option<String>,
        #[command(flatten)]
        search: Search,
    },
    /// When each principal last used the API, per way of authenticating (api_key,
    /// access_token, session), most recent first: find dormant administrators and forgotten
    /// keys.
    ApiUse {
        /// Only this principal: user or service_principal (with --principal-id).
        #[arg(long, requires = "principal_id")]
        principal_kind: Option<String>,
        /// The principal's id.
        #[arg(long, requires = "principal_kind")]
        principal_id: Option<String>,
        /// 1–1000 [default: 100].
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// What searches of the trail and the sign-in log have in common.
#[derive(clap::Args)]
pub struct Search {
    /// success, denied or failure.
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    from: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    cursor: Option<String>,
}

const PAGE: u32 = 500;

/// The newest record of a tenant's chain when a walk began.
struct Head {
    seq: i64,
    hash: String,
}

/// Reads the chain page by page from the server, handing each record to `each`, up to the head
/// the server reported on the first page. Returns the last sequence number read and that head.
async fn walk(
    api: &Api,
    progress: &ProgressBar,
    mut each: impl FnMut(AuditRecord) -> anyhow::Result<()>,
) -> anyhow::Result<(i64, Head)> {
    let mut after = 0i64;
    let mut head: Option<Head> = None;
    loop {
        let query = ChainQuery {
            after: Some(after),
            limit: Some(PAGE),
        };
        let page: ChainPage = serde_json::from_value(api.get("/v1/audit/chain", &query).await?)
            .context("the server sent records this tool cannot read")?;
        let head_seq = head
            .get_or_insert_with(|| Head {
                seq: page.head_seq,
                hash: page.head_hash.clone(),
            })
            .seq;
        progress.set_length(head_seq.max(0) as u64);
        let records = page.records;
        let done = records.is_empty() || records.iter().any(|r| r.seq >= head_seq);
        for record in records.into_iter().take_while(|r| r.seq <= head_seq) {
            after = record.seq;
            each(record)?;
            progress.inc(1);
        }
        if done {
            return Ok((after, head.context("no head")?));
        }
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix("verifying");
    bar
}

pub async fn run(command: AuditCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            file: Some(file), ..
        } => {
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?,
            );
            let mut verifier = ChainVerifier::default();
            for (number, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("cannot read {}", file.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let record: AuditRecord = serde_json::from_str(&line).with_context(|| {
                    format!(
                        "line {} of {} is not an audit record",
                        number + 1,
                        file.display()
                    )
                })?;
                if let Err(broken) = verifier.push(&record) {
                    eprintln!("BROKEN: {broken}");
                    return Ok(ExitCode::from(2));
                }
            }
            println!(
                "intact: {} records verified, last hash {}",
                verifier.verified_through(),
                verifier.last_hash()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { file: None } => {
            let api = Api::new(connection)?;
            let progress = progress_bar();
            let mut verifier = ChainVerifier::default();
            let mut broken = None;
            let (_, head) = walk(&api, &progress, |record| {
                if broken.is_none()
                    && let Err(e) = verifier.push(&record)
                {
                    broken = Some(e);
                }
                Ok(())
            })
            .await?;
            progress.finish_and_clear();
            if broken.is_none() {
                broken = verifier.finish(head.seq, &head.hash).err();
            }
            match broken {
                Some(e) => {
                    eprintln!("BROKEN: {e}");
                    Ok(ExitCode::from(2))
                }
                None => {
                    println!(
                        "intact: {} records verified, last hash {}",
                        verifier.verified_through(),
                        verifier.last_hash()
                    );
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        AuditCommand::Export { file } => {
            let api = Api::new(connection)?;
            let mut out: Box<dyn Write> = match &file {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let progress = progress_bar();
            progress.set_prefix("exporting");
            let (last, _) = walk(&api, &progress, |record| {
                serde_json::to_writer(&mut out, &record)?;
                out.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            out.flush()?;
            progress.finish_and_clear();
            eprintln!("exported records 1..={last}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::List {
            action,
            actor_id,
            target_id,
            search,
        } => {
            let query = AuditQuery {
                from: instant("from", search.from)?,
                to: instant("to", search.to)?,
                actor_id,
                target_id,
                action,
                outcome: optional("outcome", search.outcome)?,
                cursor: search.cursor,
                limit: search.limit,
            };
            let api = Api::new(connection)?;
            crate::output::print(&api.get("/v1/audit", &query).await?)
        }
        AuditCommand::SignIns {
            user,
            service_principal,
            search,
        } => {
            let api = Api::new(connection)?;
            let user_id = match user {
                Some(user) => Some(resolve(&api, Kind::User, &user).await?),
                None => None,
            };
            let service_principal_id = match service_principal {
                Some(name) => Some(resolve(&api, Kind::ServicePrincipal, &name).await?),
                None => None,
            };
            let query = SignInQuery {
                from: instant("from", search.from)?,
                to: instant("to", search.to)?,
                user_id,
                service_principal_id,
                outcome: optional("outcome", search.outcome)?,
                cursor: search.cursor,
                limit: search.limit,
            };
            crate::output::print(&api.get("/v1/sign-ins", &query).await?)
        }
        AuditCommand::ApiUse {
            principal_kind,
            principal_id,
            limit,
        } => {
            let api = Api::new(connection)?;
            let principal_id = match (
                principal_kind.as_deref().and_then(Kind::principal),
                principal_id,
            ) {
                (Some(kind), Some(id)) => Some(resolve(&api, kind, &id).await?),
                (_, id) => id,
            };
            let query = ApiUseQuery {
                principal_kind: optional("principal-kind", principal_kind)?,
                principal_id: optional("principal-id", principal_id)?,
                limit,
            };
            crate::output::print(&api.get("/v1/api-use", &query).await?)
        }
    }
}
