//! The second factor: enrolling an authenticator app, signing in with its codes, replay, and
//! recovery codes — with codes computed by an independent TOTP implementation (totp-rs).

use totp_rs::{Algorithm, Builder, Secret};

use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD, user_with_password};

pub(crate) fn code(key: &str, offset_steps: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(key).unwrap())
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + offset_steps * 30;
    totp.generate(now as u64).to_string()
}

/// The authenticator key the set-up page shows to type by hand, without its grouping spaces.
pub(crate) fn manual_key(body: &str) -> String {
    between(body, "instead: <code>", "</code>")[0].replace(' ', "")
}

pub(crate) fn between<'a>(text: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    text.split(start)
        .skip(1)
        .filter_map(|part| part.split(end).next())
        .collect()
}

/// Signs in `user`, enrols an authenticator, and returns its key and the recovery codes.
pub(crate) async fn enrolled(server: &TestServer, user: &str) -> (String, Vec<String>) {
    user_with_password(server, user, false).await;
    let mut browser = Browser::new(server);
    assert_eq!(
        browser.sign_in("operator", user, PASSWORD).await.status,
        303
    );
    let page = browser.get("/t/operator/account/mfa").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "a QR code is drawn inline");
    let key = manual_key(&page.body);
    // A reload keeps the same secret, so a code already scanned stays good.
    let again = browser.get("/t/operator/account/mfa").await;
    assert_eq!(manual_key(&again.body), key);
    let csrf = page.csrf();
    let wrong = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("did not match"));
    assert_eq!(manual_key(&wrong.body), key);
    let done = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &csrf), ("code", &code(&key, 0))],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let codes: Vec<String> = between(&done.body, "<li><code>", "</code>")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10);
    let status = browser.get("/t/operator/account/mfa").await;
    assert!(
        status.body.contains("10 unused recovery codes"),
        "{}",
        status.body
    );
    (key, codes)
}

#[tokio::test]
async fn with_an_authenticator_the_password_alone_opens_no_session() {
    let server = TestServer::start().await;
    let (key, _) = enrolled(&server, "careful").await;
    assert!(!server.admin().audit("user.mfa.enrol").await.is_empty());
    let mut browser = Browser::new(&server);
    let step_one = browser.sign_in("operator", "careful", PASSWORD).await;
    assert_eq!(step_one.location(), "/t/operator/sign-in/code");
    assert!(!browser.cookies.contains_key("portcullis_session"));
    assert_eq!(
        browser.get("/t/operator/account").await.status,
        303,
        "not signed in yet"
    );

    let form = browser.get("/t/operator/sign-in/code").await;
    let csrf = form.csrf();
    let wrong = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", "123456")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    // The enrolment used the current step; the next one (within the ±1 window) is fresh.
    let next = code(&key, 1);
    let done = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &next)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/t/operator/account");
    assert_eq!(browser.get("/t/operator/account").await.status, 200);
    let event = &server.admin().audit("signin").await[0];
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["details"]["strength"], "mfa");
    assert_eq!(event["details"]["amr"], serde_json::json!(["pwd", "otp"]));

    // The same code again, in another browser: refused, it was used.
    let mut other = Browser::new(&server);
    other.sign_in("operator", "careful", PASSWORD).await;
    let csrf = other.get("/t/operator/sign-in/code").await.csrf();
    let replay = other
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &next)],
        )
        .await;
    assert_eq!(replay.status, 401, "a TOTP code works once");
    let reasons: Vec<String> = server
        .admin()
        .audit("signin")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasons.iter().filter(|r| *r == "bad code").count(), 2);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let server = TestServer::start().await;
    let (_, codes) = enrolled(&server, "forgetful").await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "forgetful", PASSWORD).await;
    let csrf = browser.get("/t/operator/sign-in/code").await.csrf();
    // Typed with spaces and capitals, as people do.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let done = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("recovery_code", &typed)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let event = &server.admin().audit("signin").await[0];
    assert_eq!(
        event["details"]["amr"],
        serde_json::json!(["pwd", "recovery_code"])
    );

    let mut again = Browser::new(&server);
    again.sign_in("operator", "forgetful", PASSWORD).await;
    let csrf = again.get("/t/operator/sign-in/code").await.csrf();
    let reused = again
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("recovery_code", &codes[3])],
        )
        .await;
    assert_eq!(reused.status, 401, "a recovery code works once");
    let status = browser.get("/t/operator/account/mfa").await;
    assert!(status.body.contains("9 unused recovery codes"));
}

