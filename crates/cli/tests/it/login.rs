//! `portcullis login` end to end: the real binary asks for a device code through the tenant's
//! built-in command-line client, the person approves it on the real pages, and later commands
//! act as that person (with their roles, named in the audit trail) without any API key; the
//! tokens sit in a file only its owner can read, and `portcullis logout` revokes them.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::administrators::approve;
use crate::authorize::signed_in;
use crate::harness::{BIN, TestServer};
use crate::mfa::code as totp_code;

/// Runs the binary with no API key, in a directory without a bootstrap credential, keeping its
/// login in `config`.
fn portcullis(
    server: &TestServer,
    config: &std::path::Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .current_dir(config)
        .env(
            "PORTCULLIS_URL",
            format!("http://localhost:{}", server.addr.port()),
        )
        .env("PORTCULLIS_CONFIG_DIR", config)
        .env_remove("PORTCULLIS_API_KEY")
        .env_remove("PORTCULLIS_API_KEY_FILE");
    // No desktop here: `login` signs in with a device code unless told otherwise.
    for desktop in ["BROWSER", "DISPLAY", "WAYLAND_DISPLAY"] {
        command.env_remove(desktop);
    }
    command
}

async fn run(
    server: &TestServer,
    config: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let output = portcullis(server, config, args)
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a running command printed up to the user code it asks the person to approve, and the
/// code.
async fn printed_code(command: &mut tokio::process::Child) -> (String, String) {
    let mut lines = BufReader::new(command.stderr.take().unwrap()).lines();
    let mut printed = String::new();
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the command prints the code before it waits");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("enter the code ").nth(1) {
            let code = rest.trim_end_matches('.').to_owned();
            // The rest is read on so the command never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (printed, code);
        }
    }
}

