//! Boots a real Portcullis server for one test: on a random port, over a temporary SQLite file,
//! or — when PORTCULLIS_TEST_DATABASE_URL is set — over a fresh PostgreSQL database of its own.

use std::net::SocketAddr;
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::oneshot;

use portcullis_server::{Server, Settings};
use portcullis_store::scratch::ScratchDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A database for one test, removed when the test ends.
pub struct TestDatabase {
    pub url: String,
    scratch: Option<ScratchDatabase>,
}

impl TestDatabase {
    /// SQLite unless PORTCULLIS_TEST_DATABASE_URL names a PostgreSQL server. A variable that is
    /// set but empty is a broken CI setup, not a request for SQLite: it fails the test rather
    /// than pass on the wrong store.
    pub async fn new(dir: &std::path::Path) -> Self {
        match std::env::var("PORTCULLIS_TEST_DATABASE_URL") {
            Ok(admin_url) => {
                assert!(
                    !admin_url.is_empty(),
                    "PORTCULLIS_TEST_DATABASE_URL is set but empty: unset it for SQLite, or give a PostgreSQL URL"
                );
                // Each test's database is a copy of one migrated once for the whole run.
                static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
                let template = TEMPLATE
                    .get_or_try_init(|| ScratchDatabase::migrated_template(&admin_url))
                    .await
                    .expect("a migrated template database through PORTCULLIS_TEST_DATABASE_URL");
                let scratch = ScratchDatabase::create_from(&admin_url, template)
                    .await
                    .expect("create a database through PORTCULLIS_TEST_DATABASE_URL");
                TestDatabase {
                    url: scratch.url.clone(),
                    scratch: Some(scratch),
                }
            }
            _ => TestDatabase {
                url: format!("sqlite://{}", dir.join("portcullis.db").display()),
                scratch: None,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.scratch.is_some()
    }

    /// Runs raw SQL against the test database, as an attacker with database access would.
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let result = sqlx::query(sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected());
            pool.close().await;
            result
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await?;
            let result = sqlx::query(sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected());
            pool.close().await;
            result
        }
    }

    /// Every row `sql` returns, each column as the bytes the database hands out (text as UTF-8,
    /// blobs as stored, integers as SQLite's text or PostgreSQL's binary form; `None` for NULL):
    /// what someone holding a copy of the database reads.
    pub async fn raw_rows(&self, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>, sqlx::Error> {
        use sqlx::Row;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let rows = sqlx::query(sql).fetch_all(&pool).await;
            pool.close().await;
            rows?
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get_unchecked::<Option<Vec<u8>>, _>(i))
                        .collect()
                })
                .collect()
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await?;
            let rows = sqlx::query(sql).fetch_all(&pool).await;
            pool.close().await;
            rows?
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get_unchecked::<Option<Vec<u8>>, _>(i))
                        .collect()
                })
                .collect()
        }
    }

    /// Each row of `sql` as its columns' text joined by `|` (`NULL` for NULL). Cast columns that
    /// are not text (`CAST(x AS TEXT)`) for the same answer on both databases.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        self.raw_rows(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|row| {
                row.iter()
                    .map(|column| match column {
                        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        None => "NULL".to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// The names of every table in the database.
    pub async fn tables(&self) -> Vec<String> {
        let sql = if self.is_postgres() {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        };
        self.texts(sql).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(scratch) = self.scratch.take() else {
            return;
        };
        // Drop may run inside the test's runtime, which must not be blocked on; use a thread
        // with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(scratch.drop_database()).ok()
        })
        .join();
    }
}

