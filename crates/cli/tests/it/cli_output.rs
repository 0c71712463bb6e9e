//! The command line prints JSON to scripts and tables to people: `--output` (or
//! `PORTCULLIS_OUTPUT`) chooses, and without it a pipe gets the API's JSON.

use serde_json::Value;

use crate::harness::{TestServer, cli};

#[tokio::test]
async fn answers_are_json_for_scripts_and_tables_for_people() {
    let server = TestServer::start().await;
    let key = &server.admin_key;
    server.admin().create_user("ada").await;

    // Piped (as here), the API's JSON, so `| jq` works.
    let (code, stdout, stderr) = cli(&server, key, &["user", "list"]).await;
    assert_eq!(code, 0, "{stderr}");
    let page: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(page["items"][0]["user_name"], "ada");

    // Asked for a table: a header, one row per user, the name first.
    let (code, stdout, stderr) = cli(&server, key, &["--output", "table", "user", "list"]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("USER_NAME"), "{stdout}");
    assert!(lines[1].starts_with("ada "), "{stdout}");
    assert!(
        !stdout.contains("tenant_id") && !stdout.contains('{'),
        "{stdout}"
    );

    // The option goes anywhere on the line, and the environment sets it too.
    let (_, after, _) = cli(&server, key, &["whoami", "--output", "table"]).await;
    assert!(
        after.contains("principal") && after.contains("service_principal:"),
        "{after}"
    );
    assert!(after.contains("grants:\n  ROLE"), "{after}");
    let output = tokio::process::Command::new(crate::harness::BIN)
        .args(["group", "list"])
        .env("PORTCULLIS_URL", format!("http://{}", server.addr))
        .env("PORTCULLIS_API_KEY", key)
        .env("PORTCULLIS_OUTPUT", "table")
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "No results.\n");

    // Explicit JSON wins even where the command's own text is the point.
    let (_, stdout, _) = cli(
        &server,
        key,
        &[
            "--output",
            "json",
            "explain",
            "--subject",
            "user:ada",
            "--action",
            "user.read",
            "--resource",
            "user:-",
        ],
    )
    .await;
    let answer: Value = serde_json::from_str(&stdout).expect("explain printed JSON");
    assert_eq!(answer["decision"], false);
    let (_, text, _) = cli(&server, key, &["--output", "bogus", "user", "list"]).await;
    assert!(text.is_empty());
}

#[tokio::test]
async fn failures_say_what_to_do_next_not_http() {
    let server = TestServer::start().await;
    let run = |base: String, key: Option<&str>, args: &[&str], dir: &std::path::Path| {
        let mut command = tokio::process::Command::new(crate::harness::BIN);
        command
            .args(args)
            .current_dir(dir)
            .env("PORTCULLIS_URL", base)
            .env("PORTCULLIS_CONFIG_DIR", dir.join("config"))
            .env_remove("PORTCULLIS_API_KEY")
            .env_remove("PORTCULLIS_API_KEY_FILE");
        if let Some(key) = key {
            command.env("PORTCULLIS_API_KEY", key);
        }
        command.output()
    };
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}", server.addr);
    let stderr = |o: std::process::Output| {
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };

    // No credential anywhere: where it looked, and the ways to give one.
    let said = stderr(
        run(base.clone(), None, &["user", "list"], dir.path())
            .await
            .unwrap(),
    );
    assert!(
        said.contains("data/bootstrap-credential") && said.contains("portcullis login"),
        "{said}"
    );
    assert!(
        said.contains(&dir.path().display().to_string()),
        "names the directory: {said}"
    );

    // Nobody listening.
    let said = stderr(
        run(
            "http://127.0.0.1:9".into(),
            Some("pcs_x"),
            &["user", "list"],
            dir.path(),
        )
        .await
        .unwrap(),
    );
    assert!(said.contains("is it running"), "{said}");

    // A key the server does not accept.
    let forged = format!("pcs_{}_{}", "0".repeat(16), "A".repeat(43));
    let said = stderr(
        run(base.clone(), Some(&forged), &["user", "list"], dir.path())
            .await
            .unwrap(),
    );
    assert!(
        said.contains("did not accept the API key") && !said.contains("401"),
        "{said}"
    );

    // A key that may not do this.
    let (_, reader) = server
        .admin()
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    let said = stderr(
        run(
            base.clone(),
            Some(&reader),
            &["user", "create", "nope"],
            dir.path(),
        )
        .await
        .unwrap(),
    );
    assert!(
        said.starts_with("error: not allowed:") && said.contains("whoami"),
        "{said}"
    );
    assert!(!said.contains("POST") && !said.contains("403"), "{said}");

    // A refused change names the field.
    let said = stderr(
        run(
            base,
            Some(&server.admin_key),
            &["user", "create", "grace", "--guest"],
            dir.path(),
        )
        .await
        .unwrap(),
    );
    assert!(
        said.contains("sponsor") || said.contains("expires_at"),
        "{said}"
    );
    assert!(!said.contains("422"), "{said}");
}

