//! `portcullis login` and `logout`: a person signs the command line in to a tenant through the
//! tenant's built-in command-line client: in the browser of this machine, which hands the code
//! back to a port the command listens on (RFC 8252 loopback redirect, with PKCE), or with the
//! device authorization grant (RFC 8628), approving a code on the sign-in pages in any browser. The tokens are kept in a file only
//! its owner can read, refreshed when they run out, and revoked at logout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Connection;

/// The grant a device redeems its code with (RFC 8628 §3.4).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Refresh this long before the access token runs out, so no request carries a dying one.
const REFRESH_MARGIN_SECONDS: i64 = 30;

/// How a person signs the command line in.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// The browser here when one can be opened (a desktop session, not over SSH), else a code.
    #[default]
    Auto,
    /// Open the browser of this machine; it hands the sign-in back to the command.
    Browser,
    /// Show a code to approve in a browser on any device.
    Device,
}

impl Flow {
    /// What `Auto` means here and now.
    fn resolve(self) -> Flow {
        if self != Flow::Auto {
            return self;
        }
        let remote =
            std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some();
        let desktop = std::env::var_os("BROWSER").is_some()
            || cfg!(any(target_os = "macos", target_os = "windows"))
            || std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some();
        if desktop && !remote {
            Flow::Browser
        } else {
            Flow::Device
        }
    }
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The tenant to sign in to (its name, as in `/t/{tenant}/sign-in`).
    #[arg(long, default_value = "operator")]
    pub tenant: String,
    /// How to sign in: `browser` opens this machine's browser (`$BROWSER` if set), `device`
    /// prints a code to approve anywhere, `auto` picks.
    #[arg(long = "with", value_enum, default_value_t = Flow::Auto)]
    pub flow: Flow,
}

/// A signed-in command line, as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub url: String,
    pub tenant: String,
    pub client_id: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token runs out (Unix seconds).
    pub expires_at: i64,
    /// How the person signed in; a step-up signs in the same way.
    #[serde(default = "device_flow")]
    pub flow: Flow,
}

fn device_flow() -> Flow {
    Flow::Device
}

/// Where the login is kept: `$PORTCULLIS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/portcullis`, else
/// `~/.config/portcullis`; the file is `login.json`.
pub fn login_file() -> Option<PathBuf> {
    let dir = std::env::var_os("PORTCULLIS_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("portcullis"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/portcullis"))
        })?;
    Some(dir.join("login.json"))
}

impl Login {
    /// The login kept for the server at `url`, if there is one.
    pub fn load(url: &str) -> anyhow::Result<Option<(Login, PathBuf)>> {
        let Some(path) = login_file() else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let login: Login = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a login this version understands; delete it and run `portcullis login`",
                path.display()
            )
        })?;
        Ok((login.url == url).then_some((login, path)))
    }

    /// Writes the login where only its owner can read it: a new file with mode 0600 in a 0700
    /// directory, renamed over the old one, so a crash never leaves half a file.
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let dir = path.parent().context("the login file has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", dir.display()))?;
        }
        let text = serde_json::to_vec_pretty(self)?;
        let staged = dir.join(".login.json.new");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        {
            use std::io::Write;
            let mut file = options
                .open(&staged)
                .with_context(|| format!("cannot write {}", staged.display()))?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&staged, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Whether the access token is about to run out.
    pub fn stale(&self) -> bool {
        time::OffsetDateTime::now_utc().unix_timestamp() >= self.expires_at - REFRESH_MARGIN_SECONDS
    }

    /// Trades the refresh token for new tokens (they rotate at every use) and keeps them.
    pub async fn refresh(
        &mut self,
        http: &reqwest::Client,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let Some(refresh_token) = self.refresh_token.clone() else {
            bail!(
                "your sign-in has run out; run `portcullis login --tenant {}` again",
                self.tenant
            );
        };
        let answer = post_form(
            http,
            &self.token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", &self.client_id),
            ],
        )
        .await?;
        match answer {
            Ok(tokens) => {
                self.take(&tokens)?;
                self.save(path)
            }
            Err(error) => bail!(
                "your sign-in has ended ({}); run `portcullis login --tenant {}` again",
                error.description,
                self.tenant
            ),
        }
    }

    fn take(&mut self, tokens: &Value) -> anyhow::Result<()> {
        self.access_token = tokens["access_token"]
            .as_str()
            .context("the token endpoint answered without an access token")?
            .to_owned();
        if let Some(refresh) = tokens["refresh_token"].as_str() {
            self.refresh_token = Some(refresh.to_owned());
        }
        let lifetime = tokens["expires_in"].as_i64().unwrap_or(60);
        self.expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + lifetime;
        Ok(())
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
struct OAuthError {
    code: String,
    description: String,
}

/// POSTs a form; the JSON answer, or the OAuth error it carried.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<Result<Value, OAuthError>> {
    let response = http
        .post(url)
        .form(form)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}: is the server running?"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{url} answered {status} with something that is not JSON"))?;
    if status.is_success() {
        return Ok(Ok(body));
    }
    Ok(Err(OAuthError {
        code: body["error"].as_str().unwrap_or("").to_owned(),
        description: body["error_description"]
            .as_str()
            .unwrap_or("no description")
            .to_owned(),
    }))
}

fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("portcullis-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}

/// What an API asked a person's sign-in to prove (RFC 9470's `insufficient_user_authentication`
/// challenge): passed on to the device sign-in as `acr_values` and `max_age`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUp {
    pub acr_values: Option<String>,
    pub max_age: Option<String>,
}

impl StepUp {
    /// The step-up a `WWW-Authenticate` challenge asks for, if it is RFC 9470's.
    pub fn from_challenge(challenge: &str) -> Option<StepUp> {
        let params = auth_params(challenge.strip_prefix("Bearer")?);
        let value = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        (value("error").as_deref() == Some("insufficient_user_authentication")).then(|| StepUp {
            acr_values: value("acr_values"),
            max_age: value("max_age"),
        })
    }
}

/// The `name=value` parameters of a challenge (RFC 9110 §11.2), values quoted or not.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        params.push((name, value));
        rest = remainder.trim_start().trim_start_matches(',');
    }
    params
}

/// Signs a person in to `tenant` at `url` through the tenant's command-line client, the way
/// `flow` says, asking for `step_up` if given, and returns the login (not yet saved).
async fn sign_in(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    step_up: Option<&StepUp>,
    flow: Flow,
) -> anyhow::Result<Login> {
    let discovery_url = format!("{url}/t/{tenant}/.well-known/openid-configuration");
    let response = http.get(&discovery_url).send().await.with_context(|| {
        format!(
            "cannot reach {url}: is the server running, and is --url (or PORTCULLIS_URL) right?"
        )
    })?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        bail!("{url} has no active tenant named {tenant:?}");
    }
    let discovery: Value = response
        .error_for_status()
        .with_context(|| format!("{discovery_url} failed"))?
        .json()
        .await
        .context("the discovery document is not JSON")?;
    let field = |name: &str| -> anyhow::Result<String> {
        discovery[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the server's discovery document has no {name}: is it a Portcullis server of this version?"))
    };
    let client_id = field("portcullis_cli_client_id")?;
    let token_endpoint = field("token_endpoint")?;
    let resource = field("portcullis_admin_api_resource")?;
    let mut form = vec![
        ("client_id", client_id.as_str()),
        ("scope", "openid profile"),
        ("resource", resource.as_str()),
    ];
    if let Some(step_up) = step_up {
        if let Some(acr_values) = &step_up.acr_values {
            form.push(("acr_values", acr_values));
        }
        if let Some(max_age) = &step_up.max_age {
            form.push(("max_age", max_age));
        }
    }
    let flow = flow.resolve();
    let tokens = if flow == Flow::Browser {
        let endpoints = (field("authorization_endpoint")?, token_endpoint.as_str());
        loopback(http, endpoints, &form).await?
    } else {
        device(
            http,
            &field("device_authorization_endpoint")?,
            &token_endpoint,
            &form,
        )
        .await?
    };
    let mut login = Login {
        url: url.to_owned(),
        tenant: tenant.to_owned(),
        client_id,
        token_endpoint,
        revocation_endpoint: field("revocation_endpoint")?,
        access_token: String::new(),
        refresh_token: None,
        expires_at: 0,
        flow,
    };
    login.take(&tokens)?;
    Ok(login)
}