/// CI names the store each of its passes must run on (PORTCULLIS_TEST_EXPECT_STORE): a pass
/// that silently ran on the other one fails here instead of passing.
#[tokio::test]
async fn the_suite_runs_on_the_store_it_was_asked_for() {
    let Ok(expected) = std::env::var("PORTCULLIS_TEST_EXPECT_STORE") else {
        return;
    };
    assert!(
        matches!(expected.as_str(), "sqlite" | "postgres"),
        "PORTCULLIS_TEST_EXPECT_STORE is sqlite or postgres, not {expected:?}"
    );
    let server = TestServer::start().await;
    // Asked of the database the server runs on: only PostgreSQL knows this function.
    let on_postgres = server.db.execute("SELECT pg_backend_pid()").await.is_ok();
    assert_eq!(
        on_postgres,
        expected == "postgres",
        "this pass runs on the wrong store"
    );
    assert_eq!(server.db.is_postgres(), on_postgres);
    server.admin().get("/v1/me").await.expect(200);
}

/// Serves until the returned sender is dropped or fired.
fn serve(server: Server, listener: tokio::net::TcpListener) -> oneshot::Sender<()> {
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve(listener, async move { stop.await.unwrap_or(()) })
            .await
            .expect("server runs");
    });
    shutdown
}

