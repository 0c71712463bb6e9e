//! People who administer a tenant are held to its policy for administrators: a change needs a
//! multi-factor sign-in, a privileged change a recent one. A request that falls short gets RFC
//! 9470's challenge and an audit record; the person steps up through the device grant (the
//! verification page asks only for what is missing) and the retry succeeds. Keys and
//! workloads are not people and are not held to it.

use serde_json::{Value, json};

use crate::admin_tokens::admin_api;
use crate::authorize::{post_form, token};
use crate::device::command_line;
use crate::harness::{BIN, Reply, TestServer, cli};
use crate::mfa::code;
use crate::signin::{Browser, PASSWORD, user_with_password};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A device sign-in for the admin API, asking `extra` (`acr_values`, `max_age`) of the
/// person's sign-in, approved in `browser` (see `approve`). Returns the access token.
pub(crate) async fn device_token(
    server: &TestServer,
    client: &str,
    browser: &mut Browser,
    extra: &[(&str, &str)],
    key: Option<&str>,
) -> String {
    let resource = admin_api(server);
    let mut form = vec![("scope", "openid"), ("resource", resource.as_str())];
    form.extend_from_slice(extra);
    let (status, started) = post_form(
        server,
        "/t/operator/oauth/device_authorization",
        client,
        None,
        &form,
    )
    .await;
    assert_eq!(status, 200, "{started}");
    let user_code = started["user_code"].as_str().unwrap();
    approve(browser, user_code, key).await;
    let device_code = started["device_code"].as_str().unwrap();
    let (status, tokens) = token(
        server,
        client,
        None,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// Approves a user code on the verification page; when the page sends the person to step up
/// first, they answer with the authenticator `key`'s next code.
pub(crate) async fn approve(browser: &mut Browser, user_code: &str, key: Option<&str>) {
    let mut asked = enter(browser, user_code).await;
    if asked.status == 303 {
        let step_up = asked.location().to_owned();
        assert!(step_up.starts_with("/t/operator/step-up?"), "{step_up}");
        let page = browser.get(&step_up).await;
        assert!(
            page.body.contains("name=\"code\"") && !page.body.contains("name=\"password\""),
            "only the missing second factor is asked for: {}",
            page.body
        );
        let answer = code(key.expect("an authenticator to step up with"), 1);
        let proved = browser
            .post(
                "/t/operator/step-up/code",
                &[
                    ("csrf", &page.csrf()),
                    ("code", &answer),
                    ("to", &format!("/t/operator/device?user_code={user_code}")),
                    ("strength", "mfa"),
                    ("max_age", ""),
                ],
            )
            .await;
        assert_eq!(proved.status, 303, "{}", proved.body);
        let back = browser.get(proved.location()).await;
        assert_eq!(
            back.location(),
            format!("/t/operator/device?user_code={user_code}")
        );
        asked = enter(browser, user_code).await;
    }
    assert_eq!(asked.status, 200, "{}", asked.body);
    let allowed = browser
        .post(
            "/t/operator/device/decision",
            &[
                ("csrf", &asked.csrf()),
                ("user_code", user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
}

async fn enter(browser: &mut Browser, user_code: &str) -> crate::signin::Page {
    let entry = browser.get("/t/operator/device").await;
    browser
        .post(
            "/t/operator/device",
            &[("csrf", &entry.csrf()), ("user_code", user_code)],
        )
        .await
}

/// The RFC 9470 challenge of a refusal, after checking it is one.
fn step_up_challenge(reply: Reply) -> (String, Value) {
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\""),
        "{challenge:?}: {} {}",
        reply.status,
        reply.body
    );
    let problem = reply.problem(401);
    assert_eq!(
        problem["type"],
        "urn:portcullis:problem:insufficient-user-authentication"
    );
    (challenge, problem)
}

/// Gives the user `role` tenant-wide, through the bootstrap administrator.
pub(crate) async fn give_role(server: &TestServer, user: &str, role: &str) {
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": user}, "role": role}),
        )
        .await
        .expect(201);
}

async fn set_policy(server: &TestServer, policy: Value) -> Reply {
    server
        .admin()
        .send(
            reqwest::Method::PUT,
            "/v1/administrator-policy",
            Some(policy),
            &[],
        )
        .await
}

#[tokio::test]
async fn a_person_steps_up_for_changes_and_signs_in_again_for_privileged_ones() {
    let server = TestServer::start().await;
    let client = command_line(&server).await;
    let alice = user_with_password(&server, "alice", false).await;
    for role in ["user_administrator", "privileged_role_administrator"] {
        give_role(&server, &alice, role).await;
    }
    let defaults = server
        .admin()
        .get("/v1/administrator-policy")
        .await
        .expect(200);
    assert_eq!(defaults["mfa"], "writes");
    assert_eq!(defaults["recent_minutes"], 15);
    assert!(
        defaults["recent_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("role.assign"))
    );

    // A password sign-in reads, but changes nothing.
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "alice", PASSWORD).await;
    let password_only = device_token(&server, &client, &mut browser, &[], None).await;
    let as_alice = server.client(&password_only);
    as_alice.get("/v1/users").await.expect(200);
    let (challenge, problem) = step_up_challenge(
        as_alice
            .post("/v1/users", json!({"user_name": "carol"}))
            .await,
    );
    assert!(challenge.contains("acr_values=\"mfa\""), "{challenge}");
    assert!(!challenge.contains("max_age"), "{challenge}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("lacks a second factor"),
        "{problem}"
    );
    assert!(
        server
            .admin()
            .get("/v1/users?prefix=carol")
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was created"
    );
    let refused: Vec<Value> = server
        .admin()
        .audit("user.create")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["outcome"], "denied");
    assert_eq!(refused[0]["actor"]["id"], alice);
    assert_eq!(refused[0]["details"]["acr_values"], "mfa");

    // She sets up an authenticator; her session is still a password one, so she is asked for
    // the code alone, and her new token carries both.
    let setup = browser.get("/t/operator/account/mfa").await;
    let key = crate::mfa::manual_key(&setup.body);
    let enrolled = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &setup.csrf()), ("code", &code(&key, 0))],
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let stepped_up = device_token(
        &server,
        &client,
        &mut browser,
        &[("acr_values", "mfa")],
        Some(&key),
    )
    .await;
    let as_alice = server.client(&stepped_up);
    let carol = as_alice
        .post("/v1/users", json!({"user_name": "carol"}))
        .await
        .expect(201);
    let created = server.admin().audit("user.create").await;
    let event = created
        .iter()
        .find(|e| e["outcome"] == "success")
        .expect("the creation is audited");
    assert_eq!(event["actor"]["id"], alice);
    assert_eq!(event["actor"]["authentication"]["acr"], "mfa");
    assert_eq!(
        event["actor"]["authentication"]["amr"],
        json!(["pwd", "otp", "mfa"])
    );

    // Her proof is minutes old: she may assign roles.
    let assign = || {
        as_alice.post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": carol["id"]}, "role": "auditor"}),
        )
    };
    assign().await.expect(201);

    // The tenant shortens "recent" to a minute; two minutes on, assigning needs a new sign-in,
    // while creating users (not on the list) still goes through.
    set_policy(&server, json!({"mfa": "writes", "recent_minutes": 1}))
        .await
        .expect(200);
    server.advance(time::Duration::minutes(2));
    let (challenge, _) = step_up_challenge(assign().await);
    assert!(
        challenge.contains("acr_values=\"mfa\"") && challenge.contains("max_age=60"),
        "{challenge}"
    );
    as_alice
        .post("/v1/users", json!({"user_name": "dave"}))
        .await
        .expect(201);
    // An API key is not a person: the policy does not apply to it.
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": carol["id"]}, "role": "security_reader"}),
        )
        .await
        .expect(201);

    // Reading too, when the tenant says so: the password-only token may no longer even list.
    set_policy(&server, json!({"mfa": "all"})).await.expect(200);
    step_up_challenge(server.client(&password_only).get("/v1/users").await);
    as_alice.get("/v1/users").await.expect(200);
}