#[tokio::test]
async fn a_person_logs_the_command_line_in_with_a_device_code_and_out_again() {
    let server = TestServer::start().await;
    let config = tempfile::tempdir().unwrap();
    let (mut browser, alice) = signed_in(&server, "alice").await;
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": alice}, "role": "user_administrator", "scope": "tenant"}),
        )
        .await
        .expect(201);

    // Without a login or a key, the command says what to do.
    let (code, _, stderr) = run(&server, config.path(), &["whoami"]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("portcullis login"), "{stderr}");

    let mut login = portcullis(&server, config.path(), &["login", "--tenant", "operator"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_, user_code) = printed_code(&mut login).await;
    let entry = browser.get("/t/operator/device").await;
    let asked = browser
        .post(
            "/t/operator/device",
            &[("csrf", &entry.csrf()), ("user_code", &user_code)],
        )
        .await;
    assert!(asked.body.contains("portcullis-cli"), "{}", asked.body);
    assert!(
        asked.body.contains("Administer this tenant"),
        "{}",
        asked.body
    );
    let allowed = browser
        .post(
            "/t/operator/device/decision",
            &[
                ("csrf", &asked.csrf()),
                ("user_code", &user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let output = login.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("as alice"), "{stdout}");

    // Only its owner can read the kept tokens.
    let file = config.path().join("login.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();

    // Commands now act as Alice, with her roles, and her session is on the record.
    let (code, stdout, stderr) = run(&server, config.path(), &["whoami"]).await;
    assert_eq!(code, 0, "{stderr}");
    let me: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(me["principal"], json!({"kind": "user", "id": alice}));
    assert_eq!(me["authentication"]["amr"], json!(["pwd"]));

    // A change needs more than her password: the command asks for a sign-in with a second
    // factor, she gives the code from the authenticator she has just set up, and the command
    // goes through on its own.
    let setup = browser.get("/t/operator/account/mfa").await;
    let key = crate::mfa::manual_key(&setup.body);
    let enrolled = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &setup.csrf()), ("code", &totp_code(&key, 0))],
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let mut create = portcullis(&server, config.path(), &["user", "create", "bob"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (asked, user_code) = printed_code(&mut create).await;
    assert!(asked.contains("This needs a mfa sign-in"), "{asked}");
    approve(&mut browser, &user_code, Some(&key)).await;
    let output = create.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let bob: Value = serde_json::from_str(&stdout).unwrap();
    let created = server.admin().audit("user.create").await;
    let event = created
        .iter()
        .find(|e| e["target"]["id"] == bob["id"])
        .unwrap();
    assert_eq!(event["actor"]["id"], alice);
    assert_eq!(
        event["actor"]["authentication"]["client_id"],
        kept["client_id"]
    );
    let (code, _, stderr) = run(
        &server,
        config.path(),
        &[
            "role-assignment",
            "create",
            "user",
            bob["id"].as_str().unwrap(),
            "tenant_administrator",
        ],
    )
    .await;
    assert_ne!(code, 0, "her roles, not more");
    assert!(stderr.contains("not allowed"), "{stderr}");

    // Logging out revokes the tokens and forgets them.
    let (code, stdout, stderr) = run(&server, config.path(), &["logout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Signed out"), "{stdout}");
    assert!(!file.exists());
    server
        .client(kept["access_token"].as_str().unwrap())
        .get("/v1/me")
        .await
        .problem(401);
}

#[tokio::test]
async fn the_command_line_client_is_made_once_and_is_not_an_impostor() {
    let server = TestServer::start().await;
    // Someone already has a principal of the built-in client's name: it is not adopted.
    let impostor = server
        .admin()
        .post("/v1/service-principals", json!({"name": "portcullis-cli"}))
        .await
        .expect(201);
    let fetch = || async {
        let document: Value =
            reqwest::get(server.url("/t/operator/.well-known/openid-configuration"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        document["portcullis_cli_client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let statuses = crate::concurrency::all_at_once(8, |_| {
        let url = server.url("/t/operator/.well-known/openid-configuration");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    })
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let id = fetch().await;
    assert_ne!(id, impostor["id"].as_str().unwrap());
    let clients = server
        .admin()
        .get("/v1/service-principals?limit=500")
        .await
        .expect(200);
    let named: Vec<&Value> = clients["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|sp| sp["name"].as_str().unwrap().starts_with("portcullis-cli"))
        .collect();
    assert_eq!(
        named.len(),
        2,
        "the impostor and one built-in client: {named:?}"
    );
    let settings = server
        .admin()
        .get(&format!("/v1/service-principals/{id}/oauth-client"))
        .await
        .expect(200);
    assert_eq!(settings["client_type"], "public");
    assert_eq!(
        settings["grant_types"],
        json!(["authorization_code", "device_code", "refresh_token"])
    );
    assert_eq!(
        settings["redirect_uris"],
        json!(["http://127.0.0.1/callback", "http://[::1]/callback"])
    );
    assert_eq!(
        settings["resources"],
        json!([crate::admin_tokens::admin_api(&server)])
    );
}

#[tokio::test]
async fn a_person_logs_in_with_the_browser_on_this_machine_through_a_loopback_redirect() {
    let server = TestServer::start().await;
    let config = tempfile::tempdir().unwrap();
    let (mut browser, alice) = signed_in(&server, "alice").await;
    // `true` stands in for the browser: the test opens the printed link itself.
    let mut login = portcullis(
        &server,
        config.path(),
        &["login", "--tenant", "operator", "--with", "browser"],
    )
    .env("BROWSER", "true")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let link = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the command prints the link before it waits");
        if line.contains("/oauth/authorize?") {
            break line.trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let link = url::Url::parse(&link).unwrap();
    let params: std::collections::HashMap<String, String> =
        link.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    let redirect_uri = params["redirect_uri"].clone();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );

    // Another page on this machine cannot plant a code: the command waits for its own state.
    let http = reqwest::Client::new();
    let planted = http
        .get(format!("{redirect_uri}?code=planted&state=not-ours"))
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 400);
    let elsewhere = http
        .get(redirect_uri.replace("/callback", "/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    // The person's browser: already signed in, it goes straight back to the command.
    let path = &link.as_str()[link.as_str().find("/t/").unwrap()..];
    let answered = browser.get(path).await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let back = answered.location().to_owned();
    assert!(back.starts_with(&format!("{redirect_uri}?code=")), "{back}");
    let page = http.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are signed in"));

    let output = login.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("as alice"), "{stdout}");
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(config.path().join("login.json")).unwrap())
            .unwrap();
    assert_eq!(kept["flow"], "browser");
    let (code, stdout, stderr) = run(&server, config.path(), &["whoami"]).await;
    assert_eq!(code, 0, "{stderr}");
    let me: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(me["principal"], json!({"kind": "user", "id": alice}));
    assert_eq!(me["authentication"]["method"], "access_token");

    // The code was for that port's redirect URI and this verifier: it cannot be used again.
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, _) = crate::authorize::token(
        &server,
        &params["client_id"],
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &"v".repeat(43)),
        ],
    )
    .await;
    assert_eq!(status, 400);
}
