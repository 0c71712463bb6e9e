//! The pages answer a form or link naming something that does not exist (any more) with a 404
//! page that says so — never the 500 "something went wrong on our side" of a real fault, and
//! never a redirect pretending the action was done — and change nothing.

use serde_json::json;

use crate::authorize::{app, authorize_path, signed_in};
use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD, Page};
use crate::soft_passkey::SoftPasskey;

#[track_caller]
fn not_found(page: &Page, says: &str) {
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(
        page.body.contains("Not found") && page.body.contains(says),
        "the page says what is missing ({says:?}): {}",
        page.body
    );
    assert!(!page.body.contains("on our side"), "{}", page.body);
}

#[tokio::test]
async fn removing_an_authenticator_app_that_is_not_set_up_is_not_found() {
    let server = TestServer::start().await;
    let (mut browser, _) = signed_in(&server, "ada").await;
    // The account page, not the authenticator page: that one starts an enrolment.
    let csrf = browser.get("/t/operator/account").await.csrf();
    let page = browser
        .post(
            "/t/operator/account/mfa/remove",
            &[("csrf", &csrf), ("current_password", PASSWORD)],
        )
        .await;
    not_found(&page, "no authenticator app to remove");
    assert!(server.admin().audit("user.mfa.remove").await.is_empty());
    assert_eq!(browser.get("/t/operator/account").await.status, 200);
}

#[tokio::test]
async fn ending_a_session_that_has_ended_is_not_found() {
    let server = TestServer::start().await;
    let (mut browser, ada) = signed_in(&server, "ada").await;
    let mut other = Browser::new(&server);
    assert_eq!(other.sign_in("operator", "ada", PASSWORD).await.status, 303);
    let sessions = server
        .admin()
        .get(&format!("/v1/users/{ada}/sessions"))
        .await
        .expect(200)["items"]
        .take();
    let account = browser.get("/t/operator/account").await;
    let csrf = account.csrf();
    let others: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .filter(|id| {
            // The current session's row has no "end" form on the account page.
            account
                .body
                .contains(&format!("/account/sessions/{id}/end"))
        })
        .collect();
    assert_eq!(others.len(), 1, "{}", account.body);
    let end = format!("/t/operator/account/sessions/{}/end", others[0]);
    let ended = browser.post(&end, &[("csrf", &csrf)]).await;
    assert_eq!(ended.location(), "/t/operator/account");

    // The same form again (a second click, another tab), and an id that names nothing.
    for path in [
        end.as_str(),
        "/t/operator/account/sessions/not-a-session-id/end",
    ] {
        let page = browser.post(path, &[("csrf", &csrf)]).await;
        not_found(&page, "already ended");
    }
    assert_eq!(server.admin().audit("session.end").await.len(), 1);
    assert_eq!(
        browser.get("/t/operator/account").await.status,
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn removing_a_passkey_that_is_gone_is_not_found() {
    let server = TestServer::start().await;
    let mut key = SoftPasskey::new();
    let ada = crate::passkeys::user_with_passkey(&server, "ada", &mut key).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "ada", PASSWORD).await;
    let admin = server.admin();
    let passkey = admin
        .get(&format!("/v1/users/{ada}/passkeys"))
        .await
        .expect(200)["items"]
        .take()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else's passkey is not theirs to remove, and is answered as missing.
    let (mut mallory, _) = signed_in(&server, "mallory").await;
    let csrf = mallory.get("/t/operator/account/passkeys").await.csrf();
    let remove = format!("/t/operator/account/passkeys/{passkey}/remove");
    not_found(
        &mallory.post(&remove, &[("csrf", &csrf)]).await,
        "already removed",
    );
    let kept = admin
        .get(&format!("/v1/users/{ada}/passkeys"))
        .await
        .expect(200)["items"]
        .take();
    assert_eq!(kept.as_array().unwrap().len(), 1);

    let csrf = browser.get("/t/operator/account/passkeys").await.csrf();
    let removed = browser.post(&remove, &[("csrf", &csrf)]).await;
    assert_eq!(removed.location(), "/t/operator/account/passkeys?removed=1");
    for path in [
        remove.as_str(),
        "/t/operator/account/passkeys/not-a-passkey-id/remove",
    ] {
        not_found(
            &browser.post(path, &[("csrf", &csrf)]).await,
            "already removed",
        );
    }
    assert_eq!(admin.audit("user.passkey.remove").await.len(), 1);
}

#[tokio::test]
async fn withdrawing_access_that_was_never_given_is_not_found() {
    let server = TestServer::start().await;
    let (client, _) = app(&server, "shop", json!({"require_consent": true})).await;
    let (mut browser, _) = signed_in(&server, "ada").await;
    let csrf = browser.get("/t/operator/account").await.csrf();
    for id in [client.as_str(), "not-a-client-id"] {
        let page = browser
            .post(
                &format!("/t/operator/account/applications/{id}/withdraw"),
                &[("csrf", &csrf)],
            )
            .await;
        not_found(&page, "no access to withdraw");
    }
    assert!(
        server
            .admin()
            .audit("oauth.consent.withdraw")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn approving_an_application_removed_meanwhile_is_not_found() {
    let server = TestServer::start().await;
    let (client, _) = app(&server, "shop", json!({"require_consent": true})).await;
    let (mut browser, user) = signed_in(&server, "ada").await;
    let page = browser.get(&authorize_path(&client, &[])).await;
    assert_eq!(page.status, 200, "the consent page: {}", page.body);
    let request = crate::mfa::between(&page.body, "name=\"request\" value=\"", "\"")[0].to_owned();
    server
        .admin()
        .delete(&format!("/v1/service-principals/{client}"))
        .await
        .expect(204);
    let answered = browser
        .post(
            "/t/operator/oauth/consent",
            &[
                ("csrf", &page.csrf()),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    not_found(&answered, "does not exist any more");
    assert!(answered.location().is_empty(), "sent nowhere");
    assert!(server.admin().audit("oauth.consent.grant").await.is_empty());
    let consents = server
        .admin()
        .get(&format!("/v1/users/{user}/consents"))
        .await
        .expect(200)["items"]
        .take();
    assert_eq!(consents.as_array().map(Vec::len), Some(0), "{consents}");
}

/// A name no tenant can have (here with a NUL, which PostgreSQL cannot even store in text) is
/// an unknown tenant like any other; a user name no user can have is an unknown user, and a
/// passkey ceremony handle no ceremony can have an unknown ceremony.
#[tokio::test]
async fn names_that_cannot_exist_are_unknown_not_failures() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    for path in ["/t/no-such-tenant/sign-in", "/t/op%00erator/sign-in"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(page.body.contains("no such sign-in page"), "{}", page.body);
    }

    let mut key = SoftPasskey::new();
    crate::passkeys::user_with_passkey(&server, "ada", &mut key).await;
    let refused = browser.sign_in("operator", "ad\u{0}a", PASSWORD).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("do not match"), "{}", refused.body);

    let origin = crate::passkeys::origin(&server);
    let mut form =
        crate::passkeys::sign_in_answer(&mut browser, "operator", &mut key, &origin).await;
    for (name, value) in &mut form {
        if *name == "ceremony" {
            value.insert(0, '\u{0}');
        }
    }
    let refused = crate::passkeys::post_answer(&mut browser, "operator", &form).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("could not sign you in"),
        "{}",
        refused.body
    );
    assert!(!browser.cookies.contains_key("portcullis_session"));
}
