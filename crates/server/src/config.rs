//! Server settings. Each setting can come from a flag, an environment variable or the TOML
//! config file; a flag beats the environment, the environment beats the file, the file beats
//! the default. Unknown keys in the file are an error at start, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_core::network::TrustedProxies;
use serde::Deserialize;

/// The settings of `portcullis serve`, as flags, environment variables and config-file keys.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory for the embedded database, the development KEK and the bootstrap credential.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data directory]
    #[arg(long, env = "PORTCULLIS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Largest number of database connections this node opens.
    #[arg(long, env = "PORTCULLIS_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,

    /// Production mode: refuse to start without an explicit key-encryption key.
    #[arg(long, env = "PORTCULLIS_PRODUCTION", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub production: Option<bool>,

    /// File holding the base64 key-encryption key (PORTCULLIS_KEK, holding the key itself, wins).
    #[arg(long, env = "PORTCULLIS_KEK_FILE", value_name = "FILE")]
    pub kek_file: Option<PathBuf>,

    /// Name of the operator tenant created on first start.
    #[arg(long, env = "PORTCULLIS_OPERATOR_TENANT", value_name = "NAME")]
    pub operator_tenant: Option<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PORTCULLIS_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Days a deleted user can be restored before it is purged.
    #[arg(long, env = "PORTCULLIS_DELETED_RETENTION_DAYS", value_name = "DAYS")]
    pub deleted_retention_days: Option<u32>,

    /// Failed authentications allowed per source address per minute before requests get 429.
    #[arg(long, env = "PORTCULLIS_AUTH_FAILURES_PER_MINUTE", value_name = "N")]
    pub auth_failures_per_minute: Option<u32>,

    /// Seconds between runs of the lifecycle sweeper (purges, guest expiry).
    #[arg(
        long,
        env = "PORTCULLIS_SWEEP_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub sweep_interval_seconds: Option<u64>,

    /// Days the first administrator's key (the bootstrap credential) keeps working once a
    /// person holding role assignment with a second factor exists: 1–730.
    #[arg(long, env = "PORTCULLIS_BOOTSTRAP_KEY_DAYS", value_name = "DAYS")]
    pub bootstrap_key_days: Option<u32>,

    /// Days each token signing key signs before the sweeper rotates it (0: never).
    #[arg(
        long,
        env = "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS",
        value_name = "DAYS"
    )]
    pub signing_key_rotation_days: Option<u32>,

    /// Seconds a new signing key is published before it signs, so verifiers that cache the
    /// JWKS learn it first.
    #[arg(
        long,
        env = "PORTCULLIS_SIGNING_KEY_PUBLISH_SECONDS",
        value_name = "SECONDS"
    )]
    pub signing_key_publish_seconds: Option<u32>,

    /// Milliseconds between checks of the change feed for other nodes' authorization changes,
    /// when PostgreSQL's notifications are not heard (they wake the node at once).
    #[arg(
        long,
        env = "PORTCULLIS_AUTHZ_POLL_INTERVAL_MS",
        value_name = "MILLISECONDS"
    )]
    pub authz_poll_interval_ms: Option<u64>,

    /// Milliseconds a decision that demands a newer revision than this node holds may wait
    /// for it.
    #[arg(
        long,
        env = "PORTCULLIS_AUTHZ_MAX_WAIT_MS",
        value_name = "MILLISECONDS"
    )]
    pub authz_max_wait_ms: Option<u64>,

    /// Mebibytes of authorization snapshots a node keeps: past it, the tenants least recently
    /// asked about are dropped and built again on their next decision. The tenant just asked
    /// about is always kept, whatever its size.
    #[arg(long, env = "PORTCULLIS_AUTHZ_MEMORY_MIB", value_name = "MEBIBYTES")]
    pub authz_memory_mib: Option<u64>,

    /// The URL people and clients reach this server at [default: http://localhost:PORT on a
    /// loopback address, else http://LISTEN]. With https, cookies are Secure with the __Host-
    /// prefix and pages send HSTS. Passkeys need a host name here, not an IP address.
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Argon2id memory cost of password hashes, in KiB (at least 19456 in production).
    #[arg(long, env = "PORTCULLIS_PASSWORD_MEMORY_KIB", value_name = "KIB")]
    pub password_memory_kib: Option<u32>,

    /// Argon2id passes over memory for password hashes (at least 2 in production).
    #[arg(long, env = "PORTCULLIS_PASSWORD_ITERATIONS", value_name = "N")]
    pub password_iterations: Option<u32>,

    /// Log format: json or text.
    #[arg(long, env = "PORTCULLIS_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. info or portcullis=debug,info.
    #[arg(long, env = "PORTCULLIS_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed: networks
    /// such as 10.0.0.0/8 (repeat the flag, or separate with commas). Without it the socket's
    /// peer is the client's address everywhere (throttles, sign-in log, audit).
    #[arg(
        long = "trusted-proxy",
        env = "PORTCULLIS_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Option<Vec<String>>,

    /// A MaxMind-format database of countries by address (`.mmdb`): GeoLite2-Country or -City,
    /// or the free `@ip-location-db/geo-whois-asn-country-mmdb`. Without it, conditional access
    /// conditions on countries never match, and the what-if tool says so.
    #[arg(long, env = "PORTCULLIS_GEOIP_COUNTRY", value_name = "FILE")]
    pub geoip_country: Option<PathBuf>,

    /// A MaxMind-format database of networks (ASN) by address (`.mmdb`): GeoLite2-ASN or the
    /// free `@ip-location-db/asn-mmdb`. Recorded in the sign-in log.
    #[arg(long, env = "PORTCULLIS_GEOIP_ASN", value_name = "FILE")]
    pub geoip_asn: Option<PathBuf>,

    /// A list of anonymising networks (open proxies, VPN exits, Tor exit nodes): one CIDR
    /// range or address per line, `#` comments allowed. A sign-in from one of them is a
    /// medium sign-in risk. Read at start.
    #[arg(long, env = "PORTCULLIS_ANONYMOUS_NETWORKS", value_name = "FILE")]
    pub anonymous_networks: Option<PathBuf>,

    /// The SMTP server that delivers mail (invitations, password resets, address checks,
    /// notices): smtps://HOST[:465] (TLS from the start) or smtp://HOST[:587] (STARTTLS,
    /// required). smtp://HOST:PORT?tls=none sends in the clear, outside production only.
    /// Without it, links are shown to the administrator and nobody can reset a forgotten
    /// password by mail.
    #[arg(long, env = "PORTCULLIS_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,

    /// The user name to sign in to the SMTP server with.
    #[arg(long, env = "PORTCULLIS_SMTP_USER", value_name = "NAME")]
    pub smtp_user: Option<String>,

    /// File holding the SMTP password (PORTCULLIS_SMTP_PASSWORD, holding it itself, wins).
    #[arg(long, env = "PORTCULLIS_SMTP_PASSWORD_FILE", value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,

    /// A PEM certificate authority to trust for the SMTP server besides the system's (a
    /// private CA).
    #[arg(long, env = "PORTCULLIS_SMTP_CA_FILE", value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,

    /// The sender of mail: an address, or "Name <address>". Required with smtp_url.
    #[arg(long, env = "PORTCULLIS_MAIL_FROM", value_name = "ADDRESS")]
    pub mail_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub max_connections: u32,
    pub production: bool,
    pub kek_file: Option<PathBuf>,
    pub operator_tenant: String,
    pub max_body_bytes: usize,
    pub deleted_retention_days: u32,
    pub auth_failures_per_minute: u32,
    pub sweep_interval_seconds: u64,
    pub bootstrap_key_days: u32,
    pub signing_key_rotation_days: u32,
    pub signing_key_publish_seconds: u32,
    pub authz_poll_interval_ms: u64,
    pub authz_max_wait_ms: u64,
    pub authz_memory_mib: u64,
    pub public_url: String,
    pub password_memory_kib: u32,
    pub password_iterations: u32,
    pub log_format: LogFormat,
    pub log: String,
    pub trusted_proxies: std::sync::Arc<TrustedProxies>,
    /// Countries and networks of addresses, from the configured `.mmdb` files.
    pub geo: std::sync::Arc<crate::geo::Geo>,
    /// How mail is delivered; `None` when no SMTP server is configured.
    pub mail: Option<std::sync::Arc<crate::mail::MailSettings>>,
}

