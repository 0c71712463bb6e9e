//! Passkeys through the real pages, answered by an independent WebAuthn client and
//! authenticator (1Password's passkey-client): registration, passwordless sign-in, and the
//! attacks — replayed answers, foreign origins, cloned keys, other tenants, removed keys,
//! disabled users — plus the escape from a password lock-out.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD, Page, user_with_password};
use crate::soft_passkey::SoftPasskey;

pub(crate) fn origin(server: &TestServer) -> String {
    format!("http://localhost:{}", server.addr.port())
}

/// Starts a ceremony as the page's script does: the handle and the browser's options.
pub(crate) async fn start(browser: &mut Browser, path: &str, csrf: &str) -> (String, Value) {
    let reply = browser.post(path, &[("csrf", csrf)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    let ceremony = body["ceremony"].as_str().unwrap().to_owned();
    (ceremony, json!({ "publicKey": body["publicKey"] }))
}

/// Registers a passkey named `name` from a signed-in browser.
pub(crate) async fn register(
    server: &TestServer,
    browser: &mut Browser,
    key: &mut SoftPasskey,
    name: &str,
) -> Page {
    let page = browser.get("/t/operator/account/passkeys").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let (ceremony, options) = start(browser, "/t/operator/account/passkeys/options", &csrf).await;
    let answer = key.register(&origin(server), &options).await.unwrap();
    browser
        .post(
            "/t/operator/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("ceremony", &ceremony),
                ("credential", &answer.to_string()),
            ],
        )
        .await
}

/// A signed-in user `name` with one passkey on `key`; returns the user's id.
pub(crate) async fn user_with_passkey(
    server: &TestServer,
    name: &str,
    key: &mut SoftPasskey,
) -> String {
    let id = user_with_password(server, name, false).await;
    let mut browser = Browser::new(server);
    assert_eq!(
        browser.sign_in("operator", name, PASSWORD).await.status,
        303
    );
    let added = register(server, &mut browser, key, "Laptop").await;
    assert_eq!(added.status, 303, "{}", added.body);
    id
}

/// A passkey sign-in's answer, from `origin_url`, ready to post.
pub(crate) async fn sign_in_answer(
    browser: &mut Browser,
    tenant: &str,
    key: &mut SoftPasskey,
    origin_url: &str,
) -> Vec<(&'static str, String)> {
    let page = browser.get(&format!("/t/{tenant}/sign-in")).await;
    assert!(page.body.contains("data-passkey=\"sign-in\""));
    let csrf = page.csrf();
    let (ceremony, options) = start(
        browser,
        &format!("/t/{tenant}/sign-in/passkey/options"),
        &csrf,
    )
    .await;
    let answer = key.sign_in(origin_url, &options).await.unwrap();
    vec![
        ("csrf", csrf),
        ("ceremony", ceremony),
        ("credential", answer.to_string()),
    ]
}

pub(crate) async fn post_answer(
    browser: &mut Browser,
    tenant: &str,
    form: &[(&str, String)],
) -> Page {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser
        .post(&format!("/t/{tenant}/sign-in/passkey"), &pairs)
        .await
}

async fn passkey_sign_in(server: &TestServer, key: &mut SoftPasskey) -> Page {
    let mut browser = Browser::new(server);
    let form = sign_in_answer(&mut browser, "operator", key, &origin(server)).await;
    post_answer(&mut browser, "operator", &form).await
}

#[tokio::test]
async fn a_passkey_registers_and_then_signs_in_without_a_password() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    let id = user_with_passkey(&server, "ada", &mut key).await;
    let admin = server.admin();
    let listed = admin
        .get(&format!("/v1/users/{id}/passkeys"))
        .await
        .expect(200)["items"]
        .take();
    assert_eq!(listed[0]["name"], "Laptop");
    assert!(listed[0]["last_used_at"].is_null());
    assert!(
        listed[0].get("credential").is_none(),
        "no key material leaves the server"
    );

    for _ in 0..2 {
        let signed_in = passkey_sign_in(&server, &mut key).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(signed_in.location(), "/t/operator/account");
    }
    let sessions = admin
        .get(&format!("/v1/users/{id}/sessions"))
        .await
        .expect(200)["items"]
        .take();
    let passwordless: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["strength"] == "phishing_resistant")
        .collect();
    assert_eq!(passwordless.len(), 2);
    assert_eq!(passwordless[0]["methods"][0]["method"], "hwk");
    let listed = admin
        .get(&format!("/v1/users/{id}/passkeys"))
        .await
        .expect(200)["items"]
        .take();
    assert!(listed[0]["last_used_at"].is_string());
    let log = admin.get("/v1/sign-ins?outcome=success").await.expect(200);
    assert!(log.to_string().contains("phishing_resistant"), "{log}");
}