#[tokio::test]
async fn the_policy_for_administrators_is_validated_and_guarded_like_any_tenant_setting() {
    let server = TestServer::start().await;
    for (policy, field) in [
        (
            json!({"mfa": "writes", "recent_minutes": 0}),
            "recent_minutes",
        ),
        (
            json!({"mfa": "writes", "recent_minutes": 721}),
            "recent_minutes",
        ),
        (
            json!({"mfa": "writes", "mfa_strength": "password"}),
            "mfa_strength",
        ),
    ] {
        let problem = set_policy(&server, policy).await.problem(422);
        assert_eq!(problem["field"], field, "{problem}");
    }
    // What cannot even be read is a bad request, naming where.
    let unknown = set_policy(
        &server,
        json!({"mfa": "writes", "recent_actions": ["role.grant"]}),
    )
    .await
    .problem(400);
    assert_eq!(unknown["field"], "recent_actions[0]");
    assert!(
        unknown["detail"].as_str().unwrap().contains("role.grant"),
        "{unknown}"
    );
    set_policy(&server, json!({"mfa": "sometimes"}))
        .await
        .problem(400);
    let unchanged = server
        .admin()
        .get("/v1/administrator-policy")
        .await
        .expect(200);
    assert_eq!(unchanged["mfa"], "writes");

    // Actions come back in the order of the action list, each once.
    let strict = json!({"mfa": "all", "mfa_strength": "phishing_resistant",
        "recent_actions": ["tenant.update", "role.assign"], "recent_minutes": 5,
        "api_keys": "allowed"});
    let mut sent = strict.clone();
    sent["recent_actions"] = json!(["role.assign", "tenant.update", "role.assign"]);
    assert_eq!(set_policy(&server, sent).await.expect(200), strict);
    assert_eq!(
        server
            .admin()
            .get("/v1/administrator-policy")
            .await
            .expect(200),
        strict
    );
    let changed = server
        .admin()
        .audit("tenant.administrator_policy.update")
        .await;
    assert_eq!(changed.len(), 1);

    // Reading it is a tenant read; changing it, a tenant update.
    let (_, reader) = server
        .admin()
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    let reader = server.client(&reader);
    reader.get("/v1/administrator-policy").await.expect(200);
    reader
        .send(
            reqwest::Method::PUT,
            "/v1/administrator-policy",
            Some(json!({"mfa": "none"})),
            &[],
        )
        .await
        .problem(403);
}