#[tokio::test]
async fn the_code_step_needs_a_genuine_challenge_and_backs_off() {
    let server = TestServer::start().await;
    let (key, _) = enrolled(&server, "guarded").await;
    // No password step, or a forged challenge: back to the start.
    let mut forger = Browser::new(&server);
    let csrf = forger.get("/t/operator/sign-in").await.csrf();
    let user_id = server
        .admin()
        .get("/v1/users?prefix=guarded")
        .await
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    forger.cookies.insert(
        "portcullis_mfa".into(),
        format!("{user_id}.{far}.0.{}", "00".repeat(32)),
    );
    let forged = forger
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(forged.status, 303);
    assert_eq!(forged.location(), "/t/operator/sign-in");
    assert!(!forger.cookies.contains_key("portcullis_session"));

    // Guessing codes: five wrong ones, then even the right one waits.
    let mut guesser = Browser::new(&server);
    guesser.sign_in("operator", "guarded", PASSWORD).await;
    let csrf = guesser.get("/t/operator/sign-in/code").await.csrf();
    for guess in ["111111", "222222", "333333", "444444", "555555"] {
        let page = guesser
            .post(
                "/t/operator/sign-in/code",
                &[("csrf", &csrf), ("code", guess)],
            )
            .await;
        assert_eq!(page.status, 401);
    }
    let locked = guesser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(locked.status, 429);
}

#[tokio::test]
async fn tenants_set_who_needs_a_second_factor_and_their_password_policy() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let defaults = admin.get("/v1/sign-in-settings").await.expect(200);
    assert_eq!(defaults["mfa_required"], "nobody");
    assert_eq!(defaults["password_policy"]["min_length"], 12);
    let put = |body: serde_json::Value| {
        let admin = admin.clone();
        async move {
            admin
                .send(
                    reqwest::Method::PUT,
                    "/v1/sign-in-settings",
                    Some(body),
                    &[],
                )
                .await
        }
    };
    let contradictory = serde_json::json!({"mfa_required": "everyone", "allow_totp": false,
        "allow_passkeys": false, "password_policy": {"min_length": 12, "min_strength": 3}});
    assert_eq!(put(contradictory).await.problem(422)["field"], "allow_totp");
    let too_short = serde_json::json!({"mfa_required": "nobody", "allow_totp": true,
        "password_policy": {"min_length": 4, "min_strength": 3}});
    assert_eq!(put(too_short).await.problem(422)["field"], "min_length");
    let no_lockout = serde_json::json!({"mfa_required": "nobody", "allow_totp": true,
        "password_policy": {"min_length": 12, "min_strength": 3},
        "lockout": {"free_failures": 0, "max_wait_seconds": 60}});
    assert_eq!(put(no_lockout).await.problem(422)["field"], "free_failures");
    let strict = serde_json::json!({"mfa_required": "administrators", "allow_totp": true,
        "allow_passkeys": true, "password_policy": {"min_length": 20, "min_strength": 3},
        "lockout": {"free_failures": 3, "max_wait_seconds": 60}});
    put(strict.clone()).await.expect(200);
    assert_eq!(admin.get("/v1/sign-in-settings").await.expect(200), strict);
    assert!(
        !admin
            .audit("tenant.sign_in_settings.update")
            .await
            .is_empty()
    );
    let (_, helpdesk) = admin
        .principal_with_role("hd", "user_administrator", "tenant")
        .await;
    server
        .client(&helpdesk)
        .send(
            reqwest::Method::PUT,
            "/v1/sign-in-settings",
            Some(strict),
            &[],
        )
        .await
        .problem(403);

    // The tenant's policy now wants 20 characters.
    let user = admin.create_user("policy").await;
    let problem = admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/users/{}/password", user["id"].as_str().unwrap()),
            Some(serde_json::json!({"password": "maple orbit quill"})),
            &[],
        )
        .await
        .problem(422);
    assert!(
        problem["detail"].as_str().unwrap().contains("at least 20"),
        "{problem}"
    );
}

