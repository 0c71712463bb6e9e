//! People and workloads on the admin API with access tokens from their own tenant's issuer
//! (audience: the admin API's resource), beside API keys: the engine decides on the token's
//! subject, the audit trail names the person, their session and client, and a revoked token, an
//! ended session or a disabled user is refused at once, on every node.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::authorize::{app, code_for, exchange, post_form, signed_in, token};
use crate::harness::{TestServer, cli};
use crate::signin::{Browser, PASSWORD};

/// The admin API's resource identifier: what its tokens' `aud` must be.
pub(crate) fn admin_api(server: &TestServer) -> String {
    format!("http://localhost:{}/v1", server.addr.port())
}

/// A confidential application that may get tokens for the admin API: its id and secret.
pub(crate) async fn console(server: &TestServer) -> (String, String) {
    let (id, secret) = app(server, "console", json!({"resources": [admin_api(server)]})).await;
    (id, secret.expect("a confidential client"))
}

/// Gives a user a built-in role across the tenant.
pub(crate) async fn assign(server: &TestServer, user: &str, role: &str) {
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": user}, "role": role, "scope": "tenant"}),
        )
        .await
        .expect(201);
}

/// A signed-in person's access token for the admin API, through the code flow.
pub(crate) async fn person_token(
    server: &TestServer,
    browser: &mut Browser,
    client: &str,
    secret: &str,
) -> String {
    let code = code_for(browser, client, &[]).await;
    let (status, tokens) = exchange(server, client, Some(secret), &code).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn refused_token(reply: crate::harness::Reply) -> Value {
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "RFC 6750 challenge: {challenge}"
    );
    reply.problem(401)
}

#[tokio::test]
async fn a_person_administers_the_tenant_with_an_access_token_and_the_audit_trail_names_them() {
    let server = TestServer::start().await;
    // This is about what a token carries; the tenant's demands on administrators' sign-ins are
    // tested in `administrators`.
    server
        .admin()
        .send(
            reqwest::Method::PUT,
            "/v1/administrator-policy",
            Some(json!({"mfa": "none", "recent_actions": []})),
            &[],
        )
        .await
        .expect(200);
    let (client, secret) = console(&server).await;
    let (mut browser, alice) = signed_in(&server, "alice").await;
    assign(&server, &alice, "user_administrator").await;
    let access = person_token(&server, &mut browser, &client, &secret).await;
    let as_alice = server.client(&access);

    let me = as_alice.get("/v1/me").await.expect(200);
    assert_eq!(me["principal"], json!({"kind": "user", "id": alice}));
    assert_eq!(me["display"], "alice");
    let signed_in_with = &me["authentication"];
    assert_eq!(signed_in_with["method"], "access_token");
    assert_eq!(signed_in_with["client_id"], client);
    assert_eq!(signed_in_with["amr"], json!(["pwd"]));
    let session = signed_in_with["session_id"].as_str().unwrap().to_owned();
    assert!(!session.is_empty());
    assert_eq!(me["grants"][0]["role"], "user_administrator");

    // What she holds, she may do; the engine decides exactly as for a key.
    let bob = as_alice
        .post("/v1/users", json!({"user_name": "bob"}))
        .await
        .expect(201);
    let refused = as_alice
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": bob["id"]}, "role": "tenant_administrator", "scope": "tenant"}),
        )
        .await
        .problem(403);
    assert!(refused["detail"].as_str().unwrap().contains("denied"));

    let created = server.admin().audit("user.create").await;
    let event = created
        .iter()
        .find(|e| e["target"]["id"] == bob["id"])
        .expect("the creation is audited");
    assert_eq!(event["actor"]["kind"], "user");
    assert_eq!(event["actor"]["id"], alice);
    assert_eq!(event["actor"]["display"], "alice");
    let how = &event["actor"]["authentication"];
    assert_eq!(how["method"], "access_token");
    assert_eq!(how["session_id"], session);
    assert_eq!(how["client_id"], client);
    assert_eq!(how["amr"], json!(["pwd"]));
    assert_eq!(how["acr"], "password");
    assert!(how["auth_time"].as_i64().unwrap() > 0);
    // The chain, with the new field in it, still verifies independently.
    let (code, stdout, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");

    // A key's actions name the key.
    let by_key = server.admin().get("/v1/me").await.expect(200);
    assert_eq!(by_key["authentication"]["method"], "api_key");
    assert!(
        by_key["authentication"]["api_key"]
            .as_str()
            .unwrap()
            .starts_with("pcs_")
    );
}