/// Runs the binary with a terminal (util-linux `script`), typing `typed` at it.
async fn at_a_terminal(server: &TestServer, args: &str, typed: &str) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let line = format!(
        "{} --url http://{} --api-key {} {args}",
        crate::harness::BIN,
        server.addr,
        server.admin_key
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(typed.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn removals_are_confirmed_at_a_terminal_and_say_what_they_did() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let group = |name: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .post("/v1/groups", serde_json::json!({"name": name}))
                .await
                .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let exists = |id: String| {
        let admin = admin.clone();
        async move { admin.get(&format!("/v1/groups/{id}")).await.status == 200 }
    };

    // A person who answers no keeps the group.
    let kept = group("kept").await;
    let (code, screen) = at_a_terminal(&server, &format!("group delete {kept}"), "n\n").await;
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains(&format!("About to delete group {kept}. Go ahead? [y/N]")),
        "{screen}"
    );
    assert!(screen.contains("Nothing was changed."), "{screen}");
    assert!(exists(kept.clone()).await);

    // Yes, or --yes, removes it and says so.
    let (code, screen) = at_a_terminal(&server, &format!("group delete {kept}"), "y\n").await;
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!("Done: delete group {kept}.")),
        "{screen}"
    );
    assert!(!exists(kept).await);
    let quick = group("quick").await;
    let (code, screen) = at_a_terminal(&server, &format!("group delete {quick} --yes"), "").await;
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("Go ahead?"), "{screen}");
    assert!(!exists(quick).await);

    // A script is never asked.
    let scripted = group("scripted").await;
    let (code, _, stderr) = cli(&server, &server.admin_key, &["group", "delete", &scripted]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("Done: delete group {scripted}.")),
        "{stderr}"
    );
    assert!(!exists(scripted).await);
}

/// The JSON answer of a command that must succeed.
async fn json_of(server: &TestServer, args: &[&str]) -> Value {
    let (code, stdout, stderr) = cli(server, &server.admin_key, args).await;
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str::<Value>(&stdout).unwrap_or(Value::Null)
}

#[tokio::test]
async fn arguments_take_names_and_e_mail_addresses_as_well_as_ids() {
    let server = TestServer::start().await;
    let key = &server.admin_key;
    let admin = server.admin();
    let ada = admin
        .post(
            "/v1/users",
            serde_json::json!({"user_name": "ada", "email": "ada@example.com"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let prod = json_of(&server, &["environment", "create", "prod"]).await;
    let engineers = json_of(&server, &["group", "create", "engineers"]).await;
    json_of(
        &server,
        &[
            "group",
            "add-member",
            "Engineers",
            "user",
            "ADA@example.com",
        ],
    )
    .await;
    let members = json_of(&server, &["group", "members", "engineers"]).await;
    assert_eq!(members["items"][0]["member"]["id"], ada);
    assert_eq!(
        members["items"][0]["name"], "ada",
        "lists name their members"
    );
    let assigned = json_of(
        &server,
        &[
            "role-assignment",
            "create",
            "group",
            "engineers",
            "environment_admin",
            "--scope",
            "environment/prod",
        ],
    )
    .await;
    assert_eq!(assigned["principal"]["id"], engineers["id"]);
    assert_eq!(
        assigned["scope"],
        format!("environment/{}", prod["id"].as_str().unwrap())
    );
    let in_a_month = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let guest = json_of(
        &server,
        &[
            "user",
            "create",
            "grace",
            "--guest",
            "--sponsor",
            "ada",
            "--expires-at",
            &in_a_month,
        ],
    )
    .await;
    assert_eq!(guest["sponsor_id"], ada);
    // An id is used as given; a name that names nothing says so, and nothing is sent.
    assert_eq!(
        json_of(&server, &["user", "get", &ada]).await["user_name"],
        "ada"
    );
    let (code, _, stderr) = cli(
        &server,
        key,
        &["group", "add-member", "engineers", "user", "nobody"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("\"nobody\" is neither the id nor the name of a user"),
        "{stderr}"
    );
}
