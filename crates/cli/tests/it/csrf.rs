//! Cross-site request forgery on every form of the sign-in and account pages: a post that carries
//! a valid session (and every other cookie of the victim's browser) but not the victim's CSRF
//! token is refused with 403 and changes nothing. The list of routes is read from the pages'
//! router, so a POST route added later without a case here fails the test.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::authorize::{app, approve, authorize_path};
use crate::harness::TestServer;
use crate::mfa::{between, code};
use crate::passkeys::{origin, register, start};
use crate::signin::{Browser, PASSWORD, user_with_password};
use crate::soft_passkey::SoftPasskey;

/// The pages' routers (the sign-in and account pages', the console's), to list their POST
/// routes.
const PAGES_ROUTERS: [(&str, &str); 2] = [
    (
        include_str!("../../../server/src/pages/mod.rs"),
        "pub fn router(",
    ),
    (
        include_str!("../../../server/src/pages/console/mod.rs"),
        "pub(super) fn routes(",
    ),
];

/// Every path the pages' routers serve with POST, as written in the routers.
fn post_routes() -> BTreeSet<String> {
    PAGES_ROUTERS
        .iter()
        .flat_map(|(source, router)| {
            let start = source.find(router).expect("the pages have a router");
            let body = &source[start..];
            let body = &body[..body.find(".layer(").unwrap_or(body.len())];
            body.split(".route(")
                .skip(1)
                .filter(|route| route.contains("post("))
                .filter_map(|route| route.split('"').nth(1).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Which browser sends a forged post.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The victim's signed-in browser.
    Victim,
    /// A browser that is not signed in (sign-in forms: login CSRF).
    Anonymous,
    /// A browser between the password and the authenticator code.
    Challenged,
}

/// One forged post: the route as the router names it, the path sent, and the form fields (the
/// CSRF field is added when sent).
struct Case {
    route: &'static str,
    who: Who,
    path: String,
    form: Vec<(&'static str, String)>,
    /// Sent as `multipart/form-data` (a form with a file), not URL-encoded.
    multipart: bool,
}

impl Case {
    fn new(route: &'static str, who: Who, path: String, form: &[(&'static str, &str)]) -> Self {
        Case {
            route,
            who,
            path,
            form: form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            multipart: false,
        }
    }

    /// A form that uploads a file.
    fn upload(route: &'static str, path: String, form: &[(&'static str, &str)]) -> Self {
        Case {
            multipart: true,
            ..Self::new(route, Who::Victim, path, form)
        }
    }
}

/// Everything a page post could change about the victim, read back as an administrator and
/// from the database.
#[derive(Debug, PartialEq)]
struct State {
    /// Live sessions: id, strength and the proofs behind them (a step-up adds one).
    sessions: Vec<String>,
    passkeys: Vec<String>,
    consents: Vec<String>,
    totp: Vec<String>,
    recovery_codes: Vec<String>,
    password_hash: Vec<String>,
    /// Passkey ceremonies started and not yet answered.
    ceremonies: Vec<String>,
    /// Authorization requests waiting for the user (the consent form answers one).
    pending_requests: Vec<String>,
    grants: Vec<String>,
    audit_events: usize,
}

