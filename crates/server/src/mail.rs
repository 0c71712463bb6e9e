//! Mail: the SMTP settings, the words of each message, and the sender that delivers the
//! outbox. Messages are posted by the store in the transaction of the change they tell of;
//! the sender claims due ones, writes them in the tenant's name, hands them to the SMTP
//! server over TLS, and tries again later when that fails.

use std::path::PathBuf;
use std::time::Duration;

use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use portcullis_core::audit::{Actor, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::branding::Logo;
use portcullis_core::mail::{LinkPurpose, MailKind, Notice};
use portcullis_store::{MailedLink, NewLink, QueuedMail, StoreError, WriteContext};

use crate::config::ConfigError;
use crate::state::AppState;

/// The SMTP settings as given.
pub struct SmtpSettings {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// TLS from the first byte (port 465).
    Implicit,
    /// STARTTLS, refusing a server that does not offer it (port 587).
    StartTls,
    /// In the clear: development only.
    None,
}

/// How mail is delivered, checked at start.
#[derive(Debug)]
pub struct MailSettings {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, SecretString)>,
    ca_pem: Option<Vec<u8>>,
    from: Mailbox,
}

impl MailSettings {
    /// `None` without an SMTP URL; an error naming the setting for anything unusable.
    pub fn resolve(given: SmtpSettings, production: bool) -> Result<Option<Self>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid(message);
        let Some(url) = given.url else {
            if given.from.is_some() || given.user.is_some() {
                return Err(invalid(
                    "mail_from and smtp_user need smtp_url, the SMTP server to send through".into(),
                ));
            }
            return Ok(None);
        };
        let parsed = url::Url::parse(&url).map_err(|e| {
            invalid(format!(
                "smtp_url is not a URL ({e}): use smtps://HOST or smtp://HOST"
            ))
        })?;
        let plain = parsed.query_pairs().any(|(k, v)| k == "tls" && v == "none");
        let (security, default_port) = match (parsed.scheme(), plain) {
            ("smtps", false) => (Security::Implicit, 465),
            ("smtp", false) => (Security::StartTls, 587),
            ("smtp", true) => (Security::None, 25),
            _ => {
                return Err(invalid(
                    "smtp_url must be smtps://HOST[:PORT] (TLS) or smtp://HOST[:PORT] (STARTTLS)"
                        .into(),
                ));
            }
        };
        if security == Security::None && production {
            return Err(invalid(
                "smtp_url with tls=none sends passwords and links in the clear: not in production mode".into(),
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "put the SMTP user in smtp_user and the password in PORTCULLIS_SMTP_PASSWORD or smtp_password_file, not in smtp_url".into(),
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("smtp_url names no host".into()))?
            .to_owned();
        let password = match std::env::var("PORTCULLIS_SMTP_PASSWORD") {
            Ok(password) => Some(password),
            Err(_) => given
                .password_file
                .as_ref()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                        .map_err(|e| {
                            invalid(format!(
                                "cannot read smtp_password_file {}: {e}",
                                path.display()
                            ))
                        })
                })
                .transpose()?,
        };
        let credentials = match (given.user, password) {
            (Some(user), Some(password)) => Some((user, SecretString::from(password))),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "smtp_user and the SMTP password go together: give both or neither".into(),
                ));
            }
        };
        let ca_pem = given
            .ca_file
            .as_ref()
            .map(|path| {
                let pem = std::fs::read(path).map_err(|e| {
                    invalid(format!("cannot read smtp_ca_file {}: {e}", path.display()))
                })?;
                Certificate::from_pem(&pem).map_err(|e| {
                    invalid(format!(
                        "smtp_ca_file {} is not a PEM certificate: {e}",
                        path.display()
                    ))
                })?;
                Ok::<_, ConfigError>(pem)
            })
            .transpose()?;
        let from: Mailbox = given
            .from
            .ok_or_else(|| {
                invalid("mail_from is required with smtp_url: the address mail comes from".into())
            })?
            .parse()
            .map_err(|e| {
                invalid(format!(
                    "mail_from is not an address or \"Name <address>\": {e}"
                ))
            })?;
        Ok(Some(Self {
            host,
            port: parsed.port().unwrap_or(default_port),
            security,
            credentials,
            ca_pem,
            from,
        }))
    }

    /// The connection to the SMTP server (opened per message).
    pub fn transport(
        &self,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let tls = || {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                params = params.add_root_certificate(Certificate::from_pem(pem)?);
            }
            params.build_rustls()
        };
        // "Dangerous" only in that it starts without TLS: the TLS mode is set just below.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(CONNECTION_TIMEOUT));
        builder = match self.security {
            Security::Implicit => builder.tls(Tls::Wrapper(tls()?)),
            Security::StartTls => builder.tls(Tls::Required(tls()?)),
            Security::None => builder.tls(Tls::None),
        };
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(builder.build())
    }

    /// Where mail goes, for the start-up log: never the password.
    pub fn describe(&self) -> String {
        let security = match self.security {
            Security::Implicit => "TLS",
            Security::StartTls => "STARTTLS",
            Security::None => "no TLS",
        };
        format!("{}:{} ({security})", self.host, self.port)
    }
}