impl Config {
    /// The configuration once the listener is bound: a default public URL for "any free port"
    /// (port 0) names the port actually bound.
    pub fn bound_to(mut self, bound: SocketAddr) -> Self {
        if self.listen.port() == 0 && self.public_url == default_public_url(self.listen) {
            self.public_url = default_public_url(bound);
        }
        self.listen = bound;
        self
    }

    /// Whether cookies must be Secure (and `__Host-`): whenever people reach us over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Where browsers reach a server nobody named a URL for. A loopback server is called
/// `localhost`, not `127.0.0.1`: browsers refuse passkeys on an IP address.
fn default_public_url(listen: SocketAddr) -> String {
    if listen.ip().is_loopback() {
        format!("http://localhost:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Fills every setting this one lacks from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            max_connections: self.max_connections.or(lower.max_connections),
            production: self.production.or(lower.production),
            kek_file: self.kek_file.or(lower.kek_file),
            operator_tenant: self.operator_tenant.or(lower.operator_tenant),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            deleted_retention_days: self.deleted_retention_days.or(lower.deleted_retention_days),
            auth_failures_per_minute: self
                .auth_failures_per_minute
                .or(lower.auth_failures_per_minute),
            sweep_interval_seconds: self.sweep_interval_seconds.or(lower.sweep_interval_seconds),
            bootstrap_key_days: self.bootstrap_key_days.or(lower.bootstrap_key_days),
            signing_key_rotation_days: self
                .signing_key_rotation_days
                .or(lower.signing_key_rotation_days),
            signing_key_publish_seconds: self
                .signing_key_publish_seconds
                .or(lower.signing_key_publish_seconds),
            authz_poll_interval_ms: self.authz_poll_interval_ms.or(lower.authz_poll_interval_ms),
            authz_max_wait_ms: self.authz_max_wait_ms.or(lower.authz_max_wait_ms),
            authz_memory_mib: self.authz_memory_mib.or(lower.authz_memory_mib),
            public_url: self.public_url.or(lower.public_url),
            password_memory_kib: self.password_memory_kib.or(lower.password_memory_kib),
            password_iterations: self.password_iterations.or(lower.password_iterations),
            log_format: self.log_format.or(lower.log_format),
            log: self.log.or(lower.log),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
            geoip_country: self.geoip_country.or(lower.geoip_country),
            geoip_asn: self.geoip_asn.or(lower.geoip_asn),
            anonymous_networks: self.anonymous_networks.or(lower.anonymous_networks),
            smtp_url: self.smtp_url.or(lower.smtp_url),
            smtp_user: self.smtp_user.or(lower.smtp_user),
            smtp_password_file: self.smtp_password_file.or(lower.smtp_password_file),
            smtp_ca_file: self.smtp_ca_file.or(lower.smtp_ca_file),
            mail_from: self.mail_from.or(lower.mail_from),
        }
    }

    /// Applies defaults and checks the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("portcullis.db").display()));
        let operator_tenant = self.operator_tenant.unwrap_or_else(|| "operator".into());
        portcullis_core::names::parse_slug("operator_tenant", &operator_tenant)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let max_body_bytes = self.max_body_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be between 1024 and 16777216".into(),
            ));
        }
        let production = self.production.unwrap_or(false);
        let password_memory_kib = self
            .password_memory_kib
            .unwrap_or(portcullis_core::password::DEFAULT_MEMORY_KIB);
        let password_iterations = self
            .password_iterations
            .unwrap_or(portcullis_core::password::DEFAULT_ITERATIONS);
        if !(64..=4 * 1024 * 1024).contains(&password_memory_kib)
            || !(1..=100).contains(&password_iterations)
        {
            return Err(ConfigError::Invalid(
                "password_memory_kib must be 64-4194304 and password_iterations 1-100".into(),
            ));
        }
        if production
            && (password_memory_kib < portcullis_core::password::DEFAULT_MEMORY_KIB
                || password_iterations < portcullis_core::password::DEFAULT_ITERATIONS)
        {
            return Err(ConfigError::Invalid(format!(
                "production mode needs password_memory_kib >= {} and password_iterations >= {} (OWASP's minimum for Argon2id)",
                portcullis_core::password::DEFAULT_MEMORY_KIB,
                portcullis_core::password::DEFAULT_ITERATIONS
            )));
        }
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = self
            .public_url
            .unwrap_or_else(|| default_public_url(listen))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(
                "public_url must start with https:// (or http:// for local development)".into(),
            ));
        }
        let trusted_proxies =
            TrustedProxies::parse(self.trusted_proxies.as_deref().unwrap_or_default())
                .map_err(|e| ConfigError::Invalid(format!("{}: {}", e.field, e.message)))?;
        let geo = crate::geo::Geo::open(
            self.geoip_country.as_deref(),
            self.geoip_asn.as_deref(),
            self.anonymous_networks.as_deref(),
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mail = crate::mail::MailSettings::resolve(
            crate::mail::SmtpSettings {
                url: self.smtp_url,
                user: self.smtp_user,
                password_file: self.smtp_password_file,
                ca_file: self.smtp_ca_file,
                from: self.mail_from,
            },
            production,
        )?
        .map(std::sync::Arc::new);
        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            max_connections: self.max_connections.unwrap_or(16).clamp(2, 1000),
            production,
            kek_file: self.kek_file,
            operator_tenant,
            max_body_bytes,
            deleted_retention_days: self.deleted_retention_days.unwrap_or(30),
            auth_failures_per_minute: self.auth_failures_per_minute.unwrap_or(30).max(1),
            sweep_interval_seconds: self.sweep_interval_seconds.unwrap_or(60).max(1),
            bootstrap_key_days: self.bootstrap_key_days.unwrap_or(7).clamp(1, 730),
            signing_key_rotation_days: self.signing_key_rotation_days.unwrap_or(90),
            signing_key_publish_seconds: self.signing_key_publish_seconds.unwrap_or(86_400),
            authz_poll_interval_ms: self
                .authz_poll_interval_ms
                .unwrap_or(1000)
                .clamp(10, 60_000),
            authz_max_wait_ms: self.authz_max_wait_ms.unwrap_or(2000).min(30_000),
            authz_memory_mib: self.authz_memory_mib.unwrap_or(2048),
            password_memory_kib,
            password_iterations,
            log_format: self.log_format.unwrap_or(LogFormat::Json),
            log: self.log.unwrap_or_else(|| "info".into()),
            trusted_proxies: std::sync::Arc::new(trusted_proxies),
            geo: std::sync::Arc::new(geo),
            mail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file: Settings =
            toml::from_str("listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"").unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Settings::default()
        };
        let config = flags.or(file).resolve().unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.database_url, "sqlite:///tmp/x/portcullis.db");
        assert_eq!(config.max_body_bytes, 64 * 1024);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = toml::from_str::<Settings>("listen_addr = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let bad = Settings {
            operator_tenant: Some("Not A Slug".into()),
            ..Settings::default()
        };
        assert!(bad.resolve().is_err());
        let bad = Settings {
            max_body_bytes: Some(10),
            ..Settings::default()
        };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn trusted_proxies_are_networks_read_at_start() {
        let file: Settings =
            toml::from_str("trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]").unwrap();
        let config = file.resolve().unwrap();
        assert!(config.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(!config.trusted_proxies.contains("11.0.0.1".parse().unwrap()));
        let bad = Settings {
            trusted_proxies: Some(vec!["proxy.internal".into()]),
            ..Settings::default()
        };
        let error = bad.resolve().unwrap_err().to_string();
        assert!(error.contains("trusted_proxies"), "{error}");
        assert!(
            Settings::default()
                .resolve()
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
    }

    #[test]
    fn the_default_public_url_names_the_host_and_the_bound_port() {
        let local = |listen: &str| Settings {
            listen: Some(listen.parse().unwrap()),
            ..Settings::default()
        };
        let config = local("127.0.0.1:8080").resolve().unwrap();
        assert_eq!(config.public_url, "http://localhost:8080");
        let config = local("0.0.0.0:8080").resolve().unwrap();
        assert_eq!(config.public_url, "http://0.0.0.0:8080");
        let any_port = local("127.0.0.1:0").resolve().unwrap();
        let bound = any_port.bound_to("127.0.0.1:41234".parse().unwrap());
        assert_eq!(bound.public_url, "http://localhost:41234");
        let named = Settings {
            public_url: Some("https://id.example.com/".into()),
            ..local("127.0.0.1:0")
        };
        let bound = named
            .resolve()
            .unwrap()
            .bound_to("127.0.0.1:41234".parse().unwrap());
        assert_eq!(bound.public_url, "https://id.example.com");
    }
}
