//! The device authorization grant (RFC 8628): a client without a browser gets a user code, the
//! user approves it on the real verification page, and the client's polling turns into tokens.
//! Polling too fast, denial, expiry, guessing at user codes and racing answers or redemptions
//! are each refused as the RFC says, and change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_tokens::admin_api;
use crate::authorize::{app, post_form, signed_in, token};
use crate::concurrency::all_at_once;
use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public client that signs users in with the device grant, for the admin API.
pub(crate) async fn command_line(server: &TestServer) -> String {
    let (id, _) = app(
        server,
        "portcullis-cli",
        json!({
            "client_type": "public",
            "grant_types": ["device_code", "refresh_token"],
            "redirect_uris": [],
            "resources": [admin_api(server)],
        }),
    )
    .await;
    id
}

/// RFC 8628 §3.1: the device's request.
pub(crate) async fn start(server: &TestServer, client: &str, scope: &str) -> Value {
    let (status, body) = post_form(
        server,
        "/t/operator/oauth/device_authorization",
        client,
        None,
        &[("scope", scope)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One poll of the token endpoint.
async fn poll(server: &TestServer, client: &str, device_code: &str) -> (StatusCode, Value) {
    token(
        server,
        client,
        None,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

/// The user's answer through the verification page: the code typed as a person might.
async fn answer(browser: &mut Browser, user_code: &str, decision: &str) -> crate::signin::Page {
    let entry = browser.get("/t/operator/device").await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    let typed = user_code.to_lowercase().replace('-', " ");
    let asked = browser
        .post(
            "/t/operator/device",
            &[("csrf", &entry.csrf()), ("user_code", &typed)],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("portcullis-cli"), "{}", asked.body);
    // Shown as the device shows it, however it was typed.
    assert!(asked.body.contains(user_code), "{}", asked.body);
    browser
        .post(
            "/t/operator/device/decision",
            &[
                ("csrf", &asked.csrf()),
                ("user_code", user_code),
                ("decision", decision),
            ],
        )
        .await
}

#[tokio::test]
async fn a_device_is_signed_in_when_its_user_approves_the_code_and_then_administers_as_them() {
    let server = TestServer::start().await;
    let client = command_line(&server).await;
    let discovery: Value = reqwest::get(server.url("/t/operator/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery["device_authorization_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/t/operator/oauth/device_authorization")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_GRANT))
    );
    assert_eq!(
        discovery["portcullis_admin_api_resource"],
        admin_api(&server)
    );

    let started = start(&server, &client, "openid profile").await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(started["interval"], 5);
    assert_eq!(started["expires_in"], 600);
    let page = format!("http://localhost:{}/t/operator/device", server.addr.port());
    assert_eq!(started["verification_uri"], page);
    assert_eq!(
        started["verification_uri_complete"],
        format!("{page}?user_code={user_code}")
    );

    // Nobody has answered: pending; asking again at once is too soon.
    let (status, pending) = poll(&server, &client, &device_code).await;
    assert_eq!(status, 400);
    assert_eq!(pending["error"], "authorization_pending");
    let (_, hurried) = poll(&server, &client, &device_code).await;
    assert_eq!(hurried["error"], "slow_down");

    // The link brings a signed-out person through sign-in and back, code filled in.
    let (mut browser, alice) = {
        let id = crate::signin::user_with_password(&server, "alice", false).await;
        (Browser::new(&server), id)
    };
    let link = browser
        .get(&format!("/t/operator/device?user_code={user_code}"))
        .await;
    assert_eq!(link.status, 303);
    assert_eq!(link.location(), "/t/operator/sign-in");
    let signed = browser.sign_in("operator", "alice", PASSWORD).await;
    assert_eq!(
        signed.location(),
        format!("/t/operator/device?user_code={user_code}")
    );
    let filled = browser.get(signed.location()).await;
    assert!(
        filled.body.contains(&format!("value=\"{user_code}\"")),
        "{}",
        filled.body
    );
    server
        .admin()
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": alice}, "role": "security_reader", "scope": "tenant"}),
        )
        .await
        .expect(201);

    let done = answer(&mut browser, &user_code, "allow").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Allowed"), "{}", done.body);

    server.advance(time::Duration::seconds(11));
    let (status, tokens) = poll(&server, &client, &device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["id_token"].is_string());
    assert!(tokens["refresh_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let me = server.client(&access).get("/v1/me").await.expect(200);
    assert_eq!(me["principal"], json!({"kind": "user", "id": alice}));
    assert_eq!(me["authentication"]["client_id"], client);
    server.client(&access).get("/v1/users").await.expect(200);
    let approved = server.admin().audit("oauth.device.approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["actor"]["id"], alice);

    // The device code is a one-time code: a second redemption is a copy, and revokes all.
    server.advance(time::Duration::seconds(11));
    let (_, again) = poll(&server, &client, &device_code).await;
    assert_eq!(again["error"], "invalid_grant", "{again}");
    server.client(&access).get("/v1/users").await.problem(401);
}

#[tokio::test]
async fn denied_expired_and_unknown_codes_get_their_errors_and_guessing_is_limited() {
    let server = TestServer::start_with(|s| portcullis_server::Settings {
        auth_failures_per_minute: Some(5),
        ..s
    })
    .await;
    let client = command_line(&server).await;
    let (mut browser, _) = signed_in(&server, "alice").await;

    let denied = start(&server, &client, "openid").await;
    let done = answer(&mut browser, denied["user_code"].as_str().unwrap(), "deny").await;
    assert!(done.body.contains("Denied"), "{}", done.body);
    let (_, refused) = poll(&server, &client, denied["device_code"].as_str().unwrap()).await;
    assert_eq!(refused["error"], "access_denied");
    assert!(server.admin().audit("oauth.authorize").await.is_empty());

    let (_, unknown) = poll(&server, &client, "not-a-device-code").await;
    assert_eq!(unknown["error"], "invalid_grant");

    let lapsed = start(&server, &client, "openid").await;
    server.advance(time::Duration::seconds(601));
    let (_, expired) = poll(&server, &client, lapsed["device_code"].as_str().unwrap()).await;
    assert_eq!(expired["error"], "expired_token");
    let entry = browser.get("/t/operator/device").await;
    let late = browser
        .post(
            "/t/operator/device",
            &[
                ("csrf", &entry.csrf()),
                ("user_code", lapsed["user_code"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("not valid"), "{}", late.body);

    // Guessing: a few misses, then every attempt is refused for the minute, even a right code.
    let live = start(&server, &client, "openid").await;
    for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF"] {
        let entry = browser.get("/t/operator/device").await;
        let missed = browser
            .post(
                "/t/operator/device",
                &[("csrf", &entry.csrf()), ("user_code", guess)],
            )
            .await;
        assert_eq!(missed.status, 400, "{}", missed.body);
    }
    let entry = browser.get("/t/operator/device").await;
    let right = browser
        .post(
            "/t/operator/device",
            &[
                ("csrf", &entry.csrf()),
                ("user_code", live["user_code"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(right.status, 429, "{}", right.body);

    // Forms need the browser's CSRF token.
    let forged = browser
        .post(
            "/t/operator/device/decision",
            &[
                ("csrf", &"A".repeat(43)),
                ("user_code", live["user_code"].as_str().unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn simultaneous_answers_and_redemptions_of_one_code_count_once() {
    let server = TestServer::start().await;
    let client = command_line(&server).await;
    let started = start(&server, &client, "openid").await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let device_code = started["device_code"].as_str().unwrap().to_owned();

    // Two people answer the same code at once, one allowing, one denying: one answer stands.
    let mut forms = Vec::new();
    for (name, decision) in [("alice", "allow"), ("bob", "deny")] {
        let (mut browser, _) = signed_in(&server, name).await;
        let entry = browser.get("/t/operator/device").await;
        let asked = browser
            .post(
                "/t/operator/device",
                &[("csrf", &entry.csrf()), ("user_code", &user_code)],
            )
            .await;
        forms.push((browser, asked.csrf(), decision));
    }
    let statuses = all_at_once(forms.len(), |i| {
        let (browser, csrf, decision) = &forms[i];
        browser.post_detached(
            "/t/operator/device/decision",
            &[
                ("csrf", csrf),
                ("user_code", &user_code),
                ("decision", decision),
            ],
        )
    })
    .await;
    // The loser is told the code was answered meanwhile (409), or, arriving after the
    // winner's commit, that the code is no longer valid (400).
    let ok = statuses.iter().filter(|s| s.as_u16() == 200).count();
    let refused = statuses
        .iter()
        .filter(|s| [400, 409].contains(&s.as_u16()))
        .count();
    assert_eq!((ok, refused), (1, 1), "{statuses:?}");
    let answers = server.admin().audit("oauth.device.approved").await.len()
        + server.admin().audit("oauth.device.denied").await.len();
    assert_eq!(answers, 1);

    if statuses[0].as_u16() != 200 {
        // Denied: nothing to redeem.
        let (_, refused) = poll(&server, &client, &device_code).await;
        assert_eq!(refused["error"], "access_denied");
        return;
    }
    // Approved: ten devices racing with copies of the device code get one set of tokens.
    let results = all_at_once(10, |_| {
        let server_url = server.url("/t/operator/oauth/token");
        let form = [
            ("grant_type", DEVICE_GRANT.to_owned()),
            ("device_code", device_code.clone()),
            ("client_id", client.clone()),
        ];
        async move {
            let response = reqwest::Client::new()
                .post(server_url)
                .form(&form)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    })
    .await;
    // The first poll is the one in time; the rest came too soon, and so got nothing.
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 400).count(),
        9,
        "{results:?}"
    );
}
