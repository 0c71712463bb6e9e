//! `serve`, `migrate` and `kek`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;

use portcullis_server::{Config, KekSource, LogFormat, Server, Settings};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file (keys as the long flags, with '_' for '-').
    #[arg(long, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// TOML config file.
    #[arg(long, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The locked-out tenant (its name).
    #[arg(long)]
    tenant: String,
    /// TOML config file: the same as the server's, so this opens its database with its
    /// key-encryption key.
    #[arg(long, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Subcommand)]
pub enum KekCommand {
    /// Print a new random key-encryption key (base64) for PORTCULLIS_KEK or a key file.
    Generate,
}

/// Flags and environment first, then the config file, then defaults.
fn resolve(file: Option<PathBuf>, settings: Settings) -> anyhow::Result<Config> {
    let from_file = match file {
        Some(path) => Settings::from_file(&path)?,
        None => Settings::default(),
    };
    Ok(settings.or(from_file).resolve()?)
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn kek_from_env() -> Option<SecretString> {
    std::env::var("PORTCULLIS_KEK")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
}

/// Registers the shutdown signals now, so a SIGTERM that arrives as soon as the server announces
/// itself is already handled, and returns the future that completes on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        tokio::signal::ctrl_c().await.unwrap_or(());
        tracing::info!("shutting down: finishing requests in flight");
    })
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(args.config, args.settings)?;
    init_logging(&config);
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let config = config.bound_to(address);
    let data_dir = config.data_dir.clone();
    let boot_days = config.bootstrap_key_days;
    let server = Server::prepare(config, kek_from_env())
        .await
        .context("the server could not start")?;
    match server.kek_source {
        KekSource::GeneratedForDevelopment | KekSource::ExistingDevelopmentFile => {
            let path = data_dir.join(portcullis_server::DEV_KEK_FILE);
            tracing::warn!(path = %path.display(), "DEVELOPMENT MODE: the key-encryption key is stored next to the data it protects");
            eprintln!(
                "WARNING: development mode. The key-encryption key is in {} beside the database it protects.\n\
                 For production, generate one with `portcullis kek generate`, keep it outside the data directory\n\
                 (PORTCULLIS_KEK or --kek-file) and start with --production.",
                path.display()
            );
        }
        KekSource::Environment | KekSource::File => {}
    }
    if let Some(boot) = &server.bootstrapped {
        println!(
            "================================================================================"
        );
        println!(
            "Portcullis is new: created the operator tenant {:?}.",
            boot.created.tenant.name
        );
        println!("Its first administrator's API key (shown only this once):");
        println!();
        println!("    {}", boot.secret.expose_secret());
        println!();
        if let Some(file) = &boot.file {
            println!(
                "It is also in {} (mode 0600), where the portcullis command finds it.",
                file.display()
            );
        }
        println!(
            "Next, make yourself an administrator who signs in with a passkey (docs/getting-started.md, section 7):"
        );
        println!();
        println!("    ME=$(portcullis user create \"$USER\" | jq -r .id)");
        println!("    portcullis role-assignment create user \"$ME\" tenant_administrator");
        println!(
            "    portcullis user invite \"$ME\"    # open the link: choose a password, add a passkey"
        );
        println!("    portcullis login --tenant {}", boot.created.tenant.name);
        println!();
        println!(
            "This key stops working {boot_days} days after such a person has a second factor."
        );
        println!(
            "================================================================================"
        );
    }
    let shutdown = shutdown_signal().context("cannot install the shutdown signal handlers")?;
    let state = server.state();
    let pages = format!(
        "{}/t/{}",
        state.config.public_url, state.config.operator_tenant
    );
    println!("portcullis: sign-in at {pages}/sign-in (your account: {pages}/account)");
    println!(
        "portcullis: admin API at {}/v1 (OpenAPI: {}/v1/openapi.json)",
        state.config.public_url, state.config.public_url
    );
    // Last: scripts wait for this line and read the address from it.
    println!("portcullis: listening on http://{address}");
    server.serve(listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(args.config, args.settings)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let store = portcullis_store::Store::connect(&config.database_url, 2).await?;
    store.migrate().await?;
    store.close().await;
    eprintln!(
        "database {} is up to date",
        portcullis_store::redact_url(&config.database_url)
    );
    Ok(ExitCode::SUCCESS)
}

/// `portcullis recover`: works on the database directly (no network API), so only someone who
/// can run the server with its database and key can do it.
pub async fn recover(args: RecoverArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(args.config, args.settings)?;
    let server = Server::prepare(config, kek_from_env())
        .await
        .context("cannot open the server's database")?;
    if server.bootstrapped.is_some() {
        anyhow::bail!(
            "the database was empty: it now has an operator tenant whose first administrator's key is in \
             the data directory's bootstrap-credential file; there was nothing to recover"
        );
    }
    let recovered = match server.recover(&args.tenant).await {
        Err(portcullis_server::ServerError::Store(portcullis_store::StoreError::NotFound)) => {
            anyhow::bail!("this database has no tenant named {:?}", args.tenant)
        }
        other => other.context("the recovery failed; nothing was changed")?,
    };
    let expires = recovered
        .key
        .expires_at
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    println!(
        "Recovered tenant {:?}: made the service principal {} ({}) with tenant_administrator.",
        recovered.tenant, recovered.service_principal.name, recovered.service_principal.id
    );
    println!("Its API key, shown only this once, works until {expires}:");
    println!();
    println!("    {}", recovered.secret.expose_secret());
    println!();
    println!(
        "Use it to give your administrators their roles back, then delete {} \
         (portcullis service-principal delete {}). The recovery is in the tenant's audit trail \
         as tenant.recover.",
        recovered.service_principal.name, recovered.service_principal.id
    );
    Ok(ExitCode::SUCCESS)
}

pub fn kek(command: KekCommand) -> anyhow::Result<ExitCode> {
    match command {
        KekCommand::Generate => {
            let kek = portcullis_core::secrets::Kek::generate_base64()?;
            println!("{}", kek.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
    }
}
