//! Every operation of the admin API has a command: a newcomer's tour of the whole CLI against
//! a server process of its own, then the server's request counters compared with its OpenAPI
//! document. An operation that no command reached fails the test, naming it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::harness::{BIN, TestDatabase};
use crate::process::{Process, kek};

/// The command line against one server, with one key.
struct Cli {
    base: String,
    key: String,
    dir: PathBuf,
}

impl Cli {
    /// Runs a command that must succeed, and reads what it printed (JSON: stdout is a pipe).
    async fn ok(&self, args: &[&str]) -> Value {
        self.ok_with_input(args, "").await
    }

    async fn ok_with_input(&self, args: &[&str], input: &str) -> Value {
        let (code, stdout, stderr) = self.run(args, input).await;
        assert_eq!(code, 0, "portcullis {args:?} failed: {stderr}");
        if stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&stdout).unwrap_or_else(|_| Value::String(stdout.trim().to_owned()))
    }

    /// Runs a command that must fail, and returns what it said.
    async fn fails(&self, args: &[&str]) -> String {
        let (code, _, stderr) = self.run(args, "").await;
        assert_ne!(code, 0, "portcullis {args:?} succeeded");
        stderr
    }

    async fn run(&self, args: &[&str], input: &str) -> (i32, String, String) {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .env("PORTCULLIS_URL", &self.base)
            .env("PORTCULLIS_API_KEY", &self.key)
            .env_remove("PORTCULLIS_API_KEY_FILE")
            .env_remove("PORTCULLIS_OUTPUT")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the portcullis binary runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Writes a JSON document for a `--file` argument.
    fn file(&self, name: &str, document: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(document).unwrap()).unwrap();
        path.display().to_string()
    }
}

fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

#[tokio::test]
async fn every_admin_api_operation_has_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let server = Process::start(&dir.path().join("data"), &db, &kek(), &[]);
    let cli = Cli {
        base: server.base.clone(),
        key: server.bootstrap_key().expect("a bootstrap key"),
        dir: dir.path().to_owned(),
    };
    tour(&cli).await;

    let http = reqwest::Client::new();
    let document: Value = http
        .get(format!("{}/v1/openapi.json", cli.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = http
        .get(format!("{}/metrics", cli.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reached = reached(&metrics);
    let missing: Vec<String> = operations(&document)
        .into_iter()
        .filter(|operation| !reached.contains(operation))
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "no command reached these operations; add one and use it in this tour: {missing:#?}"
    );
}

/// The admin operations of the OpenAPI document. Operations for machines rather than
/// administrators (health, metrics, discovery documents) are left out.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let tags = operation["tags"].as_array().cloned().unwrap_or_default();
            let for_machines =
                tags.iter().any(|t| t == "operations") || path.contains(".well-known");
            if !for_machines {
                all.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(
        all.len() > 80,
        "only {} operations in the document",
        all.len()
    );
    all
}

/// The (method, route) pairs the server answered other than as unmatched, from its counters.
fn reached(metrics: &str) -> BTreeSet<(String, String)> {
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_owned())
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| Some((label(l, "method")?, label(l, "route")?)))
        .collect()
}