#[tokio::test]
async fn administrators_must_set_up_an_authenticator_when_the_tenant_says_so() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin
        .send(
            reqwest::Method::PUT,
            "/v1/sign-in-settings",
            Some(
                serde_json::json!({"mfa_required": "administrators", "allow_totp": true,
                "password_policy": {"min_length": 12, "min_strength": 3}}),
            ),
            &[],
        )
        .await
        .expect(200);
    // An administrator is whoever may do any of Portcullis's own actions, by any role: here a
    // custom one, held through a group. A role over applications' data alone makes nobody one.
    let directory_reader = admin
        .post(
            "/v1/custom-roles",
            serde_json::json!({"name": "Directory reader", "permissions": [{"action": "portcullis:user.read"}]}),
        )
        .await
        .expect(201);
    let readers = admin
        .post("/v1/groups", serde_json::json!({"name": "readers"}))
        .await
        .expect(201);
    admin
        .post(
            "/v1/role-assignments",
            serde_json::json!({"principal": {"kind": "group", "id": readers["id"]}, "role": directory_reader["id"]}),
        )
        .await
        .expect(201);
    let boss = user_with_password(&server, "boss", false).await;
    admin
        .post(
            &format!("/v1/groups/{}/members", readers["id"].as_str().unwrap()),
            serde_json::json!({"kind": "user", "id": boss}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/resource-types",
            serde_json::json!({"name": "note", "actions": [{"name": "read", "plane": "data"}]}),
        )
        .await
        .expect(201);
    let note_reader = admin
        .post(
            "/v1/custom-roles",
            serde_json::json!({"name": "Note reader", "permissions": [{"action": "note.read"}]}),
        )
        .await
        .expect(201);
    let staff = user_with_password(&server, "staff", false).await;
    admin
        .post(
            "/v1/role-assignments",
            serde_json::json!({"principal": {"kind": "user", "id": staff}, "role": note_reader["id"]}),
        )
        .await
        .expect(201);

    let mut staff = Browser::new(&server);
    assert_eq!(
        staff
            .sign_in("operator", "staff", PASSWORD)
            .await
            .location(),
        "/t/operator/account"
    );

    let mut browser = Browser::new(&server);
    let done = browser.sign_in("operator", "boss", PASSWORD).await;
    assert_eq!(
        done.location(),
        "/t/operator/account/mfa",
        "sent to set one up"
    );
    assert_eq!(
        browser.get("/t/operator/account").await.location(),
        "/t/operator/account/mfa"
    );
    let page = browser.get("/t/operator/account/mfa").await;
    let key = manual_key(&page.body);
    let csrf = page.csrf();
    let enrolled = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &csrf), ("code", &code(&key, 0))],
        )
        .await;
    assert_eq!(enrolled.status, 200);
    assert_eq!(
        browser.get("/t/operator/account").await.status,
        200,
        "free to go on"
    );
    // Next time, the code is asked for.
    let mut later = Browser::new(&server);
    assert_eq!(
        later.sign_in("operator", "boss", PASSWORD).await.location(),
        "/t/operator/sign-in/code"
    );
}