#[tokio::test]
async fn a_passkey_answer_is_accepted_once() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let mut browser = Browser::new(&server);
    let form = sign_in_answer(&mut browser, "operator", &mut key, &origin(&server)).await;
    assert_eq!(
        post_answer(&mut browser, "operator", &form).await.status,
        303
    );

    // The same answer again, and the same answer against a new ceremony: both refused.
    let mut thief = Browser::new(&server);
    let csrf = thief.get("/t/operator/sign-in").await.csrf();
    let replayed = post_answer(
        &mut thief,
        "operator",
        &[("csrf", csrf.clone()), form[1].clone(), form[2].clone()],
    )
    .await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    let (ceremony, _) = start(&mut thief, "/t/operator/sign-in/passkey/options", &csrf).await;
    let rebound = post_answer(
        &mut thief,
        "operator",
        &[("csrf", csrf), ("ceremony", ceremony), form[2].clone()],
    )
    .await;
    assert_eq!(rebound.status, 401, "{}", rebound.body);
    assert!(!thief.cookies.contains_key("portcullis_session"));
}

#[tokio::test]
async fn a_passkey_used_from_another_origin_is_refused() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let phishing = format!("http://login.localhost:{}", server.addr.port());
    let mut browser = Browser::new(&server);
    let form = sign_in_answer(&mut browser, "operator", &mut key, &phishing).await;
    let refused = post_answer(&mut browser, "operator", &form).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("could not sign you in"));
}

#[tokio::test]
async fn a_cloned_passkey_is_caught_by_its_counter() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let mut clone = key.clone();
    assert_eq!(passkey_sign_in(&server, &mut key).await.status, 303);
    // The clone's counter is behind the one the server stored.
    assert_eq!(passkey_sign_in(&server, &mut clone).await.status, 401);
}

#[tokio::test]
async fn a_passkey_signs_in_only_to_its_own_tenant() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    server.admin().create_tenant("beta").await;
    let mut browser = Browser::new(&server);
    let form = sign_in_answer(&mut browser, "beta", &mut key, &origin(&server)).await;
    assert_eq!(post_answer(&mut browser, "beta", &form).await.status, 401);

    // A ceremony started at one tenant does not finish at another.
    let mut browser = Browser::new(&server);
    let form = sign_in_answer(&mut browser, "beta", &mut key, &origin(&server)).await;
    assert_eq!(
        post_answer(&mut browser, "operator", &form).await.status,
        401
    );
}

#[tokio::test]
async fn a_locked_password_does_not_stop_a_passkey() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let mut attacker = Browser::new(&server);
    let mut last = 0;
    for _ in 0..8 {
        last = attacker
            .sign_in("operator", "ada", "not the password")
            .await
            .status
            .as_u16();
    }
    assert_eq!(last, 429, "the password is locked");
    assert_eq!(
        Browser::new(&server)
            .sign_in("operator", "ada", PASSWORD)
            .await
            .status,
        429,
        "even the right password waits"
    );
    let escaped = passkey_sign_in(&server, &mut key).await;
    assert_eq!(escaped.status, 303, "{}", escaped.body);
}

#[tokio::test]
async fn removed_passkeys_and_disabled_users_cannot_sign_in_and_a_removal_ends_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut key = SoftPasskey::new();
    let id = user_with_passkey(&server, "ada", &mut key).await;

    admin
        .patch(&format!("/v1/users/{id}"), json!({"state": "disabled"}))
        .await
        .expect(200);
    assert_eq!(passkey_sign_in(&server, &mut key).await.status, 401);
    admin
        .patch(&format!("/v1/users/{id}"), json!({"state": "active"}))
        .await
        .expect(200);
    // Signed in with it on a device that is then lost.
    let mut lost_device = Browser::new(&server);
    let form = sign_in_answer(&mut lost_device, "operator", &mut key, &origin(&server)).await;
    assert_eq!(
        post_answer(&mut lost_device, "operator", &form)
            .await
            .status,
        303
    );
    assert_eq!(lost_device.get("/t/operator/account").await.status, 200);

    let passkey = admin
        .get(&format!("/v1/users/{id}/passkeys"))
        .await
        .expect(200)["items"]
        .take()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .delete(&format!("/v1/users/{id}/passkeys/{passkey}"))
        .await
        .expect(204);
    assert_eq!(passkey_sign_in(&server, &mut key).await.status, 401);
    // The help desk's removal ended the session opened with it.
    assert_eq!(
        lost_device.get("/t/operator/account").await.location(),
        "/t/operator/sign-in"
    );
    let removal = admin.audit("user.passkey.remove").await;
    // This one and the one the earlier passkey sign-in opened.
    assert_eq!(removal[0]["details"]["sessions_ended"], 2, "{removal:?}");
    let log = admin
        .get("/v1/sign-ins?outcome=failure")
        .await
        .expect(200)
        .to_string();
    assert!(log.contains("user disabled") && log.contains("unknown passkey"));
}