/// The key-encryption key context a message's link is sealed under: a sealed link moved to
/// another user's or tenant's row does not open.
pub fn link_context(
    tenant_id: portcullis_core::TenantId,
    user_id: portcullis_core::UserId,
) -> String {
    format!("mail-link:{tenant_id}:{user_id}")
}

/// Seals a link for the outbox.
pub fn seal_link(
    state: &AppState,
    tenant_id: portcullis_core::TenantId,
    user_id: portcullis_core::UserId,
    link: &str,
) -> Result<String, portcullis_core::secrets::SecretError> {
    let sealed = state
        .kek
        .seal(&link_context(tenant_id, user_id), link.as_bytes())?;
    Ok(STANDARD.encode(sealed))
}

/// A link created for a user: its address when it is to be shown, and what the store did.
pub struct IssuedLink {
    /// The link itself, unless it was mailed.
    pub url: Option<String>,
    pub expires_at: time::OffsetDateTime,
    pub created: portcullis_store::CreatedLink,
}

/// The page a link of `purpose` opens.
fn link_path(purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::Enrol => "enrol",
        LinkPurpose::Reset => "reset",
        LinkPurpose::Verify => "verify-email",
    }
}

/// Creates a single-use link of `purpose` for `user_id`, working for `hours`, and mails it to
/// the user's address in the same transaction (`send`) or returns it to be shown.
pub async fn issue_link(
    state: &AppState,
    ctx: &WriteContext,
    tenant: &str,
    (user_id, purpose): (portcullis_core::UserId, LinkPurpose),
    hours: u32,
    send: bool,
) -> Result<IssuedLink, crate::error::ApiError> {
    let internal =
        |e: portcullis_core::secrets::SecretError| crate::error::ApiError::Internal(e.to_string());
    let token = portcullis_core::session::new_session_token().map_err(internal)?;
    let url = format!(
        "{}/t/{tenant}/{}?token={token}",
        state.config.public_url,
        link_path(purpose)
    );
    let expires_at = ctx.now + time::Duration::hours(i64::from(hours));
    let mail = if send {
        Some(MailedLink {
            sealed_link: seal_link(state, ctx.tenant_id, user_id, &url).map_err(internal)?,
            params: serde_json::json!({ "expires_in_hours": hours }),
        })
    } else {
        None
    };
    let created = state
        .store
        .create_link(
            ctx,
            NewLink {
                user_id,
                purpose,
                token_hash: crate::pages::token_hash(state, &token),
                expires_at,
                mail,
            },
        )
        .await?;
    Ok(IssuedLink {
        url: (!send).then_some(url),
        expires_at,
        created,
    })
}

/// A message in words, rendered as plain text and HTML.
#[derive(Template)]
#[template(path = "mail/letter.txt")]
struct TextLetter<'a> {
    words: &'a Words,
}