#[tokio::test]
async fn a_tenant_refuses_the_api_keys_of_privileged_principals_when_it_says_so() {
    let server = TestServer::start().await;
    let client = command_line(&server).await;
    let alice = user_with_password(&server, "alice", false).await;
    give_role(&server, &alice, "tenant_administrator").await;
    let (reader_id, reader_key) = server
        .admin()
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    // Alice signs in with a password alone; the tenant lets that administer.
    set_policy(&server, json!({"mfa": "none"}))
        .await
        .expect(200);
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "alice", PASSWORD).await;
    let as_alice = server.client(&device_token(&server, &client, &mut browser, &[], None).await);

    // A key cannot turn off keys: it would lock out the caller that asked.
    let refusing = json!({"mfa": "none", "api_keys": "unprivileged_only"});
    let problem = set_policy(&server, refusing.clone()).await.problem(409);
    assert_eq!(problem["field"], "api_keys", "{problem}");
    server.admin().get("/v1/users").await.expect(200);

    // A person can: from then on the administrator's key is refused, and the refusal is
    // audited; the reader's key, which holds nothing privileged, still works.
    let saved = as_alice
        .send(
            reqwest::Method::PUT,
            "/v1/administrator-policy",
            Some(refusing),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(saved["api_keys"], "unprivileged_only");
    let problem = server.admin().get("/v1/users").await.problem(403);
    assert!(
        problem["detail"].as_str().unwrap().contains("API keys"),
        "{problem}"
    );
    let refused: Vec<Value> = as_alice
        .audit("user.read")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["details"]["api_keys"], "unprivileged_only");
    let reader = server.client(&reader_key);
    reader.get("/v1/users").await.expect(200);
    as_alice.get("/v1/users").await.expect(200);

    // Given a privileged role, the reader's key stops working at once.
    as_alice
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": reader_id},
                   "role": "privileged_role_administrator"}),
        )
        .await
        .expect(201);
    reader.get("/v1/users").await.problem(403);

    // Recovery hands out a key, so it accepts keys again, and says so.
    let output = tokio::process::Command::new(BIN)
        .args(["recover", "--tenant", "operator"])
        .env("PORTCULLIS_DATA_DIR", server.data_dir())
        .env("PORTCULLIS_DATABASE_URL", &server.db.url)
        .env("PORTCULLIS_KEK", server.kek())
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    server.admin().get("/v1/users").await.expect(200);
    let recovered = server.admin().audit("tenant.recover").await;
    assert_eq!(
        recovered[0]["details"]["privileged_api_keys_allowed_again"],
        true
    );
}