#[tokio::test]
async fn users_manage_only_their_own_passkeys() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    let ada = user_with_passkey(&server, "ada", &mut key).await;
    user_with_password(&server, "mallory", false).await;
    let mut mallory = Browser::new(&server);
    mallory.sign_in("operator", "mallory", PASSWORD).await;
    let admin = server.admin();
    let passkey = admin
        .get(&format!("/v1/users/{ada}/passkeys"))
        .await
        .expect(200)["items"]
        .take()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = mallory.get("/t/operator/account/passkeys").await.csrf();
    mallory
        .post(
            &format!("/t/operator/account/passkeys/{passkey}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    let kept = admin
        .get(&format!("/v1/users/{ada}/passkeys"))
        .await
        .expect(200)["items"]
        .take();
    assert_eq!(kept.as_array().unwrap().len(), 1);

    // Without the form's CSRF token, nothing starts or is removed.
    let forged = mallory
        .post("/t/operator/account/passkeys/options", &[("csrf", "x")])
        .await;
    assert_eq!(forged.status, 403);

    // Ada's registration ceremony cannot be finished by Mallory.
    let mut ada_browser = Browser::new(&server);
    ada_browser.sign_in("operator", "ada", PASSWORD).await;
    let ada_csrf = ada_browser.get("/t/operator/account/passkeys").await.csrf();
    let (ceremony, options) = start(
        &mut ada_browser,
        "/t/operator/account/passkeys/options",
        &ada_csrf,
    )
    .await;
    let answer = SoftPasskey::new()
        .register(&origin(&server), &options)
        .await
        .unwrap();
    let stolen = mallory
        .post(
            "/t/operator/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", "Stolen"),
                ("ceremony", &ceremony),
                ("credential", &answer.to_string()),
            ],
        )
        .await;
    assert_eq!(stolen.status, 422, "{}", stolen.body);
    assert!(stolen.body.contains("expired"));
}

#[tokio::test]
async fn bad_registrations_are_refused_with_a_reason() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    let csrf = browser.get("/t/operator/account/passkeys").await.csrf();

    // The authenticator that holds a passkey is told not to make a second one.
    let (_, options) = start(&mut browser, "/t/operator/account/passkeys/options", &csrf).await;
    assert!(key.register(&origin(&server), &options).await.is_err());

    let (ceremony, options) =
        start(&mut browser, "/t/operator/account/passkeys/options", &csrf).await;
    let phishing = format!("http://login.localhost:{}", server.addr.port());
    let answer = SoftPasskey::new()
        .register(&phishing, &options)
        .await
        .unwrap();
    let refused = browser
        .post(
            "/t/operator/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", "Phone"),
                ("ceremony", &ceremony),
                ("credential", &answer.to_string()),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("could not be accepted"));

    let (ceremony, _) = start(&mut browser, "/t/operator/account/passkeys/options", &csrf).await;
    let unnamed = browser
        .post(
            "/t/operator/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", "  "),
                ("ceremony", &ceremony),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(unnamed.status, 422);
    assert!(unnamed.body.contains("must not be empty"));
    let garbage = browser
        .post(
            "/t/operator/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", "Phone"),
                ("ceremony", &ceremony),
                ("credential", "not json"),
            ],
        )
        .await;
    assert_eq!(garbage.status, 422);
}

#[tokio::test]
async fn a_tenant_can_turn_passkeys_off() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let admin = server.admin();
    let mut settings = admin.get("/v1/sign-in-settings").await.expect(200);
    assert_eq!(settings["allow_passkeys"], true);
    settings["allow_passkeys"] = json!(false);
    admin
        .send(Method::PUT, "/v1/sign-in-settings", Some(settings), &[])
        .await
        .expect(200);
    let mut browser = Browser::new(&server);
    let page = browser.get("/t/operator/sign-in").await;
    assert!(!page.body.contains("data-passkey"));
    let csrf = page.csrf();
    let refused = browser
        .post("/t/operator/sign-in/passkey/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn a_passkey_satisfies_a_required_second_factor() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut settings = admin.get("/v1/sign-in-settings").await.expect(200);
    settings["mfa_required"] = json!("everyone");
    admin
        .send(Method::PUT, "/v1/sign-in-settings", Some(settings), &[])
        .await
        .expect(200);
    user_with_password(&server, "ada", false).await;
    let mut browser = Browser::new(&server);
    let signed_in = browser.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(signed_in.location(), "/t/operator/account/mfa");
    let held_back = browser.get("/t/operator/account").await;
    assert_eq!(held_back.location(), "/t/operator/account/mfa");
    let mfa = browser.get("/t/operator/account/mfa").await;
    assert!(mfa.body.contains("/t/operator/account/passkeys"));
    let mut key = SoftPasskey::new();
    assert_eq!(
        register(&server, &mut browser, &mut key, "Phone")
            .await
            .status,
        303
    );
    assert_eq!(browser.get("/t/operator/account").await.status, 200);
}

