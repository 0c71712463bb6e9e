//! `portcullis`: runs the server (`serve`, `migrate`) and administers it over its REST API
//! (everything else). The admin commands hold no logic the server does not expose; they turn
//! flags into API calls and print the answers (tables for people, JSON for scripts).

mod access;
mod admin;
mod api;
mod args;
mod audit;
mod authorization;
mod bench;
mod conditional;
mod devices;
mod imports;
mod login;
mod names;
mod output;
mod risk;
mod serve;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Identity and access management server and admin tool", long_about = None)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    /// Do not ask before deleting, purging, revoking or removing (a terminal is asked; scripts
    /// never are).
    #[arg(long, short = 'y', global = true, help_heading = GLOBAL)]
    yes: bool,
    /// How to print answers: `table` (readable) or `json` (the API's answer) [default: table
    /// on a terminal, json when piped].
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PORTCULLIS_OUTPUT",
        help_heading = GLOBAL
    )]
    output: Option<output::Output>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database and bootstraps it on first start).
    Serve(serve::ServeArgs),
    /// Bring the database schema up to date and exit.
    Migrate(serve::MigrateArgs),
    /// Give a tenant that locked itself out a new administrator (a key valid for a day). Run
    /// where the server runs, with its configuration: it opens the database directly.
    Recover(serve::RecoverArgs),
    /// Key-encryption key utilities.
    #[command(subcommand)]
    Kek(serve::KekCommand),
    /// Verify or export the audit trail, or search it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Benchmarks: audit append throughput, admin API throughput, latency and memory.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Decide one question and print why: the grant or refusal, the group it came through,
    /// the role by name. Exits 0 when allowed, 2 when denied.
    Explain(access::ExplainArgs),
    /// List the principals that may do an action on a resource.
    WhoCan(access::WhoCanArgs),
    /// List what a principal may do: the actions on one resource, or the records for one action.
    WhatCan(access::WhatCanArgs),
    /// Decide a batch of questions from a file (an AuthZEN evaluations request) and print
    /// each decision. Exits 0 when every one is allowed, 2 otherwise.
    Evaluate(access::EvaluateArgs),
    /// Sign the command line in to a tenant as yourself, in this machine's browser or by
    /// approving a code in any browser (OAuth). Later commands then act as you, with your
    /// roles and your sign-in.
    Login(login::LoginArgs),
    /// End the sign-in of `portcullis login`: its tokens are revoked and forgotten.
    Logout,
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

/// The heading the options every command takes are listed under.
const GLOBAL: &str = "Global options";

/// Where the admin commands find the server and their credential.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// Base URL of the server.
    #[arg(
        long,
        env = "PORTCULLIS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = GLOBAL
    )]
    pub url: String,
    /// API key to authenticate with [default: the sign-in of `portcullis login`, then
    /// data/bootstrap-credential].
    #[arg(
        long,
        env = "PORTCULLIS_API_KEY",
        hide_env_values = true,
        global = true,
        help_heading = GLOBAL
    )]
    pub api_key: Option<String>,
    /// File holding the API key [default: data/bootstrap-credential, if present].
    #[arg(long, env = "PORTCULLIS_API_KEY_FILE", global = true, help_heading = GLOBAL)]
    pub api_key_file: Option<PathBuf>,
}

/// mimalloc: many small short-lived allocations per request (JSON, tokens, headers) cost less
/// than with the system allocator; measured on the token endpoint in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::choose(cli.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Migrate(args) => serve::migrate(args).await,
            Command::Recover(args) => serve::recover(args).await,
            Command::Kek(command) => serve::kek(command),
            Command::Audit(command) => audit::run(command, &cli.connection).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Explain(args) => access::explain(args, &cli.connection).await,
            Command::WhoCan(args) => access::who_can(args, &cli.connection).await,
            Command::WhatCan(args) => access::what_can(args, &cli.connection).await,
            Command::Evaluate(args) => access::evaluate(args, &cli.connection).await,
            Command::Login(args) => login::login(args, &cli.connection).await,
            Command::Logout => login::logout(&cli.connection).await,
            Command::Admin(command) => admin::run(command, &cli.connection, cli.yes).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every command, flag and global option.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