#[derive(Template)]
#[template(path = "mail/letter.html")]
struct HtmlLetter<'a> {
    words: &'a Words,
    /// The tenant's brand colour for the button, or the default.
    colour: String,
    /// Whether the tenant's logo goes with the message (as the inline part `logo`).
    logo: bool,
}

/// What one message says.
struct Words {
    brand: String,
    subject: String,
    lines: Vec<String>,
    /// The button and its link.
    action: Option<(String, String)>,
    after: Vec<String>,
}

fn expiry(params: &Value) -> String {
    params
        .get("expires_in_hours")
        .and_then(Value::as_u64)
        .map(|hours| match hours {
            1 => "one hour".to_owned(),
            h if h % 24 == 0 && h > 24 => format!("{} days", h / 24),
            h => format!("{h} hours"),
        })
        .unwrap_or_else(|| "a limited time".into())
}

/// The words of a message of `kind` to `user_name` of `brand`.
fn words(
    mail: &QueuedMail,
    brand: &str,
    user_name: &str,
    link: Option<String>,
) -> Result<Words, String> {
    let params = &mail.params;
    let needs_link = || {
        link.clone()
            .ok_or_else(|| "the message's link is missing".to_owned())
    };
    let ignore = "If you did not expect this message, you can ignore it: nothing changes unless the link is used.";
    let (subject, lines, action, after) = match mail.kind {
        MailKind::Invitation => (
            format!("Your {brand} account is ready"),
            vec![
                format!("An account named {user_name} was created for you at {brand}."),
                format!(
                    "Choose your password with the link below. It works once, for {}.",
                    expiry(params)
                ),
            ],
            Some(("Choose my password".to_owned(), needs_link()?)),
            vec![ignore.to_owned()],
        ),
        MailKind::PasswordReset => (
            format!("Reset your {brand} password"),
            vec![
                format!(
                    "Someone asked to reset the password of your account {user_name} at {brand}."
                ),
                format!(
                    "If it was you, choose a new password with the link below. It works once, for {}. Your other sessions will be signed out.",
                    expiry(params)
                ),
            ],
            Some(("Choose a new password".to_owned(), needs_link()?)),
            vec![
                "If it was not you, ignore this message: your password stays as it is.".to_owned(),
            ],
        ),
        MailKind::AddressVerification => (
            format!("Confirm your e-mail address for {brand}"),
            vec![format!(
                "Confirm that this address belongs to your account {user_name} at {brand}. The link works once, for {}.",
                expiry(params)
            )],
            Some(("Confirm my address".to_owned(), needs_link()?)),
            vec![ignore.to_owned()],
        ),
        MailKind::PasswordChanged | MailKind::MethodAdded | MailKind::MethodRemoved => {
            let notice: Notice = serde_json::from_value(params.clone())
                .map_err(|e| format!("the notice is not readable: {e}"))?;
            let method = notice.method.clone().unwrap_or_default();
            let (subject, what) = match mail.kind {
                MailKind::PasswordChanged => (
                    format!("Your {brand} password was changed"),
                    format!("The password of your account {user_name} was changed"),
                ),
                MailKind::MethodAdded => (
                    format!("A sign-in method was added to your {brand} account"),
                    format!(
                        "{} was added to your account {user_name}",
                        capitalised(&method)
                    ),
                ),
                _ => (
                    format!("A sign-in method was removed from your {brand} account"),
                    format!(
                        "{} was removed from your account {user_name}",
                        capitalised(&method)
                    ),
                ),
            };
            let who = if notice.by_self {
                "by you (signed in as yourself)"
            } else {
                "by an administrator"
            };
            let when = notice
                .at
                .format(&time::format_description::well_known::Rfc2822)
                .unwrap_or_default();
            let mut lines = vec![format!("{what} {who}, on {when}.")];
            if let Some(device) = &notice.device {
                lines.push(format!(
                    "From: {device}{}",
                    notice
                        .source_ip
                        .as_deref()
                        .map(|ip| format!(", address {ip}"))
                        .unwrap_or_default()
                ));
            }
            (
                subject,
                lines,
                None,
                vec![format!(
                    "If this was not you or someone you expected, contact your administrator at once: someone else may be able to sign in as you."
                )],
            )
        }
    };
    Ok(Words {
        brand: brand.to_owned(),
        subject,
        lines,
        action,
        after,
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Why a message was not delivered, and whether to try again.
#[derive(Debug, thiserror::Error)]
enum Undelivered {
    /// The SMTP server may take it later (unreachable, busy, a 4xx reply).
    #[error("{0}")]
    Transient(String),
    /// It can never go (a 5xx reply, an address the server refuses, a link that no longer opens).
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The button colour of a tenant without branding: the design system's primary.
const DEFAULT_BUTTON_COLOUR: &str = "#0b57d0";

/// The HTML part, with the tenant's logo beside it as an inline image it refers to by
/// `cid:logo` (mail readers do not fetch images from the server, and should not).
fn html_part(html: String, logo: Option<Logo>) -> Result<MultiPart, Undelivered> {
    let html = SinglePart::builder()
        .header(ContentType::TEXT_HTML)
        .body(html);
    let Some(logo) = logo else {
        return Ok(MultiPart::related().singlepart(html));
    };
    let kind = ContentType::parse(logo.media_type.as_str())
        .map_err(|e| Undelivered::Permanent(format!("the logo's type: {e}")))?;
    Ok(MultiPart::related()
        .singlepart(html)
        .singlepart(Attachment::new_inline("logo".into()).body(logo.bytes, kind)))
}

/// Builds the message of one queued mail.
async fn compose(
    state: &AppState,
    settings: &MailSettings,
    mail: &QueuedMail,
) -> Result<Message, Undelivered> {
    let gone = |e: StoreError| match e {
        StoreError::NotFound => {
            Undelivered::Permanent("the user or tenant no longer exists".into())
        }
        other => Undelivered::Store(other),
    };
    let tenant = state.store.tenant(mail.tenant_id).await.map_err(gone)?;
    let user = state
        .store
        .user(mail.tenant_id, mail.user_id)
        .await
        .map_err(gone)?;
    let link = mail
        .sealed_link
        .as_deref()
        .map(|sealed| {
            let bytes = STANDARD
                .decode(sealed)
                .map_err(|_| Undelivered::Permanent("the sealed link is not base64".into()))?;
            let opened = state
                .kek
                .open(&link_context(mail.tenant_id, mail.user_id), &bytes)
                .map_err(|e| Undelivered::Permanent(e.to_string()))?;
            String::from_utf8(opened.expose_secret().clone())
                .map_err(|_| Undelivered::Permanent("the link is not text".into()))
        })
        .transpose()?;
    let brand = tenant
        .display_name
        .clone()
        .unwrap_or_else(|| tenant.name.clone());
    let words = words(mail, &brand, &user.user_name, link).map_err(Undelivered::Permanent)?;
    let text = TextLetter { words: &words }
        .render()
        .map_err(|e| Undelivered::Permanent(e.to_string()))?;
    let branding = state.store.branding(tenant.id).await?;
    let logo = match branding.logo {
        Some(_) => state
            .store
            .branding_logo(tenant.id)
            .await?
            .map(|(logo, _)| logo),
        None => None,
    };
    let html = HtmlLetter {
        words: &words,
        colour: branding
            .colour
            .map_or_else(|| DEFAULT_BUTTON_COLOUR.to_owned(), |c| c.to_string()),
        logo: logo.is_some(),
    }
    .render()
    .map_err(|e| Undelivered::Permanent(e.to_string()))?;
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|e| Undelivered::Permanent(format!("the address is not usable: {e}")))?;
    let from = Mailbox::new(Some(brand.clone()), settings.from.email.clone());
    Message::builder()
        .from(from)
        .to(to)
        .subject(words.subject.clone())
        .message_id(Some(format!("<{}@portcullis>", mail.id)))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .multipart(html_part(html, logo)?),
        )
        .map_err(|e| Undelivered::Permanent(e.to_string()))
}

/// How long to wait after a failed attempt: a minute, then longer, for about a day in all.
const RETRY_AFTER: [u64; 7] = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600];
/// How long a node holds a claimed batch before another may take it over: longer than the
/// batch can take with every connection timing out, so no message is sent twice at once.
const LEASE: time::Duration = time::Duration::minutes(10);
const BATCH: u32 = 10;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the outbox is looked at when nothing wakes the sender (another node posted).
const POLL: Duration = Duration::from_secs(5);

async fn deliver(
    state: &AppState,
    settings: &MailSettings,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mail: &QueuedMail,
) -> Result<(), Undelivered> {
    let message = compose(state, settings, mail).await?;
    transport.send(message).await.map_err(|e| {
        let reason = e.to_string();
        if e.is_permanent() {
            Undelivered::Permanent(reason)
        } else {
            Undelivered::Transient(reason)
        }
    })?;
    Ok(())
}

/// Delivers what is due now; returns how many were claimed.
pub async fn send_due(
    state: &AppState,
    settings: &MailSettings,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let due = state.store.claim_mail(now, LEASE, BATCH).await?;
    for mail in &due {
        let outcome = deliver(state, settings, transport, mail).await;
        let kind = mail.kind.as_str();
        let (result, reason) = match outcome {
            Ok(()) => {
                state
                    .store
                    .mail_delivered(&mail.id, state.clock.now())
                    .await?;
                ("sent", None)
            }
            Err(Undelivered::Store(error)) => return Err(error),
            Err(Undelivered::Transient(reason)) => {
                let wait = usize::try_from(mail.attempts - 1)
                    .ok()
                    .and_then(|i| RETRY_AFTER.get(i));
                let retry_at = wait.map(|s| state.clock.now() + time::Duration::seconds(*s as i64));
                state.store.mail_failed(&mail.id, &reason, retry_at).await?;
                (
                    if retry_at.is_some() {
                        "deferred"
                    } else {
                        "failed"
                    },
                    Some(reason),
                )
            }
            Err(Undelivered::Permanent(reason)) => {
                state.store.mail_failed(&mail.id, &reason, None).await?;
                ("failed", Some(reason))
            }
        };
        metrics::counter!("portcullis_mail_total", "kind" => kind, "result" => result).increment(1);
        if result != "deferred" {
            record(state, mail, result, reason).await?;
        }
    }
    Ok(due.len())
}

/// The audit trail learns of each message delivered or given up on: to whom, of what kind.
async fn record(
    state: &AppState,
    mail: &QueuedMail,
    result: &str,
    reason: Option<String>,
) -> Result<(), StoreError> {
    if result != "sent" {
        tracing::warn!(
            kind = mail.kind.as_str(),
            attempts = mail.attempts,
            reason = reason.as_deref().unwrap_or(""),
            "mail not delivered"
        );
    }
    let event = NewAuditEvent {
        tenant_id: mail.tenant_id,
        at: state.clock.now(),
        actor: Actor::system(),
        action: "mail.send".into(),
        target: Some(Target::new("user", mail.user_id)),
        outcome: if result == "sent" {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        reason,
        origin: Origin::default(),
        details: serde_json::json!({
            "kind": mail.kind.as_str(),
            "recipient": mail.recipient,
            "attempts": mail.attempts,
        }),
    };
    state.audit.append(event).await?;
    Ok(())
}

/// The sender: runs on every node while the server runs, woken when this node posts a
/// message and every few seconds for other nodes' messages and retries.
pub async fn run(state: AppState, settings: std::sync::Arc<MailSettings>) {
    let transport = match settings.transport() {
        Ok(transport) => transport,
        Err(error) => {
            tracing::error!(%error, "mail cannot be sent: the SMTP settings are unusable");
            return;
        }
    };
    loop {
        match send_due(&state, &settings, &transport).await {
            // A full batch: there may be more waiting.
            Ok(claimed) if claimed == BATCH as usize => continue,
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the outbox could not be read"),
        }
        tokio::select! {
            () = state.store.mail_posted() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
