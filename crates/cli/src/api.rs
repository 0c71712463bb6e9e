//! A small client of the Portcullis REST API for the admin commands.

use std::path::Path;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::Connection;

pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// The default credential for a newcomer: the bootstrap key the first start wrote.
const DEFAULT_KEY_FILE: &str = "data/bootstrap-credential";

impl Api {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let key = match (&connection.api_key, &connection.api_key_file) {
            (Some(key), _) => key.clone(),
            (None, Some(file)) => read_key(file)?,
            (None, None) if Path::new(DEFAULT_KEY_FILE).exists() => {
                read_key(Path::new(DEFAULT_KEY_FILE))?
            }
            (None, None) => bail!(
                "no API key: pass --api-key, set PORTCULLIS_API_KEY, or point --api-key-file at a file holding one"
            ),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("portcullis-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            base: connection.url.trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    /// Sends a request and returns the JSON answer (`Null` for 204), or the server's problem
    /// description as the error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key)
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
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = response.text().await.context("cannot read the response")?;
        if status.is_success() {
            return serde_json::from_str(&text).with_context(|| {
                format!("the server answered {status} with something that is not JSON")
            });
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(problem) => {
                let detail = problem["detail"].as_str().unwrap_or("no detail given");
                bail!("{method} {path} failed with {status}: {detail}")
            }
            Err(_) => bail!("{method} {path} failed with {status}"),
        }
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