#[tokio::test]
async fn a_revoked_token_an_ended_session_or_a_disabled_user_is_refused_at_once_on_every_node() {
    let server = TestServer::start().await;
    // Nodes behind one load balancer share the public URL their tokens name.
    let public_url = format!("http://localhost:{}", server.addr.port());
    let other_node = server
        .another_node(|s| portcullis_server::Settings {
            public_url: Some(public_url),
            ..s
        })
        .await;
    let (client, secret) = console(&server).await;
    let (mut browser, alice) = signed_in(&server, "alice").await;
    assign(&server, &alice, "security_reader").await;

    // Revoked (RFC 7009) on one node: refused on the other at the next request.
    let access = person_token(&server, &mut browser, &client, &secret).await;
    other_node
        .client(&access)
        .get("/v1/users")
        .await
        .expect(200);
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/revoke",
        &client,
        Some(&secret),
        &[("token", &access)],
    )
    .await;
    assert_eq!(status, 200);
    let refused = refused_token(other_node.client(&access).get("/v1/users").await);
    assert!(
        refused["detail"].as_str().unwrap().contains("revoked"),
        "{refused}"
    );

    // The session ended (signed out): its tokens stop with it.
    let access = person_token(&server, &mut browser, &client, &secret).await;
    server.client(&access).get("/v1/users").await.expect(200);
    let account = browser.get("/t/operator/account").await;
    assert_eq!(
        browser
            .post("/t/operator/sign-out", &[("csrf", &account.csrf())])
            .await
            .status,
        303
    );
    refused_token(other_node.client(&access).get("/v1/users").await);

    // An offline grant outlives the session for applications, but not on the admin API.
    assert_eq!(
        browser.sign_in("operator", "alice", PASSWORD).await.status,
        303
    );
    let code = code_for(&mut browser, &client, &[("scope", "openid offline_access")]).await;
    let (_, offline) = exchange(&server, &client, Some(&secret), &code).await;
    let offline = offline["access_token"].as_str().unwrap().to_owned();
    server.client(&offline).get("/v1/users").await.expect(200);
    let account = browser.get("/t/operator/account").await;
    browser
        .post("/t/operator/sign-out", &[("csrf", &account.csrf())])
        .await;
    let refused = refused_token(server.client(&offline).get("/v1/users").await);
    assert!(
        refused["detail"].as_str().unwrap().contains("session"),
        "{refused}"
    );

    // Disabled: every token of theirs stops.
    assert_eq!(
        browser.sign_in("operator", "alice", PASSWORD).await.status,
        303
    );
    let access = person_token(&server, &mut browser, &client, &secret).await;
    other_node
        .client(&access)
        .get("/v1/users")
        .await
        .expect(200);
    server
        .admin()
        .patch(&format!("/v1/users/{alice}"), json!({"state": "disabled"}))
        .await
        .expect(200);
    refused_token(other_node.client(&access).get("/v1/users").await);
}