#[tokio::test]
async fn removing_the_authenticator_needs_the_password() {
    let server = TestServer::start().await;
    let (key, _) = enrolled(&server, "switcher").await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "switcher", PASSWORD).await;
    let csrf = browser.get("/t/operator/sign-in/code").await.csrf();
    let done = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(done.status, 303);
    let csrf = browser.get("/t/operator/account/mfa").await.csrf();
    let refused = browser
        .post(
            "/t/operator/account/mfa/remove",
            &[("csrf", &csrf), ("current_password", "a guess at it")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("still on"));
    let removed = browser
        .post(
            "/t/operator/account/mfa/remove",
            &[("csrf", &csrf), ("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(removed.location(), "/t/operator/account");
    assert!(!server.admin().audit("user.mfa.remove").await.is_empty());
    let mut later = Browser::new(&server);
    assert_eq!(
        later
            .sign_in("operator", "switcher", PASSWORD)
            .await
            .location(),
        "/t/operator/account"
    );
}

#[tokio::test]
async fn the_tenant_sets_how_soon_an_account_backs_off() {
    let server = TestServer::start().await;
    server
        .admin()
        .send(
            reqwest::Method::PUT,
            "/v1/sign-in-settings",
            Some(
                serde_json::json!({"mfa_required": "nobody", "allow_totp": true,
                "password_policy": {"min_length": 12, "min_strength": 3},
                "lockout": {"free_failures": 2, "max_wait_seconds": 30}}),
            ),
            &[],
        )
        .await
        .expect(200);
    user_with_password(&server, "strict", false).await;
    let mut browser = Browser::new(&server);
    for _ in 0..2 {
        assert_eq!(
            browser
                .sign_in("operator", "strict", "wrong wrong wrong")
                .await
                .status,
            401
        );
    }
    let locked = browser.sign_in("operator", "strict", PASSWORD).await;
    assert_eq!(
        locked.status, 429,
        "locked after the tenant's two free failures"
    );
}

#[tokio::test]
async fn a_challenge_is_good_only_in_its_own_tenant_and_for_a_user_still_allowed_in() {
    let server = TestServer::start().await;
    let (key, _) = enrolled(&server, "traveller").await;
    server.admin().create_tenant("elsewhere").await;
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser
            .sign_in("operator", "traveller", PASSWORD)
            .await
            .location(),
        "/t/operator/sign-in/code"
    );
    // The challenge names the operator tenant in its MAC: another tenant's code step ignores it.
    let csrf = browser.get("/t/elsewhere/sign-in").await.csrf();
    let across = browser
        .post(
            "/t/elsewhere/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(across.location(), "/t/elsewhere/sign-in");
    assert!(!browser.cookies.contains_key("portcullis_session"));

    // The user's guest-style expiry passes between the password and the code: start again.
    let id = server
        .admin()
        .get("/v1/users?prefix=traveller")
        .await
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .db
        .execute(&format!(
            "UPDATE users SET expires_at = 1 WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    let expired = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(expired.location(), "/t/operator/sign-in");
    assert!(!browser.cookies.contains_key("portcullis_session"));
}

#[tokio::test]
async fn the_help_desk_resets_a_lost_authenticator_and_the_users_sessions_end() {
    let server = TestServer::start().await;
    let (key, _) = enrolled(&server, "gus").await;
    let id = server.admin().get("/v1/users?prefix=gus").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "gus", PASSWORD).await;
    let page = browser.get("/t/operator/sign-in/code").await;
    let signed = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &page.csrf()), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(browser.get("/t/operator/account").await.status, 200);

    // A user administrator may reset it; the reset needs user.credential.reset.
    let (_, helpdesk) = server
        .admin()
        .principal_with_role("helpdesk", "user_administrator", "tenant")
        .await;
    let (_, reader) = server
        .admin()
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    let path = format!("/v1/users/{id}/mfa");
    server
        .client(&reader)
        .send(reqwest::Method::DELETE, &path, None, &[])
        .await
        .problem(403);
    server
        .client(&helpdesk)
        .send(reqwest::Method::DELETE, &path, None, &[])
        .await
        .expect(204);
    // Their session is over, the code and the recovery codes are gone: the password alone
    // now signs in (the tenant does not require MFA), and nothing is asked.
    assert_eq!(
        browser.get("/t/operator/account").await.location(),
        "/t/operator/sign-in"
    );
    let mut again = Browser::new(&server);
    assert_eq!(
        again.sign_in("operator", "gus", PASSWORD).await.location(),
        "/t/operator/account"
    );
    let events = server.admin().audit("user.mfa.reset").await;
    assert_eq!(events.len(), 1);
    // This one and the one she enrolled in.
    assert_eq!(events[0]["details"]["sessions_ended"], 2);
    assert_eq!(events[0]["details"]["recovery_codes"], 10);
    // Nothing left to reset.
    server
        .client(&helpdesk)
        .send(reqwest::Method::DELETE, &path, None, &[])
        .await
        .problem(404);
}

#[tokio::test]
async fn users_make_new_recovery_codes_and_the_old_ones_stop_working() {
    let server = TestServer::start().await;
    let (key, old_codes) = enrolled(&server, "hazel").await;
    // Signed in with a recovery code: the app's current step stays unused.
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "hazel", PASSWORD).await;
    let page = browser.get("/t/operator/sign-in/code").await;
    let signed = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &page.csrf()), ("recovery_code", &old_codes[0])],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);

    let page = browser.get("/t/operator/account/mfa").await;
    assert!(
        page.body.contains("9 unused recovery codes"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    // Without the form's token, or without a right code from the app, nothing changes.
    let forged = browser
        .post(
            "/t/operator/account/mfa/recovery-codes",
            &[("csrf", "forged"), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(forged.status, 403);
    let wrong = browser
        .post(
            "/t/operator/account/mfa/recovery-codes",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("have not changed"), "{}", wrong.body);
    assert!(
        server
            .admin()
            .audit("user.recovery_codes.regenerate")
            .await
            .is_empty()
    );

    let made = browser
        .post(
            "/t/operator/account/mfa/recovery-codes",
            &[("csrf", &csrf), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let new_codes = between(&made.body, "<li><code>", "</code>");
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|c| !old_codes.iter().any(|o| o == c)));
    let audited = server.admin().audit("user.recovery_codes.regenerate").await;
    assert_eq!(audited.len(), 1);
    assert!(
        !audited[0].to_string().contains(new_codes[0]),
        "codes never reach the audit trail"
    );

    // An old code no longer signs in; a new one does.
    for (recovery_code, expected) in [(old_codes[1].as_str(), 401), (new_codes[0], 303)] {
        let mut other = Browser::new(&server);
        other.sign_in("operator", "hazel", PASSWORD).await;
        let page = other.get("/t/operator/sign-in/code").await;
        let answer = other
            .post(
                "/t/operator/sign-in/code",
                &[("csrf", &page.csrf()), ("recovery_code", recovery_code)],
            )
            .await;
        assert_eq!(answer.status, expected, "{recovery_code}: {}", answer.body);
    }
}