/// The device grant: prints the code to approve, polls until it is answered. The tokens.
async fn device(
    http: &reqwest::Client,
    device_authorization_endpoint: &str,
    token_endpoint: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let client_id = param(form, "client_id");
    let started = post_form(http, device_authorization_endpoint, form)
        .await?
        .map_err(|e| anyhow::anyhow!("the server refused to start a sign-in: {}", e.description))?;
    let text = |name: &str| started[name].as_str().unwrap_or_default().to_owned();
    let device_code = text("device_code");
    eprintln!(
        "To sign in, open this page in a browser (on any device):\n\n    {}\n\nor go to {} and enter the code {}.\nWaiting for you to approve it there…",
        text("verification_uri_complete"),
        text("verification_uri"),
        text("user_code"),
    );
    let mut interval = started["interval"].as_u64().unwrap_or(5);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let answer = post_form(
            http,
            token_endpoint,
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", &device_code),
                ("client_id", client_id),
            ],
        )
        .await?;
        match answer {
            Ok(tokens) => return Ok(tokens),
            Err(e) if e.code == "authorization_pending" => {}
            Err(e) if e.code == "slow_down" => interval += 5,
            Err(e) if e.code == "access_denied" => {
                bail!("the sign-in was denied on the page; nothing was saved")
            }
            Err(e) if e.code == "expired_token" => {
                bail!("the code expired before it was approved; run `portcullis login` again")
            }
            Err(e) => bail!("the sign-in failed: {} ({})", e.description, e.code),
        }
    }
}

/// The value of `name` in a request's parameters (empty if absent).
fn param<'a>(form: &[(&str, &'a str)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| *k == name)
        .map_or("", |(_, v)| *v)
}

/// How long the command waits for the browser to come back.
const BROWSER_WAIT: Duration = Duration::from_secs(10 * 60);

/// The loopback redirect (RFC 8252 §7.3) with PKCE (RFC 7636): listens on a port of 127.0.0.1
/// the system picks, opens the authorization endpoint in the browser, and takes the code the
/// browser brings back (checking `state`, so no other page can plant one), then redeems it with
/// the verifier only this process knows. The tokens.
async fn loopback(
    http: &reqwest::Client,
    (authorization_endpoint, token_endpoint): (String, &str),
    form: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1 for the browser to come back; try --with device")?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let verifier = portcullis_core::session::new_session_token()?;
    let state = portcullis_core::session::new_session_token()?;
    let mut authorize = reqwest::Url::parse(&authorization_endpoint)
        .context("the discovery document's authorization_endpoint is not a URL")?;
    authorize
        .query_pairs_mut()
        .extend_pairs(form)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("state", &state)
        .append_pair(
            "code_challenge",
            &portcullis_core::authorize::pkce_challenge(&verifier),
        )
        .append_pair("code_challenge_method", "S256");
    eprintln!(
        "Opening your browser to sign in. If it does not open, go to:\n\n    {authorize}\n\nWaiting for you to sign in there…"
    );
    open_browser(authorize.as_str());
    let code = tokio::time::timeout(BROWSER_WAIT, browser_answer(&listener, &state))
        .await
        .map_err(|_| {
            anyhow::anyhow!("no answer from the browser within 10 minutes; run `portcullis login` again, or `--with device`")
        })??;
    let client_id = param(form, "client_id");
    let resource = param(form, "resource");
    post_form(
        http,
        token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
            ("resource", resource),
        ],
    )
    .await?
    .map_err(|e| anyhow::anyhow!("the sign-in failed: {} ({})", e.description, e.code))
}

/// Opens `url` in the browser: `$BROWSER` if set (a command, given the URL), else the
/// system's opener. A failure is not an error: the URL is printed too.
fn open_browser(url: &str) {
    let mut command = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => {
            let mut words = browser.split_whitespace();
            let mut command = std::process::Command::new(words.next().unwrap_or_default());
            command.args(words);
            command
        }
        _ if cfg!(target_os = "macos") => std::process::Command::new("open"),
        _ if cfg!(target_os = "windows") => {
            let mut command = std::process::Command::new("cmd");
            command.args(["/C", "start", ""]);
            command
        }
        _ => std::process::Command::new("xdg-open"),
    };
    let opened = command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(error) = opened {
        eprintln!("(could not open a browser: {error})");
    }
}