async fn state(server: &TestServer, user: &str) -> State {
    let admin = server.admin();
    let list = |value: Value, fields: &[&str]| -> Vec<String> {
        value
            .as_array()
            .expect("a list")
            .iter()
            .map(|item| {
                fields
                    .iter()
                    .map(|f| item[*f].to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let db = &server.db;
    State {
        sessions: list(
            admin
                .get(&format!("/v1/users/{user}/sessions"))
                .await
                .expect(200)["items"].take(),
            &["id", "strength", "methods"],
        ),
        passkeys: list(
            admin
                .get(&format!("/v1/users/{user}/passkeys"))
                .await
                .expect(200)["items"].take(),
            &["id", "name"],
        ),
        consents: list(
            admin
                .get(&format!("/v1/users/{user}/consents"))
                .await
                .expect(200)["items"].take(),
            &["application", "scopes"],
        ),
        totp: db
            .texts(&format!(
                "SELECT CAST(confirmed_at AS TEXT), CAST(last_used_step AS TEXT) FROM user_totp WHERE user_id = '{user}'"
            ))
            .await,
        recovery_codes: db
            .texts(&format!(
                "SELECT code_hash, CAST(used_at AS TEXT) FROM user_recovery_codes WHERE user_id = '{user}' ORDER BY code_hash"
            ))
            .await,
        password_hash: db
            .texts(&format!(
                "SELECT hash FROM user_passwords WHERE user_id = '{user}'"
            ))
            .await,
        ceremonies: db
            .texts("SELECT CAST(COUNT(*) AS TEXT) FROM webauthn_ceremonies")
            .await,
        pending_requests: db
            .texts("SELECT CAST(COUNT(*) AS TEXT) FROM authorization_requests")
            .await,
        grants: db
            .texts(&format!(
                "SELECT id, CAST(revoked_at AS TEXT) FROM oauth_grants WHERE user_id = '{user}' ORDER BY id"
            ))
            .await,
        audit_events: admin.get("/v1/audit?limit=500").await.expect(200)["items"]
            .as_array()
            .map_or(0, Vec::len),
    }
}

/// Sends `case` with `csrf` from the browser it names.
async fn send(
    case: &Case,
    csrf: &str,
    victim: &mut Browser,
    anonymous: &mut Browser,
    challenged: &mut Browser,
) -> (crate::signin::Page, Option<String>, Option<String>) {
    let browser = match case.who {
        Who::Victim => victim,
        Who::Anonymous => anonymous,
        Who::Challenged => challenged,
    };
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
    form.extend(case.form.iter().map(|(k, v)| (*k, v.as_str())));
    let before = browser.cookies.get("portcullis_session").cloned();
    let page = if case.multipart {
        browser.post_multipart(&case.path, &form, &[]).await
    } else {
        browser.post(&case.path, &form).await
    };
    let after = browser.cookies.get("portcullis_session").cloned();
    (page, before, after)
}

#[tokio::test]
async fn every_page_form_refuses_a_post_without_the_browsers_csrf_token() {
    let server = TestServer::start().await;
    let (partner, _) = app(&server, "Partner App", json!({"require_consent": true})).await;
    let (other_app, _) = app(&server, "Other App", json!({"require_consent": true})).await;
    let ada = user_with_password(&server, "ada", false).await;
    let admin = server.admin();
    let session_ids = || async {
        admin
            .get(&format!("/v1/users/{ada}/sessions"))
            .await
            .expect(200)["items"]
            .take()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    // The victim's browser, signed in, and a second session of theirs elsewhere.
    let mut victim = Browser::new(&server);
    assert_eq!(
        victim.sign_in("operator", "ada", PASSWORD).await.status,
        303
    );
    let mine = session_ids().await;
    let mut elsewhere = Browser::new(&server);
    assert_eq!(
        elsewhere.sign_in("operator", "ada", PASSWORD).await.status,
        303
    );
    let other_session = session_ids()
        .await
        .into_iter()
        .find(|id| !mine.contains(id))
        .expect("the second session");
    // They approved Partner App, and hold a passkey.
    assert!(approve(&mut victim, &partner).await.contains_key("code"));
    let mut key = SoftPasskey::new();
    assert_eq!(
        register(&server, &mut victim, &mut key, "Laptop")
            .await
            .status,
        303
    );
    let passkey = admin
        .get(&format!("/v1/users/{ada}/passkeys"))
        .await
        .expect(200)["items"]
        .take()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim_csrf = victim.get("/t/operator/account").await.csrf();

    // The attacker's own page gives them a CSRF token — good for their cookie, not the victim's.
    let forged = Browser::new(&server)
        .get("/t/operator/sign-in")
        .await
        .csrf();
    assert_ne!(forged, victim_csrf);
    let mut anonymous = Browser::new(&server);
    let anonymous_csrf = anonymous.get("/t/operator/sign-in").await.csrf();
    let mut challenged = Browser::new(&server);
    let mut covered = BTreeSet::new();

    // First the authenticator app's set-up, which only a pending (unconfirmed) secret accepts.
    let setup = victim.get("/t/operator/account/mfa").await;
    let totp_key = crate::mfa::manual_key(&setup.body);
    let enrol = Case::new(
        "/t/{tenant}/account/mfa",
        Who::Victim,
        "/t/operator/account/mfa".into(),
        &[("code", code(&totp_key, 0).as_str())],
    );
    let before = state(&server, &ada).await;
    let (page, ..) = send(
        &enrol,
        &forged,
        &mut victim,
        &mut anonymous,
        &mut challenged,
    )
    .await;
    assert_eq!(page.status, 403, "{}: {}", enrol.route, page.body);
    assert!(page.body.contains("reload the page"), "{}", page.body);
    assert_eq!(state(&server, &ada).await, before, "{}", enrol.route);
    covered.insert(enrol.route.to_owned());
    let enrolled = victim
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &victim_csrf), ("code", &code(&totp_key, 0))],
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);

    // What the other forms need: a browser at the code step, ceremonies started with the right
    // token and answered by the passkey, an authorization request for an unapproved app.
    assert_eq!(
        challenged
            .sign_in("operator", "ada", PASSWORD)
            .await
            .location(),
        "/t/operator/sign-in/code"
    );
    let (sign_in_ceremony, options) = start(
        &mut anonymous,
        "/t/operator/sign-in/passkey/options",
        &anonymous_csrf,
    )
    .await;
    let sign_in_answer = key.sign_in(&origin(&server), &options).await.unwrap();
    let (step_up_ceremony, options) = start(
        &mut victim,
        "/t/operator/sign-in/passkey/options",
        &victim_csrf,
    )
    .await;
    let step_up_answer = key.sign_in(&origin(&server), &options).await.unwrap();
    let (register_ceremony, options) = start(
        &mut victim,
        "/t/operator/account/passkeys/options",
        &victim_csrf,
    )
    .await;
    let register_answer = SoftPasskey::new()
        .register(&origin(&server), &options)
        .await
        .unwrap();
    let asked = victim.get(&authorize_path(&other_app, &[])).await;
    assert!(asked.body.contains("Allow Other App"), "{}", asked.body);
    let other_request = between(&asked.body, "name=\"request\" value=\"", "\"")[0].to_owned();
    let device_client = crate::device::command_line(&server).await;
    let device = crate::device::start(&server, &device_client, "openid").await;
    let user_code = device["user_code"].as_str().unwrap().to_owned();
    let new_password = "quantum marmalade bicycle harbour";
    let back = "/t/operator/account";
    let code_now = code(&totp_key, 1);
    let (sign_in_answer, step_up_answer, register_answer) = (
        sign_in_answer.to_string(),
        step_up_answer.to_string(),
        register_answer.to_string(),
    );

    // Every other POST route of the pages (the router is read below to make sure of it):
    //   sign-in (password), sign-in code step, passkey sign-in and its ceremony start;
    //   sign-out; ending one session; withdrawing an application's access; changing the
    //   password; removing the authenticator app; passkey ceremony start, registration and
    //   removal; step-up by password, code and passkey; consent; logout confirmation; a
    //   device's code entered and approved.
    // (Setting up the authenticator app was checked above.)
    use Who::*;
    let enrolment = server
        .admin()
        .post(&format!("/v1/users/{ada}/enrolment-link"), json!({}))
        .await
        .expect(201);
    let enrolment_token = enrolment["url"]
        .as_str()
        .and_then(|url| url.split_once("token="))
        .unwrap()
        .1
        .to_owned();
    let cases = [
        Case::new(
            "/t/{tenant}/sign-in",
            Anonymous,
            "/t/operator/sign-in".into(),
            &[("user_name", "ada"), ("password", PASSWORD)],
        ),
        Case::new(
            "/t/{tenant}/sign-in/code",
            Challenged,
            "/t/operator/sign-in/code".into(),
            &[("code", code_now.as_str())],
        ),
        Case::new(
            "/t/{tenant}/sign-in/passkey/options",
            Anonymous,
            "/t/operator/sign-in/passkey/options".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/sign-in/passkey",
            Anonymous,
            "/t/operator/sign-in/passkey".into(),
            &[
                ("ceremony", sign_in_ceremony.as_str()),
                ("credential", sign_in_answer.as_str()),
            ],
        ),
        Case::new(
            "/t/{tenant}/sign-out",
            Victim,
            "/t/operator/sign-out".into(),
            &[("everywhere", "true")],
        ),
        Case::new(
            "/t/{tenant}/account/sessions/{id}/end",
            Victim,
            format!("/t/operator/account/sessions/{other_session}/end"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/account/applications/{id}/withdraw",
            Victim,
            format!("/t/operator/account/applications/{partner}/withdraw"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/account/password",
            Victim,
            "/t/operator/account/password".into(),
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        ),
        Case::new(
            "/t/{tenant}/account/terms",
            Victim,
            "/t/operator/account/terms".into(),
            &[("version", "2026-12")],
        ),
        Case::new(
            "/t/{tenant}/account/mfa/recovery-codes",
            Victim,
            "/t/operator/account/mfa/recovery-codes".into(),
            &[("code", "123456")],
        ),
        Case::new(
            "/t/{tenant}/account/mfa/remove",
            Victim,
            "/t/operator/account/mfa/remove".into(),
            &[("current_password", PASSWORD)],
        ),
        Case::new(
            "/t/{tenant}/account/passkeys/options",
            Victim,
            "/t/operator/account/passkeys/options".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/account/passkeys",
            Victim,
            "/t/operator/account/passkeys".into(),
            &[
                ("name", "Attacker's key"),
                ("ceremony", register_ceremony.as_str()),
                ("credential", register_answer.as_str()),
            ],
        ),
        Case::new(
            "/t/{tenant}/account/passkeys/{id}/remove",
            Victim,
            format!("/t/operator/account/passkeys/{passkey}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/step-up/password",
            Victim,
            "/t/operator/step-up/password".into(),
            &[
                ("password", PASSWORD),
                ("to", back),
                ("strength", "password"),
                ("max_age", "60"),
            ],
        ),
        Case::new(
            "/t/{tenant}/step-up/code",
            Victim,
            "/t/operator/step-up/code".into(),
            &[
                ("code", code_now.as_str()),
                ("to", back),
                ("strength", "mfa"),
                ("max_age", ""),
            ],
        ),
        Case::new(
            "/t/{tenant}/step-up/passkey",
            Victim,
            "/t/operator/step-up/passkey".into(),
            &[
                ("ceremony", step_up_ceremony.as_str()),
                ("credential", step_up_answer.as_str()),
                ("to", back),
                ("strength", "phishing_resistant"),
                ("max_age", ""),
            ],
        ),
        Case::new(
            "/t/{tenant}/oauth/consent",
            Victim,
            "/t/operator/oauth/consent".into(),
            &[("request", other_request.as_str()), ("decision", "allow")],
        ),
        Case::new(
            "/t/{tenant}/oauth/logout/confirm",
            Victim,
            "/t/operator/oauth/logout/confirm".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/enrol",
            Anonymous,
            "/t/operator/enrol".into(),
            &[
                ("token", enrolment_token.as_str()),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        ),
        Case::new(
            "/t/{tenant}/reset",
            Anonymous,
            "/t/operator/reset".into(),
            &[
                ("token", enrolment_token.as_str()),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        ),
        Case::new(
            "/t/{tenant}/forgot",
            Anonymous,
            "/t/operator/forgot".into(),
            &[("account", "ada")],
        ),
        Case::new(
            "/t/{tenant}/verify-email",
            Anonymous,
            "/t/operator/verify-email".into(),
            &[("token", enrolment_token.as_str())],
        ),
        Case::new(
            "/t/{tenant}/account/email-verification",
            Victim,
            "/t/operator/account/email-verification".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/device",
            Victim,
            "/t/operator/device".into(),
            &[("user_code", user_code.as_str())],
        ),
        Case::new(
            "/t/{tenant}/console/users/new",
            Victim,
            "/t/operator/console/users/new".into(),
            &[("user_name", "mallory")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/edit",
            Victim,
            format!("/t/operator/console/users/{ada}/edit"),
            &[("version", "1"), ("display_name", "Mallory"), ("email", "")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/state",
            Victim,
            format!("/t/operator/console/users/{ada}/state"),
            &[("version", "1"), ("state", "disabled")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/delete",
            Victim,
            format!("/t/operator/console/users/{ada}/delete"),
            &[("version", "1")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/restore",
            Victim,
            format!("/t/operator/console/users/{ada}/restore"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/sessions/end",
            Victim,
            format!("/t/operator/console/users/{ada}/sessions/end"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/unlock",
            Victim,
            format!("/t/operator/console/users/{ada}/unlock"),
            &[("reason", "forged")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/enrolment-link",
            Victim,
            format!("/t/operator/console/users/{ada}/enrolment-link"),
            &[("hours", "24")],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/email-verification",
            Victim,
            format!("/t/operator/console/users/{ada}/email-verification"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/groups/new",
            Victim,
            "/t/operator/console/groups/new".into(),
            &[("name", "mallory's group")],
        ),
        Case::new(
            "/t/{tenant}/console/groups/{id}/edit",
            Victim,
            format!("/t/operator/console/groups/{ada}/edit"),
            &[("version", "1"), ("name", "x")],
        ),
        Case::new(
            "/t/{tenant}/console/groups/{id}/delete",
            Victim,
            format!("/t/operator/console/groups/{ada}/delete"),
            &[("version", "1")],
        ),
        Case::new(
            "/t/{tenant}/console/groups/{id}/members",
            Victim,
            format!("/t/operator/console/groups/{ada}/members"),
            &[("kind", "user"), ("name", "ada")],
        ),
        Case::new(
            "/t/{tenant}/console/groups/{id}/members/{kind}/{member_id}/remove",
            Victim,
            format!("/t/operator/console/groups/{ada}/members/user/{ada}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/mfa/reset",
            Victim,
            format!("/t/operator/console/users/{ada}/mfa/reset"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/users/{id}/passkeys/{passkey_id}/remove",
            Victim,
            format!("/t/operator/console/users/{ada}/passkeys/{passkey}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/access/assign",
            Victim,
            "/t/operator/console/access/assign".into(),
            &[
                ("kind", "user"),
                ("name", "ada"),
                ("role", "tenant_administrator"),
                ("scope", "tenant"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/access/{id}/remove",
            Victim,
            format!("/t/operator/console/access/{ada}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/conditional-access/new",
            Victim,
            "/t/operator/console/conditional-access/new".into(),
            &[("template", "mfa-for-administrators")],
        ),
        Case::new(
            "/t/{tenant}/console/conditional-access/{id}/edit",
            Victim,
            format!("/t/operator/console/conditional-access/{ada}/edit"),
            &[("version", "1"), ("document", "{}")],
        ),
        Case::new(
            "/t/{tenant}/console/conditional-access/{id}/delete",
            Victim,
            format!("/t/operator/console/conditional-access/{ada}/delete"),
            &[("version", "1")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/new",
            Victim,
            "/t/operator/console/applications/new".into(),
            &[("name", "mallory's app"), ("kind", "keys")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/edit",
            Victim,
            format!("/t/operator/console/applications/{ada}/edit"),
            &[("version", "1"), ("name", "x")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/state",
            Victim,
            format!("/t/operator/console/applications/{ada}/state"),
            &[("version", "1"), ("state", "disabled")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/delete",
            Victim,
            format!("/t/operator/console/applications/{ada}/delete"),
            &[("version", "1")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/secrets",
            Victim,
            format!("/t/operator/console/applications/{ada}/secrets"),
            &[("days", "730")],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/secrets/{key_id}/revoke",
            Victim,
            format!("/t/operator/console/applications/{ada}/secrets/{ada}/revoke"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/applications/{id}/client",
            Victim,
            format!("/t/operator/console/applications/{ada}/client"),
            &[
                ("grant_client_credentials", "on"),
                ("resources", "https://evil.example.com"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/settings/organisation",
            Victim,
            "/t/operator/console/settings/organisation".into(),
            &[("version", "1"), ("display_name", "Mallory's")],
        ),
        Case::upload(
            "/t/{tenant}/console/users/import",
            "/t/operator/console/users/import".into(),
            &[],
        ),
        Case::upload(
            "/t/{tenant}/console/settings/branding",
            "/t/operator/console/settings/branding".into(),
            &[("colour", "#000000"), ("remove_logo", "on")],
        ),
        Case::new(
            "/t/{tenant}/console/settings/sign-in",
            Victim,
            "/t/operator/console/settings/sign-in".into(),
            &[
                ("mfa_required", "nobody"),
                ("min_length", "8"),
                ("min_strength", "0"),
                ("free_failures", "100"),
                ("max_wait_seconds", "1"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/settings/administrators",
            Victim,
            "/t/operator/console/settings/administrators".into(),
            &[
                ("mfa", "none"),
                ("recent_minutes", "720"),
                ("keys_for_privileged", "on"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/settings/signing-keys/rotate",
            Victim,
            "/t/operator/console/settings/signing-keys/rotate".into(),
            &[("alg", "ES256"), ("emergency", "on")],
        ),
        Case::new(
            "/t/{tenant}/console/risk/users/{id}",
            Victim,
            format!("/t/operator/console/risk/users/{ada}"),
            &[("verdict", "compromised"), ("note", "forged")],
        ),
        Case::new(
            "/t/{tenant}/console/roles/new",
            Victim,
            "/t/operator/console/roles/new".into(),
            &[("name", "Mallory's"), ("action", "portcullis:role.assign")],
        ),
        Case::new(
            "/t/{tenant}/console/roles/{id}/edit",
            Victim,
            format!("/t/operator/console/roles/{ada}/edit"),
            &[
                ("version", "1"),
                ("name", "x"),
                ("action", "portcullis:role.assign"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/roles/{id}/delete",
            Victim,
            format!("/t/operator/console/roles/{ada}/delete"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/access/deny",
            Victim,
            "/t/operator/console/access/deny".into(),
            &[
                ("name", "forged"),
                ("principals", "user ada"),
                ("actions", "user.read"),
                ("scope", "tenant"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/access/deny/{id}/remove",
            Victim,
            format!("/t/operator/console/access/deny/{ada}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/resource-types",
            Victim,
            "/t/operator/console/resource-types".into(),
            &[("name", "forged"), ("actions", "read")],
        ),
        Case::new(
            "/t/{tenant}/console/resource-types/{name}/remove",
            Victim,
            "/t/operator/console/resource-types/document/remove".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/records/{resource_type}",
            Victim,
            "/t/operator/console/records/document".into(),
            &[
                ("external_id", "forged"),
                ("owner_kind", "user"),
                ("owner", "ada"),
            ],
        ),
        Case::new(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/delete",
            Victim,
            "/t/operator/console/records/document/d-1/delete".into(),
            &[],
        ),
        Case::new(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/shares",
            Victim,
            "/t/operator/console/records/document/d-1/shares".into(),
            &[("kind", "user"), ("name", "ada"), ("action", "read")],
        ),
        Case::new(
            "/t/{tenant}/console/records/{resource_type}/{external_id}/shares/{share}/remove",
            Victim,
            format!("/t/operator/console/records/document/d-1/shares/{ada}/remove"),
            &[],
        ),
        Case::new(
            "/t/{tenant}/device/decision",
            Victim,
            "/t/operator/device/decision".into(),
            &[("user_code", user_code.as_str()), ("decision", "allow")],
        ),
    ];

    let before = state(&server, &ada).await;
    assert_eq!(before.sessions.len(), 2, "{before:?}");
    assert_eq!(
        (
            before.passkeys.len(),
            before.consents.len(),
            before.totp.len()
        ),
        (1, 1, 1),
        "{before:?}"
    );
    for case in &cases {
        let (page, cookie_before, cookie_after) =
            send(case, &forged, &mut victim, &mut anonymous, &mut challenged).await;
        assert_eq!(page.status, 403, "{}: {}", case.route, page.body);
        assert!(
            page.body.contains("reload the page"),
            "{}: refused as a forgery, not for another reason: {}",
            case.route,
            page.body
        );
        assert_eq!(
            cookie_after, cookie_before,
            "{}: no session cookie set, replaced or cleared",
            case.route
        );
        assert_eq!(
            state(&server, &ada).await,
            before,
            "{}: a forged post changed something",
            case.route
        );
        assert!(
            covered.insert(case.route.to_owned()),
            "{} twice",
            case.route
        );
    }
    assert!(!challenged.cookies.contains_key("portcullis_session"));
    assert!(!anonymous.cookies.contains_key("portcullis_session"));
    assert_eq!(
        victim.get("/t/operator/account").await.status,
        200,
        "still signed in"
    );

    // Two POST routes are protocol endpoints an application's page posts to from its own site,
    // so they cannot carry our token: they must not act on the user without asking.
    let authorize = url::Url::parse(&format!("http://x{}", authorize_path(&other_app, &[])))
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(authorize.as_bytes())
        .into_owned()
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let posted = victim.post("/t/operator/oauth/authorize", &pairs).await;
    assert_eq!(posted.status, 200, "asks for consent: {}", posted.body);
    assert!(posted.body.contains("Allow Other App"));
    let logout = victim.post("/t/operator/oauth/logout", &[]).await;
    assert_eq!(logout.status, 200, "asks to confirm: {}", logout.body);
    let after = state(&server, &ada).await;
    assert_eq!(
        (&after.sessions, &after.consents, &after.grants),
        (&before.sessions, &before.consents, &before.grants),
        "no code, consent or sign-out without the user"
    );
    covered.insert("/t/{tenant}/oauth/authorize".to_owned());
    covered.insert("/t/{tenant}/oauth/logout".to_owned());

    let routes = post_routes();
    println!("POST routes of the pages checked for CSRF: {covered:#?}");
    let missing: Vec<&String> = routes.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "POST routes with no forged-post case here: {missing:?}"
    );
    let stale: Vec<&String> = covered.difference(&routes).collect();
    assert!(
        stale.is_empty(),
        "cases for routes the router no longer has: {stale:?}"
    );

    // The same forms with the browser's own token do act, so the state read above would have
    // seen each change.
    let by_route = |route: &str| {
        cases
            .iter()
            .find(|c| c.route == route)
            .expect("a case for the route")
    };
    for route in [
        "/t/{tenant}/oauth/consent",
        "/t/{tenant}/account/applications/{id}/withdraw",
        "/t/{tenant}/account/sessions/{id}/end",
        "/t/{tenant}/account/passkeys/{id}/remove",
        "/t/{tenant}/account/mfa/remove",
        "/t/{tenant}/account/password",
    ] {
        let before = state(&server, &ada).await;
        let (page, ..) = send(
            by_route(route),
            &victim_csrf,
            &mut victim,
            &mut anonymous,
            &mut challenged,
        )
        .await;
        assert_eq!(page.status, 303, "{route}: {}", page.body);
        assert_ne!(state(&server, &ada).await, before, "{route} acted");
    }
}
