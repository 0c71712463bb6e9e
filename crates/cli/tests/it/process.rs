//! The `portcullis` binary as an operator runs it: crash safety, secrets kept out of logs,
//! bootstrap shown once, key-encryption-key rules, strict config and graceful shutdown.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::harness::{BIN, Client, TestDatabase, cli_at};

/// A server process and what it printed.
pub struct Process {
    child: Child,
    pub base: String,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    pub fn start(dir: &std::path::Path, db: &TestDatabase, kek: &str, extra: &[&str]) -> Process {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.to_str().unwrap(),
                "--database-url",
                &db.url,
            ])
            .args(extra)
            .env("PORTCULLIS_KEK", kek)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = err.read_to_string(&mut buf);
            sink.lock().unwrap().push_str(&buf);
        });
        let (lines, receive) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = Vec::new();
        // A guard against a hung start, not a performance assertion.
        while let Ok(line) = receive.recv_timeout(Duration::from_secs(60)) {
            let listening = line
                .strip_prefix("portcullis: listening on ")
                .map(str::to_owned);
            stdout.push(line);
            if let Some(base) = listening {
                return Process {
                    child,
                    base,
                    stdout,
                    stderr,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the server did not start: {stdout:?} {}",
            stderr.lock().unwrap()
        );
    }

    pub fn bootstrap_key(&self) -> Option<String> {
        self.stdout
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with("pcs_"))
            .map(str::to_owned)
    }

    fn client(&self, key: &str) -> Client {
        Client {
            base: self.base.clone(),
            key: Some(key.to_owned()),
            http: reqwest::Client::new(),
        }
    }

    fn kill_hard(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        self.stderr.lock().unwrap().clone()
    }
}

/// A test that fails half-way must not leave a server running.
impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn kek() -> String {
    portcullis_core::secrets::Kek::generate_base64()
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let kek = kek();
    let first = Process::start(dir.path(), &db, &kek, &[]);
    let key = first
        .bootstrap_key()
        .expect("the first start prints the bootstrap key");
    assert!(
        first
            .stdout
            .iter()
            .any(|l| l.starts_with("portcullis: sign-in at http://")
                && l.contains("/t/operator/sign-in")),
        "the start says where to sign in: {:?}",
        first.stdout
    );
    let client = first.client(&key);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            client.create_user(&format!("durable{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Killed the moment the last write was acknowledged: no shutdown, no flush.
    first.kill_hard();
    let second = Process::start(dir.path(), &db, &kek, &[]);
    assert_eq!(
        second.bootstrap_key(),
        None,
        "the bootstrap credential is printed only once"
    );
    let client = second.client(&key);
    for id in &ids {
        client.get(&format!("/v1/users/{id}")).await.expect(200);
    }
    assert_eq!(
        client.audit("user.create").await.len(),
        30,
        "every acknowledged write has its event"
    );
    let output = Command::new(BIN)
        .args(["audit", "verify", "--url", &second.base, "--api-key", &key])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    second.kill_hard();
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let kek = kek();
    let server = Process::start(
        dir.path(),
        &db,
        &kek,
        &["--log", "trace", "--log-format", "json"],
    );
    let key = server.bootstrap_key().unwrap();
    let admin = server.client(&key);
    let sp = admin
        .post("/v1/service-principals", json!({"name": "logged"}))
        .await
        .expect(201);
    let issued = admin
        .post(
            &format!(
                "/v1/service-principals/{}/api-keys",
                sp["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(201);
    let new_key = issued["secret"].as_str().unwrap().to_owned();
    server.client(&new_key).get("/v1/me").await.expect(200);
    let forged = format!(
        "{}_{}",
        issued["api_key"]["prefix"].as_str().unwrap(),
        "A".repeat(43)
    );
    server.client(&forged).get("/v1/me").await.problem(401);
    let logs = server.kill_hard();
    assert!(
        logs.contains("\"request\"") || logs.contains("request"),
        "the server did log at trace level"
    );
    for secret in [&key, &new_key, &forged, &kek] {
        let tail = &secret[secret.len() - 20..];
        assert!(!logs.contains(tail), "a secret appeared in the logs");
    }
    let credential = dir.path().join(portcullis_server::BOOTSTRAP_FILE);
    assert_eq!(std::fs::read_to_string(&credential).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&credential).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn production_mode_requires_an_explicit_kek_and_a_wrong_kek_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let output = Command::new(BIN)
        .args([
            "serve",
            "--production",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .env_remove("PORTCULLIS_KEK")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("PORTCULLIS_KEK"),
        "the error says how to fix it"
    );

    let first = Process::start(dir.path(), &db, &kek(), &["--production"]);
    first.kill_hard();
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .env("PORTCULLIS_KEK", kek())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fingerprint"), "{stderr}");
}

#[tokio::test]
async fn development_mode_generates_a_private_kek_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    // A data directory the server creates itself.
    let data = dir.path().join("fresh");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .env_remove("PORTCULLIS_KEK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("portcullis: listening") {
            break;
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARNING: development mode"), "{stderr}");
    let kek_file = data.join(portcullis_server::DEV_KEK_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700,
            "the data directory is private"
        );
        assert_eq!(
            std::fs::metadata(&kek_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn unknown_config_keys_and_bad_flags_are_errors_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nlisten_adress = \"oops\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_adress"), "{stderr}");
    let output = Command::new(BIN)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn every_command_has_help() {
    // Walks the whole command tree from the top-level help, so a new command cannot skip it.
    let mut pending = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let output = Command::new(BIN)
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{path:?} --help fails");
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(help.contains("Usage:"), "{path:?}: {help}");
        seen += 1;
        let commands = help
            .split_once("Commands:\n")
            .map(|(_, rest)| rest.split("\n\n").next().unwrap_or(""));
        // A command's line is indented by two spaces; wrapped descriptions by more.
        let command_lines = commands
            .unwrap_or("")
            .lines()
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "));
        for line in command_lines {
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else { continue };
            if name == "help" {
                continue;
            }
            assert!(words.next().is_some(), "{path:?} {name} has no description");
            let mut child = path.clone();
            child.push(name.to_owned());
            pending.push(child);
        }
    }
    assert!(seen > 40, "the walk reached only {seen} commands");
}

#[test]
fn the_benchmarks_run_and_check_their_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Command::new(BIN)
        .args([
            "bench",
            "audit",
            "--events",
            "300",
            "--writers",
            "16",
            "--runs",
            "2",
        ])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(stdout.contains("chain of 605 records verified"), "{stdout}");
    let api = Command::new(BIN)
        .args([
            "bench",
            "api",
            "--users",
            "50",
            "--reads",
            "100",
            "--connections",
            "4",
        ])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&api.stdout);
    assert!(
        api.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&api.stderr)
    );
    assert!(
        stdout.contains("create user")
            && stdout.contains("get user")
            && stdout.contains("MiB resident"),
        "{stdout}"
    );
    let sign_in = Command::new(BIN)
        .args(["bench", "sign-in", "--sign-ins", "6", "--connections", "2"])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&sign_in.stdout);
    assert!(
        sign_in.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&sign_in.stderr)
    );
    assert!(
        stdout.contains("password sign-ins/s") && stdout.contains("of the bound"),
        "{stdout}"
    );
    let access = Command::new(BIN)
        .args([
            "bench",
            "access",
            "--users",
            "20",
            "--records",
            "50",
            "--single",
            "100",
            "--batches",
            "3",
            "--batch",
            "50",
            "--runs",
            "1",
            "--connections",
            "4",
        ])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&access.stdout);
    assert!(
        access.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&access.stderr)
    );
    assert!(
        stdout.contains("median of 1: single") && stdout.contains("decisions/s"),
        "{stdout}"
    );
}