#[tokio::test]
async fn a_workload_token_is_its_own_identity_and_tokens_for_anything_else_are_refused() {
    let server = TestServer::start().await;
    let admin_api = admin_api(&server);
    let (client, secret) = app(
        &server,
        "robot",
        json!({
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "resources": ["https://api.example.com", admin_api],
        }),
    )
    .await;
    let secret = secret.unwrap();

    let own = workload_token(&server, &client, &secret, Some(&admin_api)).await;
    let robot = server.client(&own);
    let me = robot.get("/v1/me").await.expect(200);
    assert_eq!(
        me["principal"],
        json!({"kind": "service_principal", "id": client})
    );
    assert_eq!(me["authentication"]["method"], "access_token");
    assert!(me["authentication"].get("session_id").is_none());
    // It holds no role yet: the engine refuses, then allows once it does.
    robot.get("/v1/users").await.problem(403);
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": client}, "role": "security_reader", "scope": "tenant"}),
        )
        .await
        .expect(201);
    robot.get("/v1/users").await.expect(200);

    // A token for another API (its default resource) is not one for the admin API.
    let elsewhere = workload_token(&server, &client, &secret, None).await;
    let refused = refused_token(server.client(&elsewhere).get("/v1/users").await);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("https://api.example.com")
    );

    // Forgeries: a changed payload under the real signature, no signature at all, an issuer
    // that is no tenant here.
    let parts: Vec<&str> = own.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let admin_id = server.admin().get("/v1/me").await.expect(200)["principal"]["id"].clone();
    claims["sub"] = admin_id.clone();
    claims["client_id"] = admin_id;
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let altered = format!("{}.{payload}.{}", parts[0], parts[2]);
    refused_token(server.client(&altered).get("/v1/users").await);
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#)
    );
    refused_token(server.client(&unsigned).get("/v1/users").await);
    claims["iss"] = json!(format!("http://localhost:{}/t/nowhere", server.addr.port()));
    let stranger = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    refused_token(server.client(&stranger).get("/v1/users").await);
}

/// A `client_credentials` token, for `resource` or the client's default one.
async fn workload_token(
    server: &TestServer,
    client: &str,
    secret: &str,
    resource: Option<&str>,
) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(resource) = resource {
        form.push(("resource", resource));
    }
    let (status, body) = token(server, client, Some(secret), &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn another_tenants_token_acts_only_in_that_tenant() {
    let server = TestServer::start().await;
    let (_, other_key) = server.admin().create_tenant("globex").await;
    let globex = server.client(&other_key);
    let robot = globex
        .post("/v1/service-principals", json!({"name": "robot"}))
        .await
        .expect(201);
    let id = robot["id"].as_str().unwrap();
    globex
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{id}/oauth-client"),
            Some(json!({"grant_types": ["client_credentials"], "scopes": ["orders:read"], "resources": [admin_api(&server)]})),
            &[],
        )
        .await
        .expect(200);
    let secret = globex
        .post(&format!("/v1/service-principals/{id}/api-keys"), json!({}))
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post_form(
        &server,
        "/t/globex/oauth/token",
        id,
        Some(&secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let me = server.client(access).get("/v1/me").await.expect(200);
    assert_eq!(me["tenant"]["name"], "globex");
    // The operator tenant's token endpoint does not know globex's client.
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/token",
        id,
        Some(&secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn making_or_changing_a_client_of_the_admin_api_is_as_privileged_as_assigning_roles() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, security_admin) = admin
        .principal_with_role("secadmin", "security_administrator", "tenant")
        .await;
    let security_admin = server.client(&security_admin);
    let app = security_admin
        .post("/v1/service-principals", json!({"name": "phish"}))
        .await
        .expect(201);
    let id = app["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/service-principals/{id}/oauth-client");
    let settings = |resources: Value, redirect: &str| {
        json!({
            "grant_types": ["authorization_code"],
            "redirect_uris": [redirect],
            "scopes": ["orders:read"],
            "resources": resources,
        })
    };
    // An ordinary client is theirs to make.
    security_admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(settings(
                json!(["https://api.example.com"]),
                "https://app.example.com/cb",
            )),
            &[],
        )
        .await
        .expect(200);
    // One that gets admin API tokens is not.
    security_admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(settings(
                json!([admin_api(&server)]),
                "https://app.example.com/cb",
            )),
            &[],
        )
        .await
        .problem(403);
    // Nor, once a tenant administrator made it one, may they point it somewhere else.
    admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(settings(
                json!([admin_api(&server)]),
                "https://app.example.com/cb",
            )),
            &[],
        )
        .await
        .expect(200);
    security_admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(settings(
                json!(["https://api.example.com"]),
                "https://evil.example/cb",
            )),
            &[],
        )
        .await
        .problem(403);
    let kept = admin.get(&path).await.expect(200);
    assert_eq!(kept["redirect_uris"], json!(["https://app.example.com/cb"]));
    assert_eq!(kept["resources"], json!([admin_api(&server)]));
}
