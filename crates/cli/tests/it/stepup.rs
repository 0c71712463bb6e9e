//! Step-up: pages that need a fresher or stronger sign-in ask only for what the session lacks,
//! add the proof to the session with a new token, and return to where they were — never to
//! another site.

use serde_json::json;

use crate::harness::TestServer;
use crate::mfa::{between, code};
use crate::passkeys::{origin, start, user_with_passkey};
use crate::signin::{Browser, PASSWORD, Page, user_with_password};
use crate::soft_passkey::SoftPasskey;

async fn post(browser: &mut Browser, path: &str, fields: &[(&str, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post(path, &pairs).await
}

/// Makes every proof of the user's sessions an hour old, as if signed in long ago.
async fn age_sessions(server: &TestServer, user_id: &str) {
    let methods = json!([{"method": "pwd", "at": "2000-01-01T00:00:00Z"}]).to_string();
    let sql = format!("UPDATE sessions SET methods = '{methods}' WHERE user_id = '{user_id}'");
    assert!(server.db.execute(&sql).await.unwrap() >= 1);
}

async fn strengths(server: &TestServer, user_id: &str) -> Vec<String> {
    let sessions = server
        .admin()
        .get(&format!("/v1/users/{user_id}/sessions"))
        .await
        .expect(200)["items"]
        .take();
    sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strength"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_old_sign_in_confirms_the_password_before_adding_a_passkey() {
    let server = TestServer::start().await;
    let id = user_with_password(&server, "ada", false).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    age_sessions(&server, &id).await;

    let page = browser.get("/t/operator/account/passkeys").await;
    assert!(page.body.contains("Confirm it is you"), "{}", page.body);
    let csrf = browser.get("/t/operator/account").await.csrf();
    let refused = browser
        .post("/t/operator/account/passkeys/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        refused.status, 403,
        "an old session cannot start a registration"
    );

    let start = page
        .body
        .find("/t/operator/step-up?")
        .expect("a step-up link");
    let link = page.body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#x2f;", "/");
    assert!(link.starts_with("/t/operator/step-up?"), "{link}");
    let ask = browser.get(&link).await;
    assert_eq!(ask.status, 200, "{link} -> {}", ask.location());
    assert!(ask.body.contains("name=\"password\"") && !ask.body.contains("name=\"code\""));
    let hidden = |name: &str| {
        between(&ask.body, &format!("name=\"{name}\" value=\""), "\"")[0].replace("&#x2f;", "/")
    };
    let (to, strength, max_age) = (hidden("to"), hidden("strength"), hidden("max_age"));
    assert_eq!(
        (to.as_str(), strength.as_str(), max_age.as_str()),
        ("/t/operator/account/passkeys", "password", "900")
    );
    let form = |password: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("password", password.to_owned()),
            ("to", to.clone()),
            ("strength", strength.clone()),
            ("max_age", max_age.clone()),
        ]
    };
    let wrong = post(
        &mut browser,
        "/t/operator/step-up/password",
        &form("not my password"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not right"));
    let old_token = browser.cookies["portcullis_session"].clone();
    let confirmed = post(
        &mut browser,
        "/t/operator/step-up/password",
        &form(PASSWORD),
    )
    .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    assert_ne!(
        browser.cookies["portcullis_session"], old_token,
        "a step-up replaces the session token"
    );
    let back = browser.get(confirmed.location()).await;
    assert_eq!(back.location(), "/t/operator/account/passkeys");
    let started = browser
        .post("/t/operator/account/passkeys/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 200);

    let mut stale = Browser::new(&server);
    stale.cookies.insert("portcullis_session".into(), old_token);
    assert_eq!(
        stale.get("/t/operator/account").await.location(),
        "/t/operator/sign-in",
        "the token from before the step-up is dead"
    );
    let failures = server
        .admin()
        .get("/v1/sign-ins?outcome=failure")
        .await
        .expect(200);
    assert_eq!(failures["items"][0]["reason"], "bad password");
}

#[tokio::test]
async fn a_password_session_that_needs_mfa_is_asked_only_for_the_code() {
    let server = TestServer::start().await;
    let id = user_with_password(&server, "ada", false).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    // The authenticator is set up after the password sign-in: the session is still "password".
    let setup = browser.get("/t/operator/account/mfa").await;
    let key = crate::mfa::manual_key(&setup.body);
    let csrf = setup.csrf();
    // Kept, so that the replay below is this very code even if a 30-second step ends between.
    let enrolment_code = code(&key, 0);
    let enrolled = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &csrf), ("code", &enrolment_code)],
        )
        .await;
    assert_eq!(enrolled.status, 200);
    assert_eq!(strengths(&server, &id).await, ["password"]);

    let ask = browser
        .get("/t/operator/step-up?to=/t/operator/account&strength=mfa")
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("name=\"code\"") && !ask.body.contains("name=\"password\""));
    let target = [
        ("to", "/t/operator/account".to_owned()),
        ("strength", "mfa".to_owned()),
        ("max_age", String::new()),
    ];
    // The code used for enrolment is spent: a replay is refused.
    let mut replay = vec![("csrf", csrf.clone()), ("code", enrolment_code)];
    replay.extend(target.clone());
    assert_eq!(
        post(&mut browser, "/t/operator/step-up/code", &replay)
            .await
            .status,
        401
    );
    let mut fresh = vec![("csrf", csrf.clone()), ("code", code(&key, 1))];
    fresh.extend(target);
    let stepped = post(&mut browser, "/t/operator/step-up/code", &fresh).await;
    assert_eq!(stepped.status, 303, "{}", stepped.body);
    assert_eq!(
        browser.get(stepped.location()).await.location(),
        "/t/operator/account"
    );
    assert_eq!(strengths(&server, &id).await, ["mfa"]);
    let events = server.admin().audit("signin.step_up").await;
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn phishing_resistant_needs_the_users_own_passkey() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    let id = user_with_passkey(&server, "ada", &mut key).await;
    let mut other_key = SoftPasskey::new();
    user_with_passkey(&server, "bob", &mut other_key).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    let need = "to=/t/operator/account/passkeys&strength=phishing_resistant";
    let ask = browser.get(&format!("/t/operator/step-up?{need}")).await;
    assert!(ask.body.contains("This needs your passkey"), "{}", ask.body);
    assert!(!ask.body.contains("name=\"password\""));
    let csrf = ask.csrf();

    let mut attempt = async |key: &mut SoftPasskey| {
        let (ceremony, options) =
            start(&mut browser, "/t/operator/sign-in/passkey/options", &csrf).await;
        let credential = key.sign_in(&origin(&server), &options).await.unwrap();
        post(
            &mut browser,
            "/t/operator/step-up/passkey",
            &[
                ("csrf", csrf.clone()),
                ("ceremony", ceremony),
                ("credential", credential.to_string()),
                ("to", "/t/operator/account/passkeys".into()),
                ("strength", "phishing_resistant".into()),
            ],
        )
        .await
    };
    let borrowed = attempt(&mut other_key).await;
    assert_eq!(
        borrowed.status, 401,
        "another user's passkey proves nothing"
    );
    let own = attempt(&mut key).await;
    assert_eq!(own.status, 303, "{}", own.body);
    assert!(
        strengths(&server, &id)
            .await
            .contains(&"phishing_resistant".to_owned())
    );
}

#[tokio::test]
async fn step_up_returns_only_to_the_tenants_own_pages() {
    let server = TestServer::start().await;
    user_with_password(&server, "ada", false).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    for hostile in [
        "https://evil.example/",
        "//evil.example/",
        "/t/other/account",
        "/t/operator//evil.example",
    ] {
        let page = browser
            .get(&format!("/t/operator/step-up?to={hostile}"))
            .await;
        assert_eq!(page.location(), "/t/operator/account", "{hostile}");
    }
    assert_eq!(
        Browser::new(&server)
            .get("/t/operator/step-up?to=/t/operator/account")
            .await
            .location(),
        "/t/operator/sign-in",
        "step-up needs a session"
    );
}