#[tokio::test]
async fn migrate_is_idempotent_and_sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    for _ in 0..2 {
        let output = Command::new(BIN)
            .args([
                "migrate",
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--database-url",
                &db.url,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut server = Process::start(dir.path(), &db, &kek(), &[]);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[tokio::test]
async fn several_servers_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let kek = kek();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = if db.is_postgres() {
        // Both start on the empty database at once: exactly one may bootstrap it.
        std::thread::scope(|s| {
            let a = s.spawn(|| Process::start(&a_dir, &db, &kek, &[]));
            let b = s.spawn(|| Process::start(&b_dir, &db, &kek, &[]));
            (a.join().unwrap(), b.join().unwrap())
        })
    } else {
        // SQLite is a single-node store; a second process on the same file must still be safe.
        let a = Process::start(&a_dir, &db, &kek, &[]);
        (a, Process::start(&b_dir, &db, &kek, &[]))
    };
    let keys: Vec<String> = [a.bootstrap_key(), b.bootstrap_key()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(keys.len(), 1, "exactly one node bootstraps: {keys:?}");
    let clients = [a.client(&keys[0]), b.client(&keys[0])];
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let client = clients[i % 2].clone();
            tokio::spawn(async move { client.create_user(&format!("node-user-{i}")).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    for client in &clients {
        let page = client.get("/v1/users?limit=100").await.expect(200);
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            40,
            "each node sees every write"
        );
    }
    let (code, stdout, stderr) = cli_at(&b.base, &keys[0], &["audit", "verify"]).await;
    assert_eq!(code, 0, "one unbroken chain across nodes: {stdout}{stderr}");
}

/// The sign-in back-off is kept in the database: wrong passwords spread over three nodes are
/// counted once, not once per node, and a node that restarts has forgotten none of them.
#[tokio::test]
async fn the_sign_in_back_off_counts_across_nodes_and_survives_a_restart() {
    use crate::signin::{Browser, PASSWORD};
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let kek = kek();
    let node_dir = |i: usize| dir.path().join(format!("node-{i}"));
    let mut nodes: Vec<Process> = (0..3)
        .map(|i| Process::start(&node_dir(i), &db, &kek, &[]))
        .collect();
    let key = nodes[0].bootstrap_key().expect("the first node bootstraps");
    let admin = nodes[0].client(&key);
    let ada = admin.create_user("ada").await;
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/users/{}/password", ada["id"].as_str().unwrap()),
            Some(json!({"password": PASSWORD, "must_change": false})),
            &[],
        )
        .await
        .expect(204);
    let settings = admin.get("/v1/sign-in-settings").await.expect(200);
    let free = settings["lockout"]["free_failures"].as_u64().unwrap() as usize;

    let mut browsers: Vec<Browser> = nodes.iter().map(|n| Browser::at(&n.base)).collect();
    for attempt in 0..free {
        let page = browsers[attempt % 3]
            .sign_in("operator", "ada", "not the password")
            .await;
        assert_eq!(page.status, 401, "attempt {attempt} is free: {}", page.body);
    }
    for browser in &mut browsers {
        let page = browser.sign_in("operator", "ada", "not the password").await;
        assert_eq!(page.status, 429, "every node counts the others' failures");
    }

    // A restarted node remembers: even the right password waits out the back-off.
    let restarted = nodes.remove(1);
    drop(restarted);
    let again = Process::start(&node_dir(1), &db, &kek, &[]);
    let page = Browser::at(&again.base)
        .sign_in("operator", "ada", PASSWORD)
        .await;
    assert_eq!(
        page.status, 429,
        "the back-off survived the restart: {}",
        page.body
    );
}

/// Three server processes on one PostgreSQL database, the two others polling the change feed
/// only once a minute: a role removed through the first is refused by the admin API of the
/// others at once, and their AuthZEN answers follow as soon as PostgreSQL notifies them.
#[tokio::test]
async fn on_postgres_a_role_removed_through_one_process_is_refused_by_two_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    if !db.is_postgres() {
        // Several processes on one SQLite file have no notifications; this is PostgreSQL's,
        // and runs in the PostgreSQL pass.
        eprintln!("skipped on SQLite: needs PostgreSQL notifications");
        return;
    }
    let kek = kek();
    let rarely = ["--authz-poll-interval-ms", "60000"];
    let nodes: Vec<Process> = (0..3)
        .map(|n| {
            let data = dir.path().join(format!("node-{n}"));
            std::fs::create_dir_all(&data).unwrap();
            Process::start(&data, &db, &kek, &rarely)
        })
        .collect();
    let key = nodes
        .iter()
        .find_map(Process::bootstrap_key)
        .expect("one node bootstrapped the database");
    let admin = nodes[0].client(&key);
    let tenant = admin.get("/v1/me").await.expect(200)["tenant"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = admin.get("/v1/business-units").await.expect(200)["items"][0]["id"].clone();
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "doc", "actions": [{"name": "read", "plane": "data"}]}),
        )
        .await
        .expect(201);
    let role = admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Reader", "permissions": [{"action": "doc.read"}, {"action": "user.read"}]}),
        )
        .await
        .expect(201);
    let sp = admin
        .post("/v1/service-principals", json!({"name": "reader"}))
        .await
        .expect(201);
    let reader = json!({"type": "service_principal", "id": sp["id"]});
    let assignment = admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": sp["id"]}, "role": role["id"]}),
        )
        .await
        .expect(201);
    let reader_key = admin
        .post(
            &format!(
                "/v1/service-principals/{}/api-keys",
                sp["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = json!({
        "subject": reader,
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"business_unit_id": root}}
    });
    let evaluation = format!("/t/{tenant}/access/v1/evaluation");
    for node in &nodes[1..] {
        node.client(&reader_key).get("/v1/users").await.expect(200);
        let d = node
            .client(&key)
            .post(&evaluation, with_latest(&ask))
            .await
            .expect(200);
        assert_eq!(d["decision"], true, "{d}");
    }

    admin
        .delete(&format!(
            "/v1/role-assignments/{}",
            assignment["id"].as_str().unwrap()
        ))
        .await
        .expect(204);
    for node in &nodes[1..] {
        node.client(&reader_key).get("/v1/users").await.problem(403);
        let mut refused = false;
        for _ in 0..500 {
            let d = node
                .client(&key)
                .post(&evaluation, ask.clone())
                .await
                .expect(200);
            if d["decision"] == false {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "{} never heard of the change", node.base);
    }
}

fn with_latest(ask: &serde_json::Value) -> serde_json::Value {
    let mut ask = ask.clone();
    ask["context"] = json!({"min_revision": "latest"});
    ask
}