#[tokio::test]
async fn a_password_reset_is_finished_before_passkeys_are_touched() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    let id = user_with_passkey(&server, "ada", &mut key).await;
    // An administrator resets the password: it must be changed at the next sign-in.
    server
        .admin()
        .send(
            Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(json!({"password": "a temporary passphrase to change", "must_change": true})),
            &[],
        )
        .await
        .expect(204);
    let mut browser = Browser::new(&server);
    let signed_in = browser
        .sign_in("operator", "ada", "a temporary passphrase to change")
        .await;
    assert_eq!(signed_in.location(), "/t/operator/account/password");
    for page in ["/t/operator/account/passkeys", "/t/operator/account/mfa"] {
        assert_eq!(
            browser.get(page).await.location(),
            "/t/operator/account/password",
            "{page} waits for the new password"
        );
    }
    // The passkey still signs in, but the reset password must be changed first.
    let with_passkey = passkey_sign_in(&server, &mut key).await;
    assert_eq!(with_passkey.location(), "/t/operator/account/password");
}

#[tokio::test]
async fn where_mfa_is_required_a_password_alone_does_not_reach_a_passkey_users_account() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let admin = server.admin();
    let mut settings = admin.get("/v1/sign-in-settings").await.expect(200);
    settings["mfa_required"] = json!("everyone");
    admin
        .send(Method::PUT, "/v1/sign-in-settings", Some(settings), &[])
        .await
        .expect(200);
    // Someone who knows the password gets no session (one that could register their own
    // passkey), only the advice to use the passkey.
    let mut thief = Browser::new(&server);
    let refused = thief.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Sign in with a passkey"));
    assert!(!thief.cookies.contains_key("portcullis_session"));
    assert_eq!(passkey_sign_in(&server, &mut key).await.status, 303);
}

#[tokio::test]
async fn ceremony_starts_are_limited_per_address() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let csrf = browser.get("/t/operator/sign-in").await.csrf();
    for _ in 0..30 {
        start(&mut browser, "/t/operator/sign-in/passkey/options", &csrf).await;
    }
    let flooded = browser
        .post("/t/operator/sign-in/passkey/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(flooded.status, 429);
    assert!(flooded.body.contains("Wait a minute"));
}

#[tokio::test]
async fn a_user_holds_at_most_twenty_passkeys() {
    let server = TestServer::start().await;
    let mut first = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut first).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    for n in 2..=20 {
        let added = register(
            &server,
            &mut browser,
            &mut SoftPasskey::new(),
            &format!("Key {n}"),
        )
        .await;
        assert_eq!(added.status, 303, "{}", added.body);
    }
    let refused = register(&server, &mut browser, &mut SoftPasskey::new(), "Key 21").await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("remove one you no longer use"));
}

#[tokio::test]
async fn the_unsigned_user_handle_cannot_name_another_account() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let bob = user_with_password(&server, "bob", false).await;
    let mut browser = Browser::new(&server);
    let mut form = sign_in_answer(&mut browser, "operator", &mut key, &origin(&server)).await;
    // Ada's genuine answer, with the user handle (outside the signature) swapped for Bob's.
    let mut answer: Value = serde_json::from_str(&form[2].1).unwrap();
    let bob_handle = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        bob.parse::<uuid::Uuid>().unwrap().as_bytes(),
    );
    answer["response"]["userHandle"] = bob_handle.into();
    form[2].1 = answer.to_string();
    let refused = post_answer(&mut browser, "operator", &form).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(!browser.cookies.contains_key("portcullis_session"));
    let log = server
        .admin()
        .get("/v1/sign-ins?outcome=failure")
        .await
        .expect(200)
        .to_string();
    assert!(log.contains("passkey user handle mismatch"), "{log}");
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    user_with_passkey(&server, "ada", &mut key).await;
    let mut browser = Browser::new(&server);
    let form = sign_in_answer(&mut browser, "operator", &mut key, &origin(&server)).await;
    server
        .db
        .execute("UPDATE webauthn_ceremonies SET expires_at = 0")
        .await
        .unwrap();
    let refused = post_answer(&mut browser, "operator", &form).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let log = server
        .admin()
        .get("/v1/sign-ins?outcome=failure")
        .await
        .expect(200)
        .to_string();
    assert!(log.contains("unknown or expired passkey ceremony"), "{log}");
}
