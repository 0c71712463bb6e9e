//! A small client of the Portcullis REST API for the admin commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::Connection;
use crate::login::{Login, StepUp};

/// A response, read.
struct Answer {
    status: StatusCode,
    text: String,
    /// What the server asked the person's sign-in to prove before it would do this.
    step_up: Option<StepUp>,
    /// The id the server logged the request under (`X-Request-Id`).
    request_id: Option<String>,
}

pub struct Api {
    base: String,
    credential: Credential,
    http: reqwest::Client,
}

/// What the requests carry: an API key, or the access token of a person's `portcullis login`
/// (refreshed when it runs out).
enum Credential {
    Key(String),
    Login(Box<tokio::sync::Mutex<(Login, PathBuf)>>),
}

/// No query parameters.
pub const NO_QUERY: &[(&str, &str)] = &[];
/// No request body.
const NO_BODY: Option<&()> = None;

/// A request body as sent: its type and bytes.
struct Payload {
    content_type: &'static str,
    bytes: Vec<u8>,
}

/// The default credential for a newcomer: the bootstrap key the first start wrote.
const DEFAULT_KEY_FILE: &str = "data/bootstrap-credential";

impl Api {
    /// The credential, in this order: `--api-key`, `--api-key-file`, the login of `portcullis
    /// login` for this server, and the bootstrap key file in the current directory.
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let base = connection.url.trim_end_matches('/').to_owned();
        let credential = match (&connection.api_key, &connection.api_key_file) {
            (Some(key), _) => Credential::Key(key.clone()),
            (None, Some(file)) => Credential::Key(read_key(file)?),
            (None, None) => match Login::load(&base)? {
                Some(login) => Credential::Login(Box::new(tokio::sync::Mutex::new(login))),
                None if Path::new(DEFAULT_KEY_FILE).exists() => {
                    Credential::Key(read_key(Path::new(DEFAULT_KEY_FILE))?)
                }
                None => {
                    let here = std::env::current_dir()
                        .map(|d| d.join(DEFAULT_KEY_FILE).display().to_string())
                        .unwrap_or_else(|_| DEFAULT_KEY_FILE.to_owned());
                    let login = crate::login::login_file()
                        .map_or_else(|| "no login file".to_owned(), |f| f.display().to_string());
                    bail!(
                        "no credential for {base}. Looked for a `portcullis login` of this server in {login} \
                         and for the bootstrap key in {here}; found neither. Sign in with `portcullis login \
                         --tenant TENANT`, run the command in the directory the server was started in, or \
                         give an API key (--api-key, PORTCULLIS_API_KEY or --api-key-file)."
                    )
                }
            },
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("portcullis-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            base,
            credential,
            http,
        })
    }

    /// The bearer credential for the next request, refreshing a login's token if it runs out.
    async fn bearer(&self) -> anyhow::Result<String> {
        match &self.credential {
            Credential::Key(key) => Ok(key.clone()),
            Credential::Login(login) => {
                let mut guard = login.lock().await;
                let (login, path) = &mut *guard;
                if login.stale() {
                    login.refresh(&self.http, path).await?;
                }
                Ok(login.access_token.clone())
            }
        }
    }

    /// Sends a request and returns the JSON answer (`Null` for 204), or the server's problem
    /// description as the error. A person's request that needs a stronger or more recent
    /// sign-in (RFC 9470) runs that sign-in and is sent once more.
    pub async fn call<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &Q,
        body: Option<&B>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        let payload = body
            .map(|body| {
                serde_json::to_vec(body).map(|bytes| Payload {
                    content_type: "application/json",
                    bytes,
                })
            })
            .transpose()
            .context("cannot write the request as JSON")?;
        self.call_with(method, path, query, payload.as_ref(), if_match)
            .await
    }

    /// `POST`s a CSV file.
    pub async fn post_csv<Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let payload = Payload {
            content_type: "text/csv; charset=utf-8",
            bytes,
        };
        self.call_with(Method::POST, path, query, Some(&payload), None)
            .await
    }

    async fn call_with<Q: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &Q,
        body: Option<&Payload>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        let send = || self.send(method.clone(), path, query, body, if_match);
        let mut answer = send().await?;
        if let (Some(step_up), Credential::Login(login)) = (&answer.step_up, &self.credential) {
            {
                let mut guard = login.lock().await;
                let (login, file) = &mut *guard;
                login.step_up(&self.http, file, step_up).await?;
            }
            answer = send().await?;
        }
        let Answer {
            status,
            text,
            request_id,
            ..
        } = answer;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return serde_json::from_str(&text).with_context(|| {
                format!("the server answered {status} with something that is not JSON")
            });
        }
        let problem = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let detail = problem["detail"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        let detail = detail.trim_end_matches('.');
        match status {
            StatusCode::UNAUTHORIZED => match &self.credential {
                Credential::Login(login) => {
                    let tenant = login.lock().await.0.tenant.clone();
                    bail!(
                        "your sign-in is no longer accepted ({detail}). Run `portcullis login --tenant {tenant}` again."
                    )
                }
                Credential::Key(_) => bail!(
                    "the server did not accept the API key. Check that it is complete and was not revoked \
                     or has not expired (`portcullis api-key list SERVICE_PRINCIPAL` shows a principal's keys), \
                     or sign in as yourself with `portcullis login`."
                ),
            },
            StatusCode::FORBIDDEN => bail!(
                "not allowed: {detail}. `portcullis whoami` shows the roles you hold; an administrator can give you one."
            ),
            StatusCode::NOT_FOUND => bail!("not found: {detail}."),
            StatusCode::TOO_MANY_REQUESTS => {
                bail!("too many attempts: {detail}. Wait, then try again.")
            }
            status if status.is_server_error() => bail!(
                "the server could not do it ({detail}). Try again; if it persists, its log has the cause \
                 (request id {}).",
                request_id.as_deref().unwrap_or("unknown")
            ),
            _ => match problem["field"].as_str() {
                Some(field) if !detail.starts_with(field) => bail!("{field}: {detail}."),
                _ => bail!("{detail}."),
            },
        }
    }

    async fn send<Q: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &Q,
        body: Option<&Payload>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.bearer().await?)
            .query(query);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes.clone());
        }
        if let Some(tag) = if_match {
            request = request.header("if-match", format!("\"{}\"", tag.trim_matches('"')));
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the Portcullis server at {}: is it running (`portcullis serve`), and is \
                 --url (or PORTCULLIS_URL) right?",
                self.base
            )
        })?;
        let status = response.status();
        let step_up = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .filter(|_| status == StatusCode::UNAUTHORIZED)
            .and_then(StepUp::from_challenge);
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.context("cannot read the response")?;
        Ok(Answer {
            status,
            text,
            step_up,
            request_id,
        })
    }

    pub async fn get<Q: Serialize + ?Sized>(&self, path: &str, query: &Q) -> anyhow::Result<Value> {
        self.call(Method::GET, path, query, NO_BODY, None).await
    }

    pub async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> anyhow::Result<Value> {
        self.call(Method::POST, path, NO_QUERY, Some(body), None)
            .await
    }

    /// A `POST` that carries no body: an action on the resource named by the path.
    pub async fn act(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::POST, path, NO_QUERY, NO_BODY, None).await
    }

    pub async fn put<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, NO_QUERY, Some(body), if_match)
            .await
    }

    pub async fn patch<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.call(Method::PATCH, path, NO_QUERY, Some(body), if_match)
            .await
    }

    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, NO_QUERY, NO_BODY, if_match)
            .await
    }
}

fn read_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API key from {}", path.display()))?;
    Ok(text.trim().to_owned())
}