/// A request to the admin API as alice's browser sends it: her cookies, and whichever of the
/// CSRF header and fetch metadata `extra` names.
async fn from_browser(
    server: &TestServer,
    browser: &Browser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Reply {
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers = vec![("cookie", cookies.as_str())];
    headers.extend_from_slice(extra);
    server.anonymous().send(method, path, body, &headers).await
}

#[tokio::test]
async fn a_browser_session_works_on_the_admin_api_only_from_this_servers_pages() {
    let server = TestServer::start().await;
    let alice = user_with_password(&server, "alice", false).await;
    give_role(&server, &alice, "user_administrator").await;
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.sign_in("operator", "alice", PASSWORD).await.status,
        303
    );
    let csrf = browser.cookies["portcullis_csrf"].clone();
    let own_origin = format!("http://localhost:{}", server.addr.port());
    let same_origin = [
        ("x-csrf-token", csrf.as_str()),
        ("origin", own_origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let get = |extra: &'static [(&'static str, &'static str)]| {
        from_browser(
            &server,
            &browser,
            reqwest::Method::GET,
            "/v1/me",
            None,
            extra,
        )
    };

    let me = from_browser(
        &server,
        &browser,
        reqwest::Method::GET,
        "/v1/me",
        None,
        &same_origin,
    )
    .await
    .expect(200);
    assert_eq!(me["principal"]["id"], alice);
    assert_eq!(me["authentication"]["method"], "session");
    assert_eq!(me["authentication"]["amr"], json!(["pwd"]));
    assert_eq!(me["authentication"]["acr"], "password");

    // Counted, and visible per principal and method (written in the background, by the
    // minute), with no audit event per request.
    let mut used = Value::Null;
    for _ in 0..100 {
        used = server
            .admin()
            .get(&format!(
                "/v1/api-use?principal_kind=user&principal_id={alice}"
            ))
            .await
            .expect(200);
        if !used["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(used["items"][0]["method"], "session", "{used}");
    assert_eq!(used["items"][0]["principal"]["id"], alice);
    let everyone = server.admin().get("/v1/api-use").await.expect(200);
    assert!(
        everyone["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["method"] == "api_key" && u["principal"]["kind"] == "service_principal"),
        "{everyone}"
    );
    let (code, stdout, stderr) = cli(
        &server,
        &server.admin_key,
        &[
            "audit",
            "api-use",
            "--principal-kind",
            "user",
            "--principal-id",
            &alice,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"session\""), "{stdout}");
    for bad in ["limit=0", "limit=1001", "principal_kind=user"] {
        server
            .admin()
            .get(&format!("/v1/api-use?{bad}"))
            .await
            .problem(422);
    }
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_api_authentications_total{method=\"session\"}")),
        "{metrics}"
    );

    // Without the page's token, with another one, or sent by another site: refused, whatever
    // the cookie.
    get(&[]).await.problem(403);
    get(&[(
        "x-csrf-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )])
    .await
    .problem(403);
    for foreign in [
        [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "same-origin"),
        ],
        [
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
        [
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "same-site"),
        ],
    ] {
        let mut headers = vec![("x-csrf-token", csrf.as_str())];
        headers.extend_from_slice(&foreign);
        let problem = from_browser(
            &server,
            &browser,
            reqwest::Method::POST,
            "/v1/users",
            Some(json!({"user_name": "mallory"})),
            &headers,
        )
        .await
        .problem(403);
        assert!(
            problem["detail"].as_str().unwrap().contains("X-CSRF-Token"),
            "{problem}"
        );
    }
    assert!(
        server
            .admin()
            .get("/v1/users?prefix=mallory")
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The session is a person's: a change needs the MFA it lacks (RFC 9470), and once the
    // tenant asks for none, it goes through and is audited as hers, with the session.
    let create = |name: &'static str| {
        from_browser(
            &server,
            &browser,
            reqwest::Method::POST,
            "/v1/users",
            Some(json!({ "user_name": name })),
            &same_origin,
        )
    };
    step_up_challenge(create("carol").await);
    set_policy(&server, json!({"mfa": "none"}))
        .await
        .expect(200);
    create("carol").await.expect(201);
    let event = server
        .admin()
        .audit("user.create")
        .await
        .into_iter()
        .find(|e| e["outcome"] == "success")
        .unwrap();
    assert_eq!(event["actor"]["id"], alice);
    assert_eq!(event["actor"]["authentication"]["method"], "session");
    assert!(event["actor"]["authentication"]["session_id"].is_string());

    // Signed out, the cookie is worth nothing.
    let cookies = browser.cookies.clone();
    let account = browser.get("/t/operator/account").await;
    browser
        .post("/t/operator/sign-out", &[("csrf", &account.csrf())])
        .await;
    browser.cookies = cookies;
    from_browser(
        &server,
        &browser,
        reqwest::Method::GET,
        "/v1/me",
        None,
        &same_origin,
    )
    .await
    .problem(401);
}