/// Waits for the browser's request to `/callback` carrying our `state`: its code, or the
/// error the authorization server sent. Anything else (another path, another state, junk) is
/// answered and ignored.
async fn browser_answer(listener: &tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut head = Vec::with_capacity(1024);
        let mut buffer = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buffer[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let answer = reqwest::Url::parse(&format!("http://127.0.0.1{target}"))
            .ok()
            .filter(|u| u.path() == "/callback")
            .map(|u| {
                u.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<std::collections::HashMap<_, _>>()
            });
        let (status, message, outcome) = match answer {
            Some(params) if params.get("state").map(String::as_str) == Some(state) => {
                match (params.get("code"), params.get("error")) {
                    (Some(code), None) => (
                        "200 OK",
                        "You are signed in. You can close this tab and go back to the terminal.",
                        Some(Ok(code.clone())),
                    ),
                    (_, error) => (
                        "200 OK",
                        "The sign-in did not complete. Go back to the terminal to see why.",
                        Some(Err(anyhow::anyhow!(
                            "the sign-in did not complete: {} ({})",
                            params
                                .get("error_description")
                                .map_or("no description", String::as_str),
                            error.map_or("no error code", String::as_str)
                        ))),
                    ),
                }
            }
            Some(_) => (
                "400 Bad Request",
                "This answer does not belong to the sign-in the command line started.",
                None,
            ),
            None => ("404 Not Found", "Nothing here.", None),
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>portcullis</title><p>{message}</p></html>"
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'\r\n\
             Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        // The browser may have gone; the answer matters more than telling it.
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

impl Login {
    /// Signs in again as an API asked (a stronger or more recent sign-in), keeps the new
    /// tokens and revokes the old ones.
    pub async fn step_up(
        &mut self,
        http: &reqwest::Client,
        path: &std::path::Path,
        step_up: &StepUp,
    ) -> anyhow::Result<()> {
        let asked = match (&step_up.acr_values, &step_up.max_age) {
            (Some(acr), Some(age)) => format!("a {acr} sign-in within the last {age} seconds"),
            (Some(acr), None) => format!("a {acr} sign-in"),
            (None, Some(age)) => format!("a sign-in within the last {age} seconds"),
            (None, None) => "a new sign-in".to_owned(),
        };
        eprintln!("This needs {asked}.");
        let fresh = sign_in(http, &self.url, &self.tenant, Some(step_up), self.flow).await?;
        let old = std::mem::replace(self, fresh);
        self.save(path)?;
        old.revoke(http).await;
        Ok(())
    }

    /// Revokes the refresh token (and with it the whole grant) and the access token; a token
    /// that cannot be revoked is reported and left to expire.
    async fn revoke(&self, http: &reqwest::Client) {
        let mut revoked = Vec::new();
        if let Some(refresh) = &self.refresh_token {
            revoked.push((refresh.as_str(), "refresh_token"));
        }
        revoked.push((self.access_token.as_str(), "access_token"));
        for (token, hint) in revoked {
            let answer = post_form(
                http,
                &self.revocation_endpoint,
                &[
                    ("token", token),
                    ("token_type_hint", hint),
                    ("client_id", &self.client_id),
                ],
            )
            .await;
            let failed = match answer {
                Ok(Ok(_)) => continue,
                Ok(Err(refused)) => refused.description,
                Err(error) => format!("{error:#}"),
            };
            eprintln!(
                "warning: could not revoke the {hint} ({failed}); it stops working when it expires"
            );
        }
    }
}

pub async fn login(args: LoginArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let url = connection.url.trim_end_matches('/').to_owned();
    let path = login_file().context("no place for the login: set HOME or PORTCULLIS_CONFIG_DIR")?;
    let http = http()?;
    let login = sign_in(&http, &url, &args.tenant, None, args.flow).await?;
    login.save(&path)?;
    let me: Value = http
        .get(format!("{url}/v1/me"))
        .bearer_auth(&login.access_token)
        .send()
        .await?
        .json()
        .await
        .context("cannot read who you are")?;
    println!(
        "Signed in to {} at {url} as {}. Kept in {}; `portcullis logout` ends it.",
        args.tenant,
        me["display"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(connection: &Connection) -> anyhow::Result<ExitCode> {
    let url = connection.url.trim_end_matches('/');
    let Some((login, path)) = Login::load(url)? else {
        println!("Not signed in to {url}: nothing to do.");
        return Ok(ExitCode::SUCCESS);
    };
    // The refresh token first: revoking it revokes the whole sign-in, its access tokens too.
    login.revoke(&http()?).await;
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("Signed out of {} at {url}.", login.tenant);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc_9470_challenges() {
        let challenge = "Bearer realm=\"portcullis\", error=\"insufficient_user_authentication\", \
                         error_description=\"A \\\"stronger\\\", or newer, sign-in\", acr_values=\"mfa\", max_age=900";
        assert_eq!(
            StepUp::from_challenge(challenge),
            Some(StepUp {
                acr_values: Some("mfa".into()),
                max_age: Some("900".into()),
            })
        );
        let recent_only = "Bearer error=insufficient_user_authentication,max_age=60";
        assert_eq!(
            StepUp::from_challenge(recent_only),
            Some(StepUp {
                acr_values: None,
                max_age: Some("60".into()),
            })
        );
        assert_eq!(
            StepUp::from_challenge("Bearer realm=\"portcullis\", error=\"invalid_token\""),
            None
        );
        assert_eq!(StepUp::from_challenge("Basic realm=\"x\""), None);
        assert_eq!(StepUp::from_challenge("Bearer error=\"unterminated"), None);
    }
}