/// A newcomer's tour: each command once, on objects the tour creates.
async fn tour(cli: &Cli) {
    cli.ok(&["whoami"]).await;
    cli.ok(&["roles"]).await;

    // Tenants.
    cli.ok(&["tenant", "list"]).await;
    let created = cli.ok(&["tenant", "create", "tour-tenant"]).await;
    let other = created["tenant"]["id"].as_str().unwrap().to_owned();
    cli.ok(&["tenant", "get", &other]).await;
    cli.ok(&["tenant", "update", &other, "--display-name", "Tour"])
        .await;

    // Directory.
    cli.ok(&["environment", "create", "tour-env"]).await;
    cli.ok(&["environment", "list"]).await;
    cli.ok(&["environment", "get", "tour-env"]).await;
    cli.ok(&[
        "environment",
        "update",
        "tour-env",
        "--description",
        "for the tour",
    ])
    .await;
    cli.ok(&["business-unit", "create", "tour-unit"]).await;
    let units = cli.ok(&["business-unit", "list"]).await;
    assert!(units["items"].as_array().unwrap().len() >= 2, "{units}");
    cli.ok(&["business-unit", "get", "tour-unit"]).await;
    cli.ok(&["business-unit", "update", "tour-unit", "--description", "d"])
        .await;

    // Users and their help-desk actions.
    cli.ok(&["user", "create", "ada", "--email", "ada@example.com"])
        .await;
    cli.ok(&["user", "create", "bob"]).await;
    cli.ok(&["user", "list"]).await;
    cli.ok(&["user", "get", "ada@example.com"]).await;
    cli.ok(&["user", "update", "ada", "--display-name", "Ada L."])
        .await;
    cli.ok(&["user", "groups", "ada"]).await;
    cli.ok_with_input(
        &["user", "set-password", "ada", "--no-must-change"],
        "a long tour password 1\n",
    )
    .await;
    cli.ok(&["user", "password", "ada"]).await;
    cli.ok(&["user", "remove-password", "ada"]).await;
    cli.ok(&["user", "sessions", "ada"]).await;
    cli.ok(&["user", "end-sessions", "ada"]).await;
    let passkeys = cli.ok(&["user", "passkeys", "ada"]).await;
    assert_eq!(passkeys["items"], json!([]));
    // Ada has none to remove; the command reaches the operation and says so.
    let said = cli
        .fails(&[
            "user",
            "remove-passkey",
            "ada",
            "00000000-0000-7000-8000-000000000000",
        ])
        .await;
    assert!(said.contains("not found"), "{said}");
    cli.ok(&["user", "consents", "ada"]).await;
    cli.ok(&["user", "lockout", "ada"]).await;
    cli.ok(&["user", "unlock", "ada", "--reason", "tour"]).await;
    // Nor a second factor to reset.
    let status = cli.ok(&["user", "mfa", "ada"]).await;
    assert_eq!(status["authenticator_app"], false, "{status}");
    assert_eq!(status["recovery_codes_left"], 0, "{status}");
    let said = cli.fails(&["--yes", "user", "reset-mfa", "ada"]).await;
    assert!(said.contains("not found"), "{said}");
    let link = cli.ok(&["user", "invite", "ada"]).await;
    assert!(link.as_str().unwrap().contains("/enrol?token="), "{link}");
    // This server sends no mail.
    let said = cli.fails(&["user", "verify-email", "ada"]).await;
    assert!(said.contains("smtp_url"), "{said}");

    // Groups.
    cli.ok(&["group", "create", "tour-group"]).await;
    cli.ok(&["group", "list"]).await;
    cli.ok(&["group", "get", "tour-group"]).await;
    cli.ok(&["group", "update", "tour-group", "--description", "d"])
        .await;
    cli.ok(&["group", "add-member", "tour-group", "user", "bob"])
        .await;
    let members = cli.ok(&["group", "members", "tour-group"]).await;
    assert_eq!(members["items"][0]["name"], "bob", "{members}");
    cli.ok(&[
        "--yes",
        "group",
        "remove-member",
        "tour-group",
        "user",
        "bob",
    ])
    .await;

    // Service principals, keys, OAuth client registration.
    cli.ok(&["service-principal", "create", "tour-app"]).await;
    cli.ok(&["service-principal", "list"]).await;
    cli.ok(&["service-principal", "get", "tour-app"]).await;
    cli.ok(&[
        "service-principal",
        "update",
        "tour-app",
        "--description",
        "d",
    ])
    .await;
    let key = cli.ok(&["api-key", "create", "tour-app"]).await;
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    cli.ok(&["api-key", "list", "tour-app"]).await;
    cli.ok(&["--yes", "api-key", "revoke", "tour-app", &key_id])
        .await;
    let client = cli.file(
        "client.json",
        &json!({"grant_types": ["client_credentials"], "scopes": ["tour"], "resources": ["https://api.example.com"]}),
    );
    cli.ok(&["oauth-client", "set", "tour-app", "--file", &client])
        .await;
    let registered = cli.ok(&["oauth-client", "get", "tour-app"]).await;
    assert_eq!(registered["scopes"], json!(["tour"]), "{registered}");
    // Ada never consented to it.
    let said = cli
        .fails(&["--yes", "user", "withdraw-consent", "ada", "tour-app"])
        .await;
    assert!(said.contains("not found"), "{said}");

    // Role assignments.
    let assignment = cli
        .ok(&[
            "role-assignment",
            "create",
            "user",
            "bob",
            "security_reader",
        ])
        .await;
    let assignment = id(&assignment);
    cli.ok(&[
        "role-assignment",
        "list",
        "--principal-kind",
        "user",
        "--principal-id",
        "bob",
    ])
    .await;
    cli.ok(&["role-assignment", "get", &assignment]).await;
    cli.ok(&["--yes", "role-assignment", "delete", &assignment])
        .await;

    // The authorization model: types, roles, records, shares, deny assignments.
    let document_type = cli.file(
        "document.json",
        &json!({"name": "document", "actions": [{"name": "read", "plane": "data"}]}),
    );
    cli.ok(&["resource-type", "create", "--file", &document_type])
        .await;
    cli.ok(&["resource-type", "list"]).await;
    cli.ok(&["resource-type", "get", "document"]).await;
    let changed = cli.file(
        "document-v2.json",
        &json!({"description": "Documents", "actions": [
            {"name": "read", "plane": "data"}, {"name": "edit", "plane": "data"}]}),
    );
    cli.ok(&["resource-type", "set", "document", "--file", &changed])
        .await;
    let role = cli.file(
        "role.json",
        &json!({"name": "tour-reader", "permissions": [{"action": "document.read"}]}),
    );
    let custom = id(&cli.ok(&["custom-role", "create", "--file", &role]).await);
    cli.ok(&["custom-role", "list"]).await;
    cli.ok(&["custom-role", "get", &custom]).await;
    cli.ok(&["custom-role", "set", &custom, "--file", &role])
        .await;
    let copy = cli
        .ok(&[
            "custom-role",
            "clone",
            "security_reader",
            "--name",
            "tour-copy",
        ])
        .await;
    cli.ok(&["--yes", "custom-role", "delete", &id(&copy)])
        .await;
    cli.ok(&[
        "record",
        "set",
        "document",
        "d-1",
        "--owner",
        "user:ada",
        "--business-unit",
        "tour-unit",
        "--environment",
        "tour-env",
    ])
    .await;
    cli.ok(&["record", "get", "document", "d-1"]).await;
    // An application's id may hold a slash, a space or a question mark: the CLI encodes it.
    let awkward = "reports/2026 Q1?";
    cli.ok(&[
        "record",
        "set",
        "document",
        awkward,
        "--owner",
        "group:tour-group",
        "--business-unit",
        "tour-unit",
    ])
    .await;
    assert_eq!(
        cli.ok(&["record", "get", "document", awkward]).await["external_id"],
        awkward
    );
    let listed = cli
        .ok(&[
            "record", "list", "document", "--prefix", "reports/", "--limit", "1",
        ])
        .await;
    assert_eq!(listed["items"][0]["external_id"], awkward, "{listed}");
    assert!(listed.get("next_cursor").is_none(), "{listed}");
    cli.ok(&["--yes", "record", "delete", "document", awkward])
        .await;
    let share = cli
        .ok(&[
            "share",
            "create",
            "document",
            "d-1",
            "--principal",
            "user:bob",
            "--action",
            "read",
        ])
        .await;
    cli.ok(&["share", "list", "document", "d-1"]).await;

    // Decisions, one and in a batch, and the searches.
    let (code, said, _) = cli
        .run(
            &[
                "explain",
                "--subject",
                "user:bob",
                "--action",
                "document.read",
                "--resource",
                "document:d-1",
            ],
            "",
        )
        .await;
    assert_eq!(code, 0, "bob may read the document shared with him: {said}");
    cli.ok(&[
        "who-can",
        "--action",
        "document.read",
        "--resource",
        "document:d-1",
    ])
    .await;
    // The same two questions through the admin API's access explorer.
    let (code, said, _) = cli
        .run(
            &[
                "explain",
                "--explorer",
                "--subject",
                "user:bob",
                "--action",
                "document.read",
                "--resource",
                "document:d-1",
            ],
            "",
        )
        .await;
    assert_eq!(code, 0, "the explorer agrees: {said}");
    cli.ok(&[
        "who-can",
        "--explorer",
        "--action",
        "document.read",
        "--resource",
        "document:d-1",
    ])
    .await;
    cli.ok(&[
        "what-can",
        "--subject",
        "user:bob",
        "--resource",
        "document:d-1",
    ])
    .await;
    cli.ok(&[
        "what-can",
        "--subject",
        "user:bob",
        "--action",
        "document.read",
    ])
    .await;
    let bob = id(&cli.ok(&["user", "get", "bob"]).await);
    let batch = cli.file(
        "batch.json",
        &json!({"subject": {"type": "user", "id": bob}, "action": {"name": "document.read"},
                "evaluations": [{"resource": {"type": "document", "id": "d-1"}}]}),
    );
    cli.ok(&["evaluate", "--file", &batch]).await;

    let deny = cli
        .ok(&[
            "deny-assignment",
            "create",
            "--name",
            "no reading",
            "--principal",
            "user:bob",
            "--action",
            "document.read",
        ])
        .await;
    cli.ok(&["deny-assignment", "list"]).await;
    cli.ok(&["--yes", "deny-assignment", "delete", &id(&deny)])
        .await;
    cli.ok(&["--yes", "share", "delete", &id(&share)]).await;
    cli.ok(&["--yes", "record", "delete", "document", "d-1"])
        .await;
    cli.ok(&["--yes", "custom-role", "delete", &custom]).await;
    cli.ok(&["--yes", "resource-type", "delete", "document"])
        .await;

    // Settings documents: read, and written back as read.
    for settings in [
        "sign-in-settings",
        "administrator-policy",
        "access-settings",
    ] {
        let current = cli.ok(&[settings, "get"]).await;
        let file = cli.file(&format!("{settings}.json"), &current);
        cli.ok(&[settings, "set", "--file", &file]).await;
    }
    cli.ok(&["signing-key", "list"]).await;
    cli.ok(&["signing-key", "rotate"]).await;
    let people = cli.dir.join("people.csv");
    std::fs::write(
        &people,
        "user_name,email\nimported-1,imported-1@example.com\n,\n",
    )
    .unwrap();
    let imported = cli
        .ok(&["user", "import", &people.display().to_string()])
        .await;
    assert_eq!(
        (imported["created"].as_u64(), imported["failed"].as_u64()),
        (Some(1), Some(1)),
        "{imported}"
    );
    let logo = cli.dir.join("logo.png");
    std::fs::write(&logo, crate::branding::TINY_PNG).unwrap();
    let branded = cli
        .ok(&[
            "branding",
            "set",
            "--colour",
            "#7b1fa2",
            "--logo",
            &logo.display().to_string(),
        ])
        .await;
    assert_eq!(branded["logo"]["media_type"], "image/png", "{branded}");
    let kept = cli.ok(&["branding", "set", "--no-logo"]).await;
    assert_eq!(kept["colour"], "#7b1fa2", "{kept}");
    assert!(cli.ok(&["branding", "get"]).await.get("logo").is_none());

    // Conditional access.
    let office = cli.file(
        "office.json",
        &json!({"name": "tour-office", "trusted": true, "ranges": ["192.0.2.0/24"]}),
    );
    cli.ok(&["location", "create", "--file", &office]).await;
    cli.ok(&["location", "list"]).await;
    let location = cli.ok(&["location", "get", "tour-office"]).await;
    cli.ok(&["location", "set", "tour-office", "--file", &office])
        .await;
    let policy = cli.file(
        "policy.json",
        &json!({"name": "tour-mfa", "state": "report_only", "include": {"all_users": true},
                "applications": {"include": ["all"]},
                "conditions": {"locations": {"include": ["any"], "exclude": [location["id"]]}},
                "grant": {"kind": "require", "controls": ["mfa"]}}),
    );
    cli.ok(&["access-policy", "create", "--file", &policy])
        .await;
    cli.ok(&["access-policy", "list"]).await;
    cli.ok(&["access-policy", "get", "tour-mfa"]).await;
    cli.ok(&["access-policy", "set", "tour-mfa", "--file", &policy])
        .await;
    cli.ok(&["access-policy", "templates"]).await;
    cli.ok(&[
        "access-policy",
        "from-template",
        "allowed-countries-only",
        "--location",
        "tour-office",
    ])
    .await;
    let answer = cli
        .ok(&[
            "access-policy",
            "what-if",
            "--user",
            "ada",
            "--address",
            "198.51.100.7",
        ])
        .await;
    assert_eq!(
        answer["evaluation"]["decision"]["kind"], "allow",
        "{answer}"
    );
    let settings = cli.ok(&["access-policy", "settings", "get"]).await;
    let file = cli.file("access-policy-settings.json", &settings);
    cli.ok(&["access-policy", "settings", "set", "--file", &file])
        .await;
    let said = cli
        .fails(&["--yes", "location", "delete", "tour-office"])
        .await;
    assert!(said.contains("refer to this location"), "{said}");
    cli.ok(&["--yes", "access-policy", "delete", "tour-mfa"])
        .await;
    cli.ok(&[
        "--yes",
        "access-policy",
        "delete",
        "Block sign-ins from outside a named location of allowed countries",
    ])
    .await;
    cli.ok(&["--yes", "location", "delete", "tour-office"])
        .await;

    // Registered devices: a key is a person's to register; the tour's key is a workload's.
    let key = cli.file(
        "device-key.json",
        &portcullis_core::jose::generate_es256().unwrap().public_jwk,
    );
    let said = cli
        .fails(&[
            "device",
            "register",
            "--name",
            "tour",
            "--platform",
            "linux",
            "--file",
            &key,
        ])
        .await;
    assert!(said.contains("only a person"), "{said}");
    cli.ok(&["device", "list", "--user", "ada"]).await;
    let nothing = "01900000-0000-7000-8000-000000000000";
    for args in [
        vec!["device", "get", nothing],
        vec!["device", "compliance", nothing, "--compliant", "true"],
        vec!["--yes", "device", "remove", nothing],
    ] {
        let said = cli.fails(&args).await;
        assert!(said.contains("No such object"), "{said}");
    }

    // Identity protection.
    cli.ok(&["risk", "detections", "--level", "high"]).await;
    let confirmed = cli
        .ok(&[
            "--yes",
            "risk",
            "confirm-compromised",
            "ada",
            "--note",
            "tour",
        ])
        .await;
    assert_eq!(confirmed["level"], "high", "{confirmed}");
    let users = cli.ok(&["risk", "users"]).await;
    assert_eq!(users["items"][0]["user_name"], "ada", "{users}");
    cli.ok(&["risk", "dismiss", "ada"]).await;
    let loaded = cli
        .ok_with_input(
            &["risk", "leaked-passwords", "load", "-"],
            "# one\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:1\n",
        )
        .await;
    assert_eq!(loaded["added"], 1, "{loaded}");
    cli.ok(&["risk", "leaked-passwords", "count"]).await;

    // The audit trail.
    cli.ok(&["audit", "list", "--limit", "5"]).await;
    cli.ok(&["audit", "sign-ins"]).await;
    cli.ok(&["audit", "api-use"]).await;
    cli.ok(&["audit", "verify"]).await;

    // Removals last, a deleted user restored by name, then purged.
    cli.ok(&["--yes", "user", "delete", "ada"]).await;
    cli.ok(&["user", "restore", "ada"]).await;
    cli.ok(&["--yes", "user", "delete", "ada"]).await;
    cli.ok(&["--yes", "user", "purge", "ada"]).await;
    cli.ok(&["--yes", "group", "delete", "tour-group"]).await;
    cli.ok(&["--yes", "service-principal", "delete", "tour-app"])
        .await;
    cli.ok(&["--yes", "business-unit", "delete", "tour-unit"])
        .await;
    cli.ok(&["--yes", "environment", "delete", "tour-env"])
        .await;
}
