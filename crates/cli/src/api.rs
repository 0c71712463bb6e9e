//! A small client of the Portcullis REST API for the admin commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::Connection;
use crate::login::{Login, StepUp};

/// A response, read.
struct Answer {
    status: StatusCode,
    text: String,
    /// What the server asked the person's sign-in to prove before it would do this.
    step_up: Option<StepUp>,
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
                None => bail!(
                    "no credential for {base}: sign in with `portcullis login --tenant TENANT`, or give an API key \
                     (--api-key, PORTCULLIS_API_KEY, or --api-key-file); {DEFAULT_KEY_FILE} is not in this directory"
                ),
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
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
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
        let Answer { status, text, .. } = answer;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return serde_json::from_str(&text).with_context(|| {
                format!("the server answered {status} with something that is not JSON")
            });
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(problem) => {
                let detail = problem["detail"].as_str().unwrap_or("no detail given");
                if status == StatusCode::UNAUTHORIZED
                    && let Credential::Login(login) = &self.credential
                {
                    let tenant = login.lock().await.0.tenant.clone();
                    bail!(
                        "your sign-in is no longer accepted ({detail}); run `portcullis login --tenant {tenant}` again"
                    )
                }
                bail!("{method} {path} failed with {status}: {detail}")
            }
            Err(_) => bail!("{method} {path} failed with {status}"),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.bearer().await?)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(tag) = if_match {
            request = request.header("if-match", format!("\"{}\"", tag.trim_matches('"')));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let step_up = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .filter(|_| status == StatusCode::UNAUTHORIZED)
            .and_then(StepUp::from_challenge);
        let text = response.text().await.context("cannot read the response")?;
        Ok(Answer {
            status,
            text,
            step_up,
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(Method::GET, path, query, None, None).await
    }
}

fn read_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API key from {}", path.display()))?;
    Ok(text.trim().to_owned())
}