/// A second server process on a `TestServer`'s database; stops when dropped.
pub struct Node {
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

impl Node {
    pub fn client(&self, key: &str) -> Client {
        Client {
            base: self.base.clone(),
            key: Some(key.to_owned()),
            http: reqwest::Client::new(),
        }
    }
}

/// A running server and a client holding the operator tenant's administrator key.
pub struct TestServer {
    pub addr: SocketAddr,
    pub admin_key: String,
    pub db: TestDatabase,
    pub dir: tempfile::TempDir,
    kek: secrecy::SecretString,
    /// The clock the server judges every expiry by: `advance` moves it on.
    clock: std::sync::Arc<portcullis_core::time_util::AdvancedClock>,
    shutdown: Option<oneshot::Sender<()>>,
    http: reqwest::Client,
}

pub fn settings(dir: &std::path::Path, database_url: &str) -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.to_owned()),
        database_url: Some(database_url.to_owned()),
        // Cheap hashes: these tests check behaviour; the benchmark measures the real cost.
        password_memory_kib: Some(1024),
        password_iterations: Some(1),
        ..Settings::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|s| s).await
    }

    pub async fn start_with(adjust: impl FnOnce(Settings) -> Settings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::new(dir.path()).await;
        let kek = portcullis_core::secrets::Kek::generate_base64().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Browsers, and the passkey client, reach a local server by name: passkeys refuse IPs.
        let mut base = settings(dir.path(), &db.url);
        base.public_url = Some(format!("http://localhost:{}", addr.port()));
        let config = adjust(base).resolve().expect("valid settings");
        let clock = std::sync::Arc::new(portcullis_core::time_util::AdvancedClock::default());
        let server = Server::prepare_with_clock(config, Some(kek.clone()), clock.clone())
            .await
            .expect("server prepares");
        let admin_key = server
            .bootstrapped
            .as_ref()
            .expect("a new database is bootstrapped")
            .secret
            .expose_secret()
            .to_owned();
        let shutdown = serve(server, listener);
        TestServer {
            addr,
            admin_key,
            db,
            dir,
            kek,
            clock,
            shutdown: Some(shutdown),
            http: reqwest::Client::new(),
        }
    }

    /// Another node on the same database (with the same key-encryption key), as a second
    /// process behind a load balancer would be. It shares this server's administrator key.
    pub async fn another_node(&self, adjust: impl FnOnce(Settings) -> Settings) -> Node {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut base = settings(self.dir.path(), &self.db.url);
        base.public_url = Some(format!("http://localhost:{}", addr.port()));
        let config = adjust(base).resolve().expect("valid settings");
        let server = Server::prepare_with_clock(config, Some(self.kek.clone()), self.clock.clone())
            .await
            .expect("node prepares");
        Node {
            base: format!("http://{addr}"),
            _shutdown: serve(server, listener),
        }
    }

    /// Moves the server's clock (and its other nodes') on, past an expiry, without sleeping.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }

    /// The Prometheus exposition of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The key-encryption key the server was started with, for commands that open its
    /// database themselves.
    pub fn kek(&self) -> String {
        self.kek.expose_secret().to_owned()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A client acting with `key`.
    pub fn client(&self, key: &str) -> Client {
        Client {
            base: format!("http://{}", self.addr),
            key: Some(key.to_owned()),
            http: self.http.clone(),
        }
    }

    pub fn admin(&self) -> Client {
        self.client(&self.admin_key)
    }

    pub fn anonymous(&self) -> Client {
        Client {
            base: format!("http://{}", self.addr),
            key: None,
            http: self.http.clone(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// An answer: status, headers and the JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a problem document with this status and returns it.
    #[track_caller]
    pub fn problem(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "errors are problem documents"
        );
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)));
        assert!(
            self.body["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("urn:portcullis:problem:"),
            "{}",
            self.body
        );
        assert!(
            !self.body["detail"].as_str().unwrap_or("").is_empty(),
            "{}",
            self.body
        );
        self.body
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub key: Option<String>,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request).await
    }

    /// Sends a body that is not JSON (a CSV file), of `content_type`.
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        Self::answer(request).await
    }

    async fn answer(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Creates a service principal holding `role` at `scope` and returns a key for it.
    pub async fn principal_with_role(
        &self,
        name: &str,
        role: &str,
        scope: &str,
    ) -> (String, String) {
        let sp = self
            .post("/v1/service-principals", serde_json::json!({"name": name}))
            .await
            .expect(201);
        let id = sp["id"].as_str().unwrap().to_owned();
        self.post(
            "/v1/role-assignments",
            serde_json::json!({"principal": {"kind": "service_principal", "id": id}, "role": role, "scope": scope}),
        )
        .await
        .expect(201);
        let key = self
            .post(
                &format!("/v1/service-principals/{id}/api-keys"),
                serde_json::json!({}),
            )
            .await
            .expect(201);
        (id, key["secret"].as_str().unwrap().to_owned())
    }

    pub async fn create_user(&self, name: &str) -> Value {
        self.post("/v1/users", serde_json::json!({"user_name": name}))
            .await
            .expect(201)
    }

    /// Creates a tenant (as the operator) and returns its id and its administrator's key.
    pub async fn create_tenant(&self, name: &str) -> (String, String) {
        let created = self
            .post("/v1/tenants", serde_json::json!({"name": name}))
            .await
            .expect(201);
        (
            created["tenant"]["id"].as_str().unwrap().to_owned(),
            created["administrator_key"]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// The tenant's audit events with this action once `done` holds for them, for events a
    /// background task writes (the sweeper's summaries); waits up to ten seconds in small
    /// steps, then returns what there is for the caller's assertion to judge.
    pub async fn audit_once(&self, action: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..100 {
            let events = self.audit(action).await;
            if done(&events) {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.audit(action).await
    }

    /// The tenant's audit events with this action, newest first.
    pub async fn audit(&self, action: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/v1/audit?action={action}&limit=500"))
            .await
            .expect(200);
        page["items"].as_array().cloned().unwrap_or_default()
    }
}

/// Runs the `portcullis` binary with a connection to `server` and returns (exit code, stdout, stderr).
pub async fn cli(server: &TestServer, key: &str, args: &[&str]) -> (i32, String, String) {
    cli_at(&format!("http://{}", server.addr), key, args).await
}

/// Runs the `portcullis` binary against the server at `base`.
pub async fn cli_at(base: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    // Async: the server under test may run on this test's runtime and must keep answering.
    let output = tokio::process::Command::new(BIN)
        .args(args)
        .env("PORTCULLIS_URL", base)
        .env("PORTCULLIS_API_KEY", key)
        .env_remove("PORTCULLIS_API_KEY_FILE")
        .output()
        .await
        .expect("the portcullis binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
