//! The admin console, driven as a browser without JavaScript drives it: it is the admin API
//! for a person signed in to their browser, with the same authorization, step-up, audit and
//! refusals, and no way around them.

use serde_json::{Value, json};

use crate::administrators::give_role;
use crate::harness::TestServer;
use crate::mfa::between;
use crate::signin::{Browser, PASSWORD, user_with_password};

/// Writes from a password session: the tenant asks for no second factor (the step-up test
/// below keeps the default, which does).
async fn no_mfa_for_administrators(server: &TestServer) {
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
}

/// A signed-in browser of a person holding `role`.
async fn administrator(server: &TestServer, name: &str, role: &str) -> (String, Browser) {
    let id = user_with_password(server, name, false).await;
    give_role(server, &id, role).await;
    let mut browser = Browser::new(server);
    assert_eq!(
        browser.sign_in("operator", name, PASSWORD).await.status,
        303
    );
    (id, browser)
}

async fn user(server: &TestServer, id: &str) -> Value {
    server
        .admin()
        .get(&format!("/v1/users/{id}"))
        .await
        .expect(200)
}

#[tokio::test]
async fn an_administrator_finds_creates_changes_and_disables_users_as_themselves() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (alice, mut browser) = administrator(&server, "alice", "user_administrator").await;
    for name in ["carol", "carla", "dave"] {
        server.admin().create_user(name).await;
    }

    // The tenant's address leads her to the console.
    let landing = browser.get("/t/operator").await;
    assert_eq!(landing.status, 303);
    assert_eq!(landing.location(), "/t/operator/console");
    let home = browser.get("/t/operator/console").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("/t/operator/console/users"));

    // Search by the start of the name; paging carries the search along.
    let found = browser.get("/t/operator/console/users?q=CAR").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains(">carol</a>") && found.body.contains(">carla</a>"));
    assert!(!found.body.contains(">dave</a>"), "{}", found.body);
    let everyone = browser
        .get("/t/operator/console/users?q=&state=active")
        .await;
    assert!(everyone.body.contains(">dave</a>") && everyone.body.contains(">alice</a>"));

    // Create a user through the form: the API's validation, the audit trail names her.
    let form = browser.get("/t/operator/console/users/new").await;
    let csrf = form.csrf();
    let created = browser
        .post(
            "/t/operator/console/users/new",
            &[
                ("csrf", &csrf),
                ("user_name", "bob"),
                ("display_name", "Bob Builder"),
                ("email", "bob@example.com"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let bob_page = created.location().to_owned();
    assert!(bob_page.ends_with("?done=created"), "{bob_page}");
    let bob = between(&bob_page, "/console/users/", "?")[0].to_owned();
    let shown = browser.get(&bob_page).await;
    assert!(shown.body.contains("The user was created."));
    assert!(shown.body.contains("Bob Builder") && shown.body.contains("bob@example.com"));
    let event = server
        .admin()
        .audit("user.create")
        .await
        .into_iter()
        .find(|e| e["target"]["id"] == bob.as_str())
        .expect("the creation is audited");
    assert_eq!(event["actor"]["id"], alice.as_str());
    assert_eq!(event["actor"]["authentication"]["method"], "session");

    // A mistake is shown on the form, with what was typed kept, and creates nothing.
    let again = browser
        .post(
            "/t/operator/console/users/new",
            &[
                ("csrf", &csrf),
                ("user_name", "BOB"),
                ("display_name", "Another Bob"),
            ],
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(again.body.contains("role=\"alert\""), "{}", again.body);
    assert!(
        again.body.contains("value=\"Another Bob\""),
        "{}",
        again.body
    );
    let bad_email = browser
        .post(
            "/t/operator/console/users/new",
            &[
                ("csrf", &csrf),
                ("user_name", "erin"),
                ("email", "not an address"),
            ],
        )
        .await;
    assert_eq!(bad_email.status, 422);
    assert!(bad_email.body.contains("The email"), "{}", bad_email.body);
    let bobs = server.admin().get("/v1/users?prefix=bob").await.expect(200);
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1);
    assert!(
        server
            .admin()
            .get("/v1/users?prefix=erin")
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Edit against the version shown; a change made meanwhile is not overwritten.
    let version = user(&server, &bob).await["version"].to_string();
    let edited = browser
        .post(
            &format!("/t/operator/console/users/{bob}/edit"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("display_name", "Robert"),
                ("email", ""),
            ],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    let now = user(&server, &bob).await;
    assert_eq!(now["display_name"], "Robert");
    assert!(now["email"].is_null(), "an empty field clears it: {now}");
    let stale = browser
        .post(
            &format!("/t/operator/console/users/{bob}/state"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("state", "disabled"),
            ],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("changed while you were on this page"));
    assert_eq!(user(&server, &bob).await["state"], "active");

    // Disable, then delete and restore.
    let version = user(&server, &bob).await["version"].to_string();
    let disabled = browser
        .post(
            &format!("/t/operator/console/users/{bob}/state"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("state", "disabled"),
            ],
        )
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    assert_eq!(user(&server, &bob).await["state"], "disabled");
    let version = user(&server, &bob).await["version"].to_string();
    let deleted = browser
        .post(
            &format!("/t/operator/console/users/{bob}/delete"),
            &[("csrf", &csrf), ("version", &version)],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(user(&server, &bob).await["state"], "deleted");
    let page = browser
        .get(&format!("/t/operator/console/users/{bob}"))
        .await;
    assert!(page.body.contains("/restore"), "{}", page.body);
    let restored = browser
        .post(
            &format!("/t/operator/console/users/{bob}/restore"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(restored.status, 303, "{}", restored.body);
    assert_eq!(user(&server, &bob).await["state"], "disabled");

    // A value the form never offers is refused, not guessed at.
    let version = user(&server, &bob).await["version"].to_string();
    let odd = browser
        .post(
            &format!("/t/operator/console/users/{bob}/state"),
            &[("csrf", &csrf), ("version", &version), ("state", "deleted")],
        )
        .await;
    assert_eq!(odd.status, 400, "{}", odd.body);
    let garbage = browser
        .post(
            &format!("/t/operator/console/users/{bob}/state"),
            &[("csrf", &csrf), ("version", "many"), ("state", "active")],
        )
        .await;
    assert_eq!(garbage.status, 422, "{}", garbage.body);
    assert_eq!(user(&server, &bob).await["state"], "disabled");
    let nobody = browser.get("/t/operator/console/users/not-a-user-id").await;
    assert_eq!(nobody.status, 404);
}

#[tokio::test]
async fn the_help_desk_ends_sessions_and_hands_over_an_enrolment_link_shown_once() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "alice", "user_administrator").await;
    let dan = user_with_password(&server, "dan", false).await;
    let mut dans_browser = Browser::new(&server);
    dans_browser.sign_in("operator", "dan", PASSWORD).await;
    let page = browser
        .get(&format!("/t/operator/console/users/{dan}"))
        .await;
    assert!(page.body.contains("End all sessions"), "{}", page.body);
    assert!(
        !page.body.contains("reqwest"),
        "devices are named, not shown as raw user agents"
    );
    let csrf = page.csrf();

    let ended = browser
        .post(
            &format!("/t/operator/console/users/{dan}/sessions/end"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    assert_eq!(dans_browser.get("/t/operator/account").await.status, 303);

    let link = browser
        .post(
            &format!("/t/operator/console/users/{dan}/enrolment-link"),
            &[("csrf", &csrf), ("hours", "24")],
        )
        .await;
    assert_eq!(link.status, 200, "{}", link.body);
    assert_eq!(link.headers["cache-control"], "no-store");
    let url = between(&link.body, "readonly value=\"", "\"")[0].replace("&#x3D;", "=");
    assert!(url.contains("/t/operator/enrol?token="), "{url}");
    let path = &url[url.find("/t/operator/enrol").unwrap()..];
    let enrol = Browser::new(&server).get(path).await;
    assert_eq!(enrol.status, 200, "the link works: {}", enrol.body);
    let too_long = browser
        .post(
            &format!("/t/operator/console/users/{dan}/enrolment-link"),
            &[("csrf", &csrf), ("hours", "100000")],
        )
        .await;
    assert_eq!(too_long.status, 422, "{}", too_long.body);

    let unlock = browser
        .post(
            &format!("/t/operator/console/users/{dan}/unlock"),
            &[("csrf", &csrf), ("reason", "")],
        )
        .await;
    assert_eq!(unlock.status, 422, "a reason is required: {}", unlock.body);
    let unlocked = browser
        .post(
            &format!("/t/operator/console/users/{dan}/unlock"),
            &[("csrf", &csrf), ("reason", "ticket 42, called back")],
        )
        .await;
    assert_eq!(unlocked.status, 303, "{}", unlocked.body);
    let event = server.admin().audit("user.unlock").await;
    assert_eq!(event[0]["reason"], "ticket 42, called back", "{event:?}");
}

#[tokio::test]
async fn a_change_that_needs_a_second_factor_goes_through_step_up_and_back_to_the_form() {
    let server = TestServer::start().await;
    // The tenant's default: changes need a multi-factor sign-in; reads do not.
    let (_, mut browser) = administrator(&server, "alice", "user_administrator").await;
    let form = browser.get("/t/operator/console/users/new").await;
    assert_eq!(form.status, 200, "reading needs no second factor");
    let form_csrf = form.csrf();
    let refused = browser
        .post(
            "/t/operator/console/users/new",
            &[("csrf", &form_csrf), ("user_name", "bob")],
        )
        .await;
    assert_eq!(refused.status, 303, "{}", refused.body);
    assert_eq!(
        refused.location(),
        "/t/operator/step-up?to=/t/operator/console/users/new&strength=mfa"
    );
    assert!(
        server.admin().get("/v1/users?prefix=bob").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let asked = browser.get(refused.location()).await;
    assert_eq!(asked.status, 200, "{}", asked.body);

    // A form deeper under its page returns to that page, not to a path that is no page.
    let dan = server.admin().create_user("dan").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = server
        .admin()
        .post("/v1/groups", json!({"name": "ops"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin()
        .post(
            &format!("/v1/groups/{group}/members"),
            json!({"kind": "user", "id": dan}),
        )
        .await
        .expect(201);
    for (form, page) in [
        (
            format!("/t/operator/console/users/{dan}/sessions/end"),
            format!("/t/operator/console/users/{dan}"),
        ),
        (
            format!("/t/operator/console/groups/{group}/members/user/{dan}/remove"),
            format!("/t/operator/console/groups/{group}"),
        ),
    ] {
        let refused = browser.post(&form, &[("csrf", &form_csrf)]).await;
        assert_eq!(refused.status, 303, "{form}: {}", refused.body);
        assert_eq!(
            refused.location(),
            format!("/t/operator/step-up?to={page}&strength=mfa")
        );
        assert_eq!(browser.get(&page).await.status, 200, "{page} is a page");
    }
    let members = server
        .admin()
        .get(&format!("/v1/groups/{group}/members"))
        .await
        .expect(200);
    assert_eq!(
        members["items"].as_array().unwrap().len(),
        1,
        "nothing removed"
    );
}

#[tokio::test]
async fn people_without_an_administrative_role_get_their_account_not_the_console() {
    let server = TestServer::start().await;
    user_with_password(&server, "pat", false).await;
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "pat", PASSWORD).await;
    assert_eq!(
        browser.get("/t/operator").await.location(),
        "/t/operator/account"
    );
    let home = browser.get("/t/operator/console").await;
    assert_eq!(home.status, 403, "{}", home.body);
    let users = browser.get("/t/operator/console/users").await;
    assert_eq!(users.status, 403, "{}", users.body);
    assert!(!users.body.contains(">pat</a>"));
    let refusal = server
        .admin()
        .audit("user.read")
        .await
        .into_iter()
        .find(|e| e["outcome"] == "denied");
    assert!(refusal.is_some(), "the refusal is audited as on the API");
}

#[tokio::test]
async fn a_browser_that_is_not_signed_in_signs_in_and_comes_back_to_the_console_page() {
    let server = TestServer::start().await;
    let alice = user_with_password(&server, "alice", false).await;
    give_role(&server, &alice, "user_administrator").await;
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.get("/t/operator").await.location(),
        "/t/operator/sign-in"
    );
    let asked = browser.get("/t/operator/console/users?q=al").await;
    assert_eq!(asked.status, 303);
    assert_eq!(asked.location(), "/t/operator/sign-in");
    let signed_in = browser.sign_in("operator", "alice", PASSWORD).await;
    assert_eq!(signed_in.location(), "/t/operator/console/users?q=al");

    // The address asked for becomes a cookie only as a plain path: a `;` cannot smuggle in
    // cookie attributes, and such an address is simply not returned to.
    let mut stranger = Browser::new(&server);
    let smuggled = stranger
        .get("/t/operator/console/users?q=x;Domain=evil.example;Max-Age=999999")
        .await;
    assert_eq!(smuggled.location(), "/t/operator/sign-in");
    let cookies: Vec<_> = smuggled
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .all(|c| !c.contains("evil.example") && !c.contains("999999")),
        "{cookies:?}"
    );
    assert!(!stranger.cookies.contains_key("portcullis_continue"));

    // `/` asks for the organisation and never lists any.
    let root = stranger.get("/").await;
    assert_eq!(root.status, 200);
    assert!(!root.body.contains("operator"), "{}", root.body);
    assert_eq!(
        stranger.get("/?tenant=%20Operator%20").await.location(),
        "/t/operator"
    );
    let bad = stranger.get("/?tenant=..%2Fv1%2Fusers").await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(stranger.get("/t/no-such-tenant").await.status, 404);
}

#[tokio::test]
async fn another_tenants_administrator_sees_nothing_of_this_tenant() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let victim = user_with_password(&server, "victim", false).await;
    let (_, key) = server.admin().create_tenant("acme").await;
    let acme = server.client(&key);
    let mallory = acme.create_user("mallory").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acme.send(
        reqwest::Method::PUT,
        &format!("/v1/users/{mallory}/password"),
        Some(json!({"password": PASSWORD, "must_change": false})),
        &[],
    )
    .await
    .expect(204);
    acme.post(
        "/v1/role-assignments",
        json!({"principal": {"kind": "user", "id": mallory}, "role": "tenant_administrator"}),
    )
    .await
    .expect(201);
    acme.send(
        reqwest::Method::PUT,
        "/v1/administrator-policy",
        Some(json!({"mfa": "none", "recent_actions": []})),
        &[],
    )
    .await
    .expect(200);
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.sign_in("acme", "mallory", PASSWORD).await.status,
        303
    );
    assert_eq!(browser.get("/t/acme/console/users").await.status, 200);

    // Her session is no session in the operator tenant, and the victim is no user of hers.
    let theirs = browser.get("/t/operator/console/users").await;
    assert_eq!(theirs.location(), "/t/operator/sign-in");
    let by_id = browser
        .get(&format!("/t/acme/console/users/{victim}"))
        .await;
    assert_eq!(by_id.status, 404, "{} {}", by_id.location(), by_id.body);
    let csrf = browser.get("/t/acme/console/users/new").await.csrf();
    let version = user(&server, &victim).await["version"].to_string();
    let disable = browser
        .post(
            &format!("/t/acme/console/users/{victim}/state"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("state", "disabled"),
            ],
        )
        .await;
    assert_eq!(
        disable.status,
        404,
        "{} {}",
        disable.location(),
        disable.body
    );
    assert_eq!(user(&server, &victim).await["state"], "active");
}

#[tokio::test]
async fn a_search_pages_through_every_match_once_by_name_or_address_and_resumes_only_itself() {
    let server = TestServer::start().await;
    let admin = server.admin();
    // 60 names that match, 5 that match only by their address, 1 that matches both ways and
    // 10 that do not match at all.
    for i in 0..60 {
        admin.create_user(&format!("kim-{i:03}")).await;
    }
    for i in 0..5 {
        admin
            .post(
                "/v1/users",
                json!({"user_name": format!("other-{i}"), "email": format!("kim.{i}@example.com")}),
            )
            .await
            .expect(201);
    }
    admin
        .post(
            "/v1/users",
            json!({"user_name": "KIMBERLEY", "email": "kimberley@example.com"}),
        )
        .await
        .expect(201);
    for i in 0..10 {
        admin.create_user(&format!("lee-{i}")).await;
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?prefix=Kim&limit=25&cursor={c}"),
            None => "/v1/users?prefix=Kim&limit=25".to_owned(),
        };
        let page = admin.get(&path).await.expect(200);
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["user_name"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 66, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 66, "each match once: {seen:?}");
    assert!(!seen.iter().any(|n| n.starts_with("lee-")));
    // Every name and every address-only match is there: 60 + 5 + 1.
    for i in 0..60 {
        assert!(
            seen.contains(&format!("kim-{i:03}")),
            "kim-{i:03}: {seen:?}"
        );
    }
    for i in 0..5 {
        assert!(seen.contains(&format!("other-{i}")), "other-{i}: {seen:?}");
    }
    assert!(seen.contains(&"KIMBERLEY".to_owned()));

    // A filter applies to the search; a cursor resumes only the search that gave it.
    let first = admin.get("/v1/users?prefix=kim&limit=10").await.expect(200);
    let token = first["next_cursor"].as_str().unwrap().to_owned();
    let other = admin
        .get(&format!("/v1/users?prefix=lee&limit=10&cursor={token}"))
        .await
        .problem(422);
    assert!(
        other["detail"]
            .as_str()
            .unwrap()
            .contains("different search"),
        "{other}"
    );
    admin
        .get("/v1/users?prefix=kim&cursor=not-a-cursor")
        .await
        .problem(422);
    let huge = "k".repeat(257);
    admin
        .get(&format!("/v1/users?prefix={huge}"))
        .await
        .problem(422);
    let disabled = admin
        .get("/v1/users?prefix=kim&state=disabled")
        .await
        .expect(200);
    assert!(disabled["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn groups_are_made_and_filled_by_name_with_the_apis_rules() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "alice", "user_administrator").await;
    let carol = server
        .admin()
        .post(
            "/v1/users",
            json!({"user_name": "carol", "email": "carol@example.com"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dave = server.admin().create_user("dave").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = browser.get("/t/operator/console/groups/new").await.csrf();
    let create = |name: &'static str| [("csrf", csrf.clone()), ("name", name.to_owned())];
    let made = browser
        .post(
            "/t/operator/console/groups/new",
            &pairs(&create("Engineering")),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let engineering = between(made.location(), "/console/groups/", "?")[0].to_owned();
    let platform = browser
        .post(
            "/t/operator/console/groups/new",
            &pairs(&create("Platform")),
        )
        .await;
    let platform = between(platform.location(), "/console/groups/", "?")[0].to_owned();
    let taken = browser
        .post(
            "/t/operator/console/groups/new",
            &pairs(&create("engineering")),
        )
        .await;
    assert_eq!(taken.status, 422, "{}", taken.body);

    // Members by user name, by e-mail address, and a nested group by its name.
    let members_of = |group: &str| {
        let path = format!("/v1/groups/{group}/members");
        let admin = server.admin();
        async move {
            admin.get(&path).await.expect(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["member"]["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let add = |kind: &'static str, name: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("kind", kind.to_owned()),
            ("name", name.to_owned()),
        ]
    };
    let add_to = format!("/t/operator/console/groups/{engineering}/members");
    for (kind, name) in [("user", "CAROL"), ("user", "dave"), ("group", "platform")] {
        let added = browser.post(&add_to, &pairs(&add(kind, name))).await;
        assert_eq!(added.status, 303, "{name}: {}", added.body);
    }
    let mut members = members_of(&engineering).await;
    members.sort();
    let mut expected = vec![carol.clone(), dave.clone(), platform.clone()];
    expected.sort();
    assert_eq!(members, expected);
    let by_email = browser
        .post(
            &format!("/t/operator/console/groups/{platform}/members"),
            &pairs(&add("user", "carol@example.com")),
        )
        .await;
    assert_eq!(by_email.status, 303, "{}", by_email.body);
    assert_eq!(members_of(&platform).await, vec![carol.clone()]);

    // A name that is nobody, a kind the form never offers and a cycle are refused, changing
    // nothing.
    let nobody = browser.post(&add_to, &pairs(&add("user", "nobody"))).await;
    assert_eq!(nobody.status, 422, "{}", nobody.body);
    assert!(nobody.body.contains("no user named"), "{}", nobody.body);
    let odd = browser
        .post(&add_to, &pairs(&add("service_principal", "x")))
        .await;
    assert_eq!(odd.status, 400);
    let cycle = browser
        .post(
            &format!("/t/operator/console/groups/{platform}/members"),
            &pairs(&add("group", "Engineering")),
        )
        .await;
    assert_eq!(cycle.status, 409, "{}", cycle.body);
    assert_eq!(members_of(&platform).await, vec![carol.clone()]);

    // The group's page lists them by name; one is removed.
    let page = browser
        .get(&format!("/t/operator/console/groups/{engineering}"))
        .await;
    assert!(page.body.contains(">carol</a>") && page.body.contains(">Platform</a>"));
    let removed = browser
        .post(
            &format!("/t/operator/console/groups/{engineering}/members/user/{dave}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(!members_of(&engineering).await.contains(&dave));

    // Renamed against the version shown; then deleted.
    let version = server
        .admin()
        .get(&format!("/v1/groups/{engineering}"))
        .await
        .expect(200)["version"]
        .to_string();
    let renamed = browser
        .post(
            &format!("/t/operator/console/groups/{engineering}/edit"),
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("name", "Engineers"),
                ("description", "Everyone who builds"),
            ],
        )
        .await;
    assert_eq!(renamed.status, 303, "{}", renamed.body);
    let stale = browser
        .post(
            &format!("/t/operator/console/groups/{engineering}/delete"),
            &[("csrf", csrf.as_str()), ("version", version.as_str())],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    let listed = browser.get("/t/operator/console/groups?q=eng").await;
    assert!(listed.body.contains(">Engineers</a>"), "{}", listed.body);
    let version = server
        .admin()
        .get(&format!("/v1/groups/{engineering}"))
        .await
        .expect(200)["version"]
        .to_string();
    let deleted = browser
        .post(
            &format!("/t/operator/console/groups/{engineering}/delete"),
            &[("csrf", csrf.as_str()), ("version", version.as_str())],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    server
        .admin()
        .get(&format!("/v1/groups/{engineering}"))
        .await
        .problem(404);
}

/// A form's fields as the browser helper takes them.
fn pairs<'a, const N: usize>(
    fields: &'a [(&'static str, String); N],
) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn an_auditor_reads_filters_exports_and_checks_the_logs_and_others_cannot() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut auditor) = administrator(&server, "audrey", "auditor").await;
    let (_, mut helpdesk) = administrator(&server, "hal", "user_administrator").await;
    let victim = server.admin().create_user("mallory").await;
    let victim_id = victim["id"].as_str().unwrap();
    // A value a spreadsheet would run as a formula, written into the trail by a person.
    server
        .admin()
        .post(
            &format!("/v1/users/{victim_id}/lockout/unlock"),
            json!({"reason": "=HYPERLINK(\"http://evil.example\",\"click\")"}),
        )
        .await
        .expect(200);
    assert_eq!(
        Browser::new(&server)
            .sign_in("operator", "mallory", "wrong password")
            .await
            .status,
        401
    );

    let home = auditor.get("/t/operator/console").await;
    assert!(
        home.body.contains("/t/operator/console/logs"),
        "{}",
        home.body
    );
    let filtered = auditor
        .get("/t/operator/console/logs?action=user.unlock&outcome=success")
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    assert!(filtered.body.contains("user.unlock"));
    assert!(
        !filtered.body.contains("<summary>user.create</summary>"),
        "only the action asked for"
    );
    let bad_date = auditor.get("/t/operator/console/logs?from=yesterday").await;
    assert!(
        bad_date.body.contains("must be a date"),
        "{}",
        bad_date.body
    );

    let csv = auditor
        .get("/t/operator/console/logs/export?action=user.unlock&format=csv")
        .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(csv.headers["cache-control"], "no-store");
    let mut lines = csv.body.lines();
    assert!(lines.next().unwrap().starts_with("seq,at,action,outcome"));
    let event = lines.next().expect("the unlock event");
    assert!(
        event.contains("\"'=HYPERLINK("),
        "the formula is defused: {event}"
    );
    assert!(lines.next().is_none(), "only the filtered event");
    let json = auditor
        .get("/t/operator/console/logs/export?format=json&action=user.unlock")
        .await;
    let records: Vec<Value> = serde_json::from_str(&json.body).unwrap();
    assert_eq!(records.len(), 1);
    assert!(
        records[0]["hash"].is_string(),
        "the records keep their hashes"
    );

    let sign_ins = auditor.get("/t/operator/console/sign-ins").await;
    assert_eq!(sign_ins.status, 200, "{}", sign_ins.body);
    assert!(sign_ins.body.contains("<svg"), "the day is drawn");
    assert!(sign_ins.body.contains("Failed sign-ins by reason"));
    // An auditor may not read users, so names are not looked up for them; ids are.
    let by_name = auditor
        .get("/t/operator/console/sign-ins?user=Mallory&outcome=failure")
        .await;
    assert!(
        by_name.body.contains("give the user&#39;s id"),
        "{}",
        by_name.body
    );
    let by_id = auditor
        .get(&format!(
            "/t/operator/console/sign-ins?user={victim_id}&outcome=failure"
        ))
        .await;
    assert!(
        by_id.body.contains(&format!("user {victim_id}")),
        "{}",
        by_id.body
    );
    let (_, mut reader) = administrator(&server, "rhea", "security_reader").await;
    let by_name = reader
        .get("/t/operator/console/sign-ins?user=Mallory&outcome=failure")
        .await;
    assert!(
        by_name.body.contains(&format!("user {victim_id}")),
        "{}",
        by_name.body
    );
    let nobody = reader.get("/t/operator/console/sign-ins?user=nobody").await;
    assert!(nobody.body.contains("No user is named"), "{}", nobody.body);

    let chain = auditor.get("/t/operator/console/logs/chain").await;
    assert!(chain.body.contains("Intact"), "{}", chain.body);
    // A record altered behind the database's back (its append-only trigger dropped) is found.
    let lift = if server.db.is_postgres() {
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"
    } else {
        "DROP TRIGGER audit_events_no_update"
    };
    server.db.execute(lift).await.unwrap();
    let changed = server
        .db
        .execute("UPDATE audit_events SET reason = 'nothing to see' WHERE action = 'user.unlock'")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let chain = auditor.get("/t/operator/console/logs/chain").await;
    assert!(chain.body.contains("The chain is broken"), "{}", chain.body);

    // Without audit.read, the logs are the API's refusal.
    for path in [
        "/t/operator/console/logs",
        "/t/operator/console/logs/export?format=csv",
        "/t/operator/console/sign-ins",
        "/t/operator/console/logs/chain",
    ] {
        let refused = helpdesk.get(path).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(!refused.body.contains("user.unlock"));
    }
}

#[tokio::test]
async fn roles_are_assigned_scheduled_removed_and_explained_in_the_console() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (pat, mut browser) = administrator(&server, "pat", "privileged_role_administrator").await;
    let (audrey, mut auditor) = administrator(&server, "audrey", "auditor").await;
    let admin = server.admin();
    let bob = admin.create_user("bob").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team = admin
        .post("/v1/groups", json!({"name": "Night shift"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(
            &format!("/v1/groups/{team}/members"),
            json!({"kind": "user", "id": bob}),
        )
        .await
        .expect(201);
    let assignments_of = |kind: &'static str, id: String| {
        let admin = admin.clone();
        async move {
            admin
                .get(&format!(
                    "/v1/role-assignments?principal_kind={kind}&principal_id={id}"
                ))
                .await
                .expect(200)["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };

    let list = browser.get("/t/operator/console/access").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("pat") && list.body.contains("Privileged role administrator"));
    let csrf = browser
        .get("/t/operator/console/access/assign")
        .await
        .csrf();
    let assign = |kind: &str, name: &str, role: &str, scope: &str, starts: &str, ends: &str| {
        [
            ("csrf", csrf.clone()),
            ("kind", kind.to_owned()),
            ("name", name.to_owned()),
            ("role", role.to_owned()),
            ("scope", scope.to_owned()),
            ("starts_at", starts.to_owned()),
            ("ends_at", ends.to_owned()),
        ]
    };

    // Mistakes are said on the form, with what was typed kept, and create nothing.
    for (fields, said) in [
        (
            assign("user", "nobody", "auditor", "tenant", "", ""),
            "There is no user named “nobody”",
        ),
        (
            assign("group", "night shift", "auditor", "everywhere", "", ""),
            "The scope must be",
        ),
        (
            assign("group", "night shift", "auditor", "tenant", "tomorrow", ""),
            "The start must be a date and time",
        ),
        (
            assign(
                "group",
                "night shift",
                "auditor",
                "tenant",
                "2030-01-02T00:00",
                "2030-01-01T00:00",
            ),
            "ends at",
        ),
    ] {
        let refused = browser
            .post("/t/operator/console/access/assign", &pairs(&fields))
            .await;
        assert_eq!(refused.status, 422, "{said}: {}", refused.body);
        assert!(refused.body.contains(said), "{said}: {}", refused.body);
        assert!(refused.body.contains("value=\"night shift\"") || said.contains("nobody"));
    }
    assert!(assignments_of("group", team.clone()).await.is_empty());

    // The group gets the auditor role by its name; the trail names pat.
    let made = browser
        .post(
            "/t/operator/console/access/assign",
            &pairs(&assign("group", "night shift", "auditor", "tenant", "", "")),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert_eq!(made.location(), "/t/operator/console/access?done=assigned");
    let held = assignments_of("group", team.clone()).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["role"], "auditor");
    let trail = admin
        .get("/v1/audit?action=role_assignment.create&outcome=success")
        .await
        .expect(200);
    assert_eq!(trail["items"][0]["actor"]["id"], pat.as_str(), "{trail}");
    // A scheduled one for bob himself is listed as such.
    let later = browser
        .post(
            "/t/operator/console/access/assign",
            &pairs(&assign(
                "user",
                "BOB",
                "security_reader",
                "tenant",
                "2099-01-01T09:00",
                "",
            )),
        )
        .await;
    assert_eq!(later.status, 303, "{}", later.body);
    let scheduled = assignments_of("user", bob.clone()).await;
    assert_eq!(scheduled[0]["starts_at"], "2099-01-01T09:00:00Z");
    let list = browser
        .get("/t/operator/console/access?role=security_reader")
        .await;
    assert!(
        list.body.contains("scheduled") && list.body.contains(">bob <"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("Night shift"), "{}", list.body);

    // The explorer draws bob → Night shift → assignment → Auditor → audit.read → tenant.
    let why = browser
        .get("/t/operator/console/access/explorer?ask=check&kind=user&name=bob&action=read&resource_type=audit&resource_id=-")
        .await;
    assert_eq!(why.status, 200, "{}", why.body);
    let path = between(&why.body, "<ol class=\"path\"", "</ol>")[0];
    let order = [
        "bob",
        "Night shift",
        "Auditor",
        "audit.read",
        "the whole organisation",
        "audit -",
    ];
    let mut at = 0;
    for node in order {
        let found = path[at..]
            .find(node)
            .unwrap_or_else(|| panic!("{node} after {at}: {path}"));
        at += found;
    }
    assert!(why.body.contains("Allowed"), "{}", why.body);
    // A denial names the node where the path broke.
    let denied = browser
        .get("/t/operator/console/access/explorer?ask=check&kind=user&name=bob&action=create&resource_type=user&resource_id=-")
        .await;
    assert!(
        denied.body.contains("Denied") && denied.body.contains("class=\"broken\""),
        "{}",
        denied.body
    );
    // Who can read the trail: bob through the group, the group itself and audrey; not pat,
    // whose role assigns roles and does not read the trail.
    let who = browser
        .get("/t/operator/console/access/explorer?ask=who&action=audit.read&resource_type=audit&resource_id=-")
        .await;
    assert_eq!(who.status, 200, "{}", who.body);
    let listed = between(&who.body, "<ul class=\"plain\">", "</ul>")[0];
    assert!(
        listed.contains("bob") && listed.contains("audrey") && listed.contains("Night shift"),
        "{listed}"
    );
    assert!(!listed.contains("pat"), "{listed}");
    // A question that cannot be asked is said on the page.
    let bad = browser
        .get("/t/operator/console/access/explorer?ask=check&kind=user&name=bob&action=fly&resource_type=audit&resource_id=-")
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("The action is not an action"),
        "{}",
        bad.body
    );

    // Roles are listed with what they allow, grouped by type.
    let roles = browser.get("/t/operator/console/roles").await;
    assert!(
        roles.body.contains("Auditor") && roles.body.contains("portcullis:audit"),
        "{}",
        roles.body
    );

    // Removing the group's assignment ends bob's access at once.
    let id = held[0]["id"].as_str().unwrap();
    let removed = browser
        .post(
            &format!("/t/operator/console/access/{id}/remove"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    admin
        .get(&format!("/v1/role-assignments/{id}"))
        .await
        .expect(404);
    let why = browser
        .get("/t/operator/console/access/explorer?ask=check&kind=user&name=bob&action=read&resource_type=audit&resource_id=-")
        .await;
    assert!(why.body.contains("Denied"), "{}", why.body);

    // An auditor reads the trail, not who holds what: every access page is refused.
    for page in [
        "/t/operator/console/access",
        "/t/operator/console/roles",
        "/t/operator/console/access/explorer?ask=who&action=audit.read&resource_type=audit&resource_id=-",
    ] {
        assert_eq!(auditor.get(page).await.status, 403, "{page}");
    }
    let auditor_csrf = auditor.get("/t/operator/account").await.csrf();
    let forged = auditor
        .post(
            "/t/operator/console/access/assign",
            &pairs(&[
                ("csrf", auditor_csrf),
                ("kind", "user".to_owned()),
                ("name", "audrey".to_owned()),
                ("role", "tenant_administrator".to_owned()),
                ("scope", "tenant".to_owned()),
            ]),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(assignments_of("user", audrey).await.len(), 1);
}

#[tokio::test]
async fn conditional_access_policies_are_written_tried_and_guarded_in_the_console() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "sam", "security_administrator").await;
    let (_, mut reader) = administrator(&server, "hal", "user_administrator").await;
    let admin = server.admin();
    let bob = admin.create_user("bob").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let policies = || async {
        server.admin().get("/v1/access-policies").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .clone()
    };

    let list = browser.get("/t/operator/console/conditional-access").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("mfa-for-administrators"),
        "{}",
        list.body
    );
    let csrf = list.csrf();

    // From a template: report-only, and the editor shows its document.
    let made = browser
        .post(
            "/t/operator/console/conditional-access/new",
            &[
                ("csrf", csrf.as_str()),
                ("template", "mfa-for-administrators"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let saved = policies().await;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["state"], "report_only");
    let page = browser.get(made.location()).await;
    assert!(
        page.body.contains("&#34;state&#34;: &#34;report_only&#34;"),
        "{}",
        page.body
    );

    // A document that is not JSON, or not a policy, is said on the form and creates nothing.
    for (document, said) in [
        ("{\"name\": ", "line 1"),
        ("{\"name\": \"x\"}", "missing field"),
    ] {
        let refused = browser
            .post(
                "/t/operator/console/conditional-access/new",
                &[("csrf", csrf.as_str()), ("document", document)],
            )
            .await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(refused.body.contains(said), "{said}: {}", refused.body);
    }
    assert_eq!(policies().await.len(), 1);

    // A written policy: block bob from his account page.
    let block_bob = json!({
        "name": "Keep bob out", "state": "enabled",
        "include": {"users": [bob]}, "applications": {"include": ["account"]},
        "grant": {"kind": "block"}
    })
    .to_string();
    let made = browser
        .post(
            "/t/operator/console/conditional-access/new",
            &[("csrf", csrf.as_str()), ("document", block_bob.as_str())],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let policy_page = made.location().split('?').next().unwrap().to_owned();
    // The what-if tool beside it says what it would do, condition by condition.
    let tried = browser
        .get(&format!(
            "{policy_page}?user=bob&application=account&address=203.0.113.9"
        ))
        .await;
    assert_eq!(tried.status, 200, "{}", tried.body);
    assert!(
        tried.body.contains("Blocked by “Keep bob out”"),
        "{}",
        tried.body
    );
    let tried = browser.get(&format!("{policy_page}?user=nobody")).await;
    assert_eq!(tried.status, 422);
    assert!(
        tried.body.contains("no user named “nobody”"),
        "{}",
        tried.body
    );
    let tried = browser
        .get(&format!("{policy_page}?user=bob&address=somewhere"))
        .await;
    assert!(
        tried.body.contains("is not an IP address"),
        "{}",
        tried.body
    );

    // Saved against the version shown; a stale version is refused, not overwritten.
    let id = policy_page.rsplit('/').next().unwrap();
    let stored = admin
        .get(&format!("/v1/access-policies/{id}"))
        .await
        .expect(200);
    let version = stored["version"].to_string();
    let report_only = block_bob.replace("\"enabled\"", "\"report_only\"");
    let edited = browser
        .post(
            &format!("{policy_page}/edit"),
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("document", report_only.as_str()),
            ],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    let stale = browser
        .post(
            &format!("{policy_page}/edit"),
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("document", block_bob.as_str()),
            ],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    let stored = admin
        .get(&format!("/v1/access-policies/{id}"))
        .await
        .expect(200);
    assert_eq!(stored["state"], "report_only");

    // A policy that would lock every administrator out is the API's 409, shown on the form.
    let everyone = json!({
        "name": "Block everyone", "state": "enabled",
        "include": {"all_users": true}, "applications": {"include": ["all"]},
        "grant": {"kind": "block"}
    })
    .to_string();
    let refused = browser
        .post(
            "/t/operator/console/conditional-access/new",
            &[("csrf", csrf.as_str()), ("document", everyone.as_str())],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("emergency access account"),
        "{}",
        refused.body
    );
    assert_eq!(policies().await.len(), 2);

    // A user administrator may read the policies, not change them.
    assert_eq!(
        reader
            .get("/t/operator/console/conditional-access")
            .await
            .status,
        200
    );
    let reader_csrf = reader.get("/t/operator/account").await.csrf();
    let forged = reader
        .post(
            "/t/operator/console/conditional-access/new",
            &[
                ("csrf", reader_csrf.as_str()),
                ("template", "block-legacy-clients"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    // Deleted against the version shown.
    let stored = admin
        .get(&format!("/v1/access-policies/{id}"))
        .await
        .expect(200);
    let deleted = browser
        .post(
            &format!("{policy_page}/delete"),
            &[
                ("csrf", csrf.as_str()),
                ("version", stored["version"].to_string().as_str()),
            ],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(policies().await.len(), 1);
}

#[tokio::test]
async fn the_help_desk_resets_a_lost_phone_and_removes_a_lost_passkey_and_a_reader_cannot() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (hal, mut helpdesk) = administrator(&server, "hal", "user_administrator").await;
    let (_, mut reader) = administrator(&server, "rita", "security_reader").await;
    let admin = server.admin();
    crate::mfa::enrolled(&server, "zoe").await;
    let zoe = admin.get("/v1/users?prefix=zoe").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut key = crate::soft_passkey::SoftPasskey::new();
    let yuri = crate::passkeys::user_with_passkey(&server, "yuri", &mut key).await;
    let status = |id: String| {
        let admin = admin.clone();
        async move { admin.get(&format!("/v1/users/{id}/mfa")).await.expect(200) }
    };
    let before = status(zoe.clone()).await;
    assert_eq!(before["authenticator_app"], true, "{before}");
    assert_eq!(before["recovery_codes_left"], 10, "{before}");
    assert_eq!(status(yuri.clone()).await["passkeys"], 1);

    // The page says what the user has; a reader sees it and cannot reset it.
    let page = reader
        .get(&format!("/t/operator/console/users/{zoe}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<dt>Authenticator app</dt><dd>set up</dd>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("10 unused"), "{}", page.body);
    let refused = reader
        .post(
            &format!("/t/operator/console/users/{zoe}/mfa/reset"),
            &[("csrf", page.csrf().as_str())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(status(zoe.clone()).await["authenticator_app"], true);

    // The help desk resets the lost phone: app and codes gone, sessions ended, audited as hal.
    let csrf = helpdesk
        .get(&format!("/t/operator/console/users/{zoe}"))
        .await
        .csrf();
    let reset = helpdesk
        .post(
            &format!("/t/operator/console/users/{zoe}/mfa/reset"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(reset.status, 303, "{}", reset.body);
    assert_eq!(
        reset.location(),
        format!("/t/operator/console/users/{zoe}?done=mfa-reset")
    );
    let after = status(zoe.clone()).await;
    assert_eq!(
        (
            after["authenticator_app"].as_bool(),
            after["recovery_codes_left"].as_i64()
        ),
        (Some(false), Some(0)),
        "{after}"
    );
    let sessions = admin
        .get(&format!("/v1/users/{zoe}/sessions"))
        .await
        .expect(200);
    assert_eq!(sessions["items"], json!([]), "{sessions}");
    let trail = admin
        .get("/v1/audit?action=user.mfa.reset")
        .await
        .expect(200);
    assert_eq!(trail["items"][0]["actor"]["id"], hal.as_str(), "{trail}");
    // With nothing left to reset, the page offers no reset.
    let page = helpdesk
        .get(&format!("/t/operator/console/users/{zoe}"))
        .await;
    assert!(!page.body.contains("/mfa/reset"), "{}", page.body);

    // A lost passkey, removed by its row.
    let page = helpdesk
        .get(&format!("/t/operator/console/users/{yuri}"))
        .await;
    assert!(page.body.contains(">Laptop<"), "{}", page.body);
    let passkey = admin
        .get(&format!("/v1/users/{yuri}/passkeys"))
        .await
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let removed = helpdesk
        .post(
            &format!("/t/operator/console/users/{yuri}/passkeys/{passkey}/remove"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert_eq!(status(yuri).await["passkeys"], 0);
}

#[tokio::test]
async fn the_account_page_shows_a_person_how_they_sign_in_and_what_they_may_do_and_why() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (key, codes) = crate::mfa::enrolled(&server, "zoe").await;
    assert!(!key.is_empty() && codes.len() == 10);
    let zoe = admin.get("/v1/users?prefix=zoe").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // zoe → Night shift → Operations, which holds auditor; zoe holds a scheduled role herself.
    let group = |name: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .post("/v1/groups", json!({"name": name}))
                .await
                .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (night, ops) = (group("Night shift").await, group("Operations").await);
    for (into, kind, member) in [(&night, "user", &zoe), (&ops, "group", &night)] {
        admin
            .post(
                &format!("/v1/groups/{into}/members"),
                json!({"kind": kind, "id": member}),
            )
            .await
            .expect(201);
    }
    for (kind, id, role, starts) in [
        ("group", &ops, "auditor", None),
        (
            "user",
            &zoe,
            "security_reader",
            Some("2099-01-01T00:00:00Z"),
        ),
    ] {
        admin
            .post(
                "/v1/role-assignments",
                json!({"principal": {"kind": kind, "id": id}, "role": role, "starts_at": starts}),
            )
            .await
            .expect(201);
    }

    // She signs in with her password and her authenticator.
    let mut browser = Browser::new(&server);
    let step = browser.sign_in("operator", "zoe", PASSWORD).await;
    assert_eq!(step.location(), "/t/operator/sign-in/code");
    let csrf = browser.get("/t/operator/sign-in/code").await.csrf();
    let next = crate::mfa::code(&key, 1);
    let done = browser
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", csrf.as_str()), ("code", next.as_str())],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = browser.get("/t/operator/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("<dt>Authenticator app</dt><dd>set up"),
        "{body}"
    );
    assert!(body.contains("10 unused"), "{body}");
    assert!(body.contains("<dt>Password</dt><dd>set"), "{body}");
    let roles = between(body, "<caption>The roles you hold</caption>", "</table>")[0];
    assert!(
        roles.contains("Auditor") && roles.contains("through the group Operations"),
        "{roles}"
    );
    assert!(
        roles.contains("Security reader")
            && roles.contains("not now")
            && roles.contains("given to you"),
        "{roles}"
    );
    // Someone with nothing is told so, and sees nothing of zoe's.
    user_with_password(&server, "yann", false).await;
    let mut other = Browser::new(&server);
    assert_eq!(
        other.sign_in("operator", "yann", PASSWORD).await.status,
        303
    );
    let theirs = other.get("/t/operator/account").await;
    assert!(theirs.body.contains("You hold no roles"), "{}", theirs.body);
    assert!(!theirs.body.contains("Operations"), "{}", theirs.body);
}

#[tokio::test]
async fn applications_are_made_for_what_they_are_with_secrets_shown_once_and_rotated() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (sam, mut browser) = administrator(&server, "sam", "security_administrator").await;
    let admin = server.admin();
    let csrf = browser
        .get("/t/operator/console/applications/new")
        .await
        .csrf();
    let new = |name: &str, kind: &str, redirect: &str, resource: &str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("kind", kind.to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("resource", resource.to_owned()),
        ]
    };

    // A web application needs the address to send people back to.
    let refused = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new("Portal", "web", "", "")),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("redirect URI") && refused.body.contains("value=\"Portal\""));
    // A redirect URI the API refuses is said on the form before anything is made.
    let ftp = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new("Portal", "web", "ftp://portal.example.com/cb", "")),
        )
        .await;
    assert_eq!(ftp.status, 422, "{}", ftp.body);
    let none = admin
        .get("/v1/service-principals?limit=100")
        .await
        .expect(200);
    assert!(
        !none.to_string().contains("\"Portal\""),
        "nothing half-made: {none}"
    );
    let made = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new(
                "Portal",
                "web",
                "https://portal.example.com/callback",
                "",
            )),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = made.location().split('?').next().unwrap().to_owned();
    let id = page.rsplit('/').next().unwrap().to_owned();
    let client = admin
        .get(&format!("/v1/service-principals/{id}/oauth-client"))
        .await
        .expect(200);
    assert_eq!(
        client["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        client["redirect_uris"],
        json!(["https://portal.example.com/callback"])
    );
    assert_eq!(client["client_type"], "confidential");
    let trail = admin
        .get("/v1/audit?action=service_principal.create")
        .await
        .expect(200);
    assert_eq!(trail["items"][0]["actor"]["id"], sam.as_str(), "{trail}");

    // A secret, shown once and never cached; it authenticates as the application.
    let issued = browser
        .post(
            &format!("{page}/secrets"),
            &[("csrf", csrf.as_str()), ("name", "first"), ("days", "90")],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.headers["cache-control"], "no-store");
    let secret = between(
        &issued.body,
        "id=\"secret\" type=\"text\" readonly value=\"",
        "\"",
    )[0]
    .to_owned();
    assert!(secret.starts_with("pcs_"), "{secret}");
    let me = server.client(&secret).get("/v1/me").await.expect(200);
    assert_eq!(me["principal"]["id"], id.as_str(), "{me}");
    let odd = browser
        .post(
            &format!("{page}/secrets"),
            &[("csrf", csrf.as_str()), ("days", "5000")],
        )
        .await;
    assert_eq!(odd.status, 400, "{}", odd.body);

    // Rotation: the next secret, then the first revoked; only the next one works.
    let next = browser
        .post(
            &format!("{page}/secrets"),
            &[("csrf", csrf.as_str()), ("name", "second"), ("days", "30")],
        )
        .await;
    let second = between(
        &next.body,
        "id=\"secret\" type=\"text\" readonly value=\"",
        "\"",
    )[0]
    .to_owned();
    let keys = admin
        .get(&format!("/v1/service-principals/{id}/api-keys"))
        .await
        .expect(200);
    let first_key = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "first")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = browser
        .post(
            &format!("{page}/secrets/{first_key}/revoke"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    server.client(&secret).get("/v1/me").await.expect(401);
    server.client(&second).get("/v1/me").await.expect(200);

    // Client settings from the form; a redirect URI the API refuses is said on the page and
    // changes nothing; the admin API as a resource needs role.assign, which sam lacks.
    let settings = |redirects: &str, resources: &str| {
        [
            ("csrf", csrf.clone()),
            ("client_type", "confidential".to_owned()),
            ("grant_authorization_code", "on".to_owned()),
            ("grant_refresh_token", "on".to_owned()),
            ("redirect_uris", redirects.to_owned()),
            ("scopes", "openid email".to_owned()),
            ("resources", resources.to_owned()),
            ("post_logout_redirect_uris", String::new()),
            ("backchannel_logout_uri", String::new()),
            ("access_token_seconds", "600".to_owned()),
            ("refresh_token_seconds", "86400".to_owned()),
            ("refresh_chain_seconds", "604800".to_owned()),
            ("require_consent", "on".to_owned()),
            ("signing_alg", "RS256".to_owned()),
        ]
    };
    let saved = browser
        .post(
            &format!("{page}/client"),
            &pairs(&settings(
                "https://portal.example.com/callback\r\nhttps://portal.example.com/other\r\n",
                "",
            )),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let client = admin
        .get(&format!("/v1/service-principals/{id}/oauth-client"))
        .await
        .expect(200);
    assert_eq!(
        client["redirect_uris"].as_array().unwrap().len(),
        2,
        "{client}"
    );
    assert_eq!(
        (
            client["access_token_seconds"].as_i64(),
            client["require_consent"].as_bool()
        ),
        (Some(600), Some(true))
    );
    assert_eq!(client["signing_alg"], "RS256");
    let bad = browser
        .post(
            &format!("{page}/client"),
            &pairs(&settings("ftp://portal.example.com/x", "")),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("redirect"), "{}", bad.body);
    let admin_api = format!("http://localhost:{}/v1", server.addr.port());
    let escalation = browser
        .post(
            &format!("{page}/client"),
            &pairs(&settings("https://portal.example.com/callback", &admin_api)),
        )
        .await;
    assert_eq!(escalation.status, 403, "{}", escalation.body);
    let unchanged = admin
        .get(&format!("/v1/service-principals/{id}/oauth-client"))
        .await
        .expect(200);
    assert_eq!(unchanged, client);

    // A workload gets client credentials for the API it names; without one it is refused and
    // nothing is made.
    let nameless = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new("Nightly export", "workload", "", "")),
        )
        .await;
    assert_eq!(nameless.status, 422, "{}", nameless.body);
    assert!(nameless.body.contains("resource"), "{}", nameless.body);
    let workload = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new(
                "Nightly export",
                "workload",
                "",
                "https://api.example.com",
            )),
        )
        .await;
    assert_eq!(workload.status, 303, "{}", workload.body);
    let workload_page = workload.location().split('?').next().unwrap().to_owned();
    let workload_id = workload_page.rsplit('/').next().unwrap();
    let client = admin
        .get(&format!(
            "/v1/service-principals/{workload_id}/oauth-client"
        ))
        .await
        .expect(200);
    assert_eq!(client["grant_types"], json!(["client_credentials"]));
    assert_eq!(client["resources"], json!(["https://api.example.com"]));
    let list = browser.get("/t/operator/console/applications").await;
    assert!(list.body.contains("Nightly export") && list.body.contains("client credentials"));
    let named = admin
        .get("/v1/service-principals?limit=100")
        .await
        .expect(200);
    let export_jobs = named["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "Nightly export")
        .count();
    assert_eq!(export_jobs, 1, "{named}");

    // An automation with keys only is no OAuth client until it is made one, for a resource.
    let keys_only = browser
        .post(
            "/t/operator/console/applications/new",
            &pairs(&new("Directory sync", "keys", "", "")),
        )
        .await;
    assert_eq!(keys_only.status, 303, "{}", keys_only.body);
    let keys_page = keys_only.location().split('?').next().unwrap().to_owned();
    let keys_id = keys_page.rsplit('/').next().unwrap();
    let shown = browser.get(&keys_page).await;
    assert!(shown.body.contains("not an OAuth client"), "{}", shown.body);
    admin
        .get(&format!("/v1/service-principals/{keys_id}/oauth-client"))
        .await
        .expect(404);
    let made_client = browser
        .post(
            &format!("{keys_page}/client"),
            &[
                ("csrf", csrf.as_str()),
                ("client_type", "confidential"),
                ("grant_client_credentials", "on"),
                ("resources", "https://directory.example.com"),
                ("access_token_seconds", "300"),
                ("refresh_token_seconds", "1209600"),
                ("refresh_chain_seconds", "7776000"),
            ],
        )
        .await;
    assert_eq!(made_client.status, 303, "{}", made_client.body);
    let client = admin
        .get(&format!("/v1/service-principals/{keys_id}/oauth-client"))
        .await
        .expect(200);
    assert_eq!(
        client["resources"],
        json!(["https://directory.example.com"])
    );

    // Deleting asks for the version shown; the application is gone from the list.
    let keys_version = admin
        .get(&format!("/v1/service-principals/{keys_id}"))
        .await
        .expect(200)["version"]
        .to_string();
    let deleted = browser
        .post(
            &format!("{keys_page}/delete"),
            &[("csrf", csrf.as_str()), ("version", keys_version.as_str())],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    admin
        .get(&format!("/v1/service-principals/{keys_id}"))
        .await
        .expect(404);
    let version = admin
        .get(&format!("/v1/service-principals/{id}"))
        .await
        .expect(200)["version"]
        .to_string();
    let disabled = browser
        .post(
            &format!("{page}/state"),
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("state", "disabled"),
            ],
        )
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    server.client(&second).get("/v1/me").await.expect(401);
    let list = browser.get("/t/operator/console/applications").await;
    let portal_row = between(&list.body, ">Portal</a>", "</tr>")[0];
    assert!(portal_row.contains("badge disabled"), "{portal_row}");
}

#[tokio::test]
async fn tenant_settings_name_brand_sign_in_and_keys_from_the_console() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "tess", "tenant_administrator").await;
    let admin = server.admin();
    let page = browser.get("/t/operator/console/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let version = admin.get("/v1/me").await.expect(200)["tenant"]["version"].to_string();

    // The name people see, on the console and the sign-in page.
    let named = browser
        .post(
            "/t/operator/console/settings/organisation",
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("display_name", "Acme Operations"),
            ],
        )
        .await;
    assert_eq!(named.status, 303, "{}", named.body);
    let shown = browser.get("/t/operator/console/settings").await;
    assert!(
        shown.body.contains("Settings · Acme Operations console"),
        "{}",
        shown.body
    );
    let stale = browser
        .post(
            "/t/operator/console/settings/organisation",
            &[
                ("csrf", csrf.as_str()),
                ("version", version.as_str()),
                ("display_name", "Someone else's edit"),
            ],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);

    // Branding by upload: a light colour and an SVG are refused on the page, nothing saved.
    let pale = browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[("csrf", csrf.as_str()), ("colour", "#fff59d")],
            &[],
        )
        .await;
    assert_eq!(pale.status, 422, "{}", pale.body);
    assert!(pale.body.contains("darker shade"), "{}", pale.body);
    let svg = browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[("csrf", csrf.as_str()), ("colour", "#7b1fa2")],
            &[(
                "logo",
                "logo.svg",
                "image/svg+xml",
                b"<svg onload='alert(1)'/>",
            )],
        )
        .await;
    assert_eq!(svg.status, 422, "{}", svg.body);
    assert_eq!(admin.get("/v1/branding").await.expect(200), json!({}));
    let forged = browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[("csrf", "forged"), ("colour", "#7b1fa2")],
            &[],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let branded = browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[("csrf", csrf.as_str()), ("colour", "#7b1fa2")],
            &[("logo", "logo.png", "image/png", crate::branding::TINY_PNG)],
        )
        .await;
    assert_eq!(branded.status, 303, "{}", branded.body);
    let branding = admin.get("/v1/branding").await.expect(200);
    assert_eq!(branding["colour"], "#7b1fa2");
    assert_eq!(branding["logo"]["media_type"], "image/png");
    let sign_in = Browser::new(&server).get("/t/operator/sign-in").await;
    assert!(
        sign_in.body.contains("Sign in to Acme Operations"),
        "{}",
        sign_in.body
    );
    // Saving the colour again leaves the logo; ticking "remove" takes it away.
    browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[("csrf", csrf.as_str()), ("colour", "#7b1fa2")],
            &[("logo", "", "application/octet-stream", b"")],
        )
        .await;
    assert!(
        admin
            .get("/v1/branding")
            .await
            .expect(200)
            .get("logo")
            .is_some()
    );
    browser
        .post_multipart(
            "/t/operator/console/settings/branding",
            &[
                ("csrf", csrf.as_str()),
                ("colour", ""),
                ("remove_logo", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(admin.get("/v1/branding").await.expect(200), json!({}));

    // A scheduled rotation adds a key that is published before it signs.
    let before = admin.get("/v1/signing-keys").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    let rotated = browser
        .post(
            "/t/operator/console/settings/signing-keys/rotate",
            &[("csrf", csrf.as_str()), ("alg", "ES256")],
        )
        .await;
    assert_eq!(rotated.status, 303, "{}", rotated.body);
    let keys = admin.get("/v1/signing-keys").await.expect(200);
    assert_eq!(
        keys["items"].as_array().unwrap().len(),
        before + 1,
        "{keys}"
    );
    assert_eq!(keys["items"][0]["status"], "scheduled", "{keys}");

    // Someone who may only read sees the settings and is refused every change.
    let (_, mut reader) = administrator(&server, "rory", "security_reader").await;
    let seen = reader.get("/t/operator/console/settings").await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let refused = reader
        .post(
            "/t/operator/console/settings/signing-keys/rotate",
            &[("csrf", seen.csrf().as_str()), ("alg", "ES256")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let unchanged = admin.get("/v1/signing-keys").await.expect(200);
    assert_eq!(unchanged["items"].as_array().unwrap().len(), before + 1);
    // Sign-in settings: what the API refuses is said on the form and changes nothing.
    let sign_in_form = |min_length: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("mfa_required", "everyone".to_owned()),
            ("allow_totp", "on".to_owned()),
            ("allow_passkeys", "on".to_owned()),
            ("min_length", min_length.to_owned()),
            ("min_strength", "3".to_owned()),
            ("free_failures", "4".to_owned()),
            ("max_wait_seconds", "600".to_owned()),
        ]
    };
    let short = browser
        .post(
            "/t/operator/console/settings/sign-in",
            &pairs(&sign_in_form("6")),
        )
        .await;
    assert_eq!(short.status, 422, "{}", short.body);
    assert!(short.body.contains("between 8 and 128"), "{}", short.body);
    assert_eq!(
        admin.get("/v1/sign-in-settings").await.expect(200)["mfa_required"],
        "nobody"
    );
    let saved = browser
        .post(
            "/t/operator/console/settings/sign-in",
            &pairs(&sign_in_form("14")),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let settings = admin.get("/v1/sign-in-settings").await.expect(200);
    assert_eq!(
        (
            settings["mfa_required"].as_str(),
            settings["password_policy"]["min_length"].as_i64(),
            settings["lockout"]["free_failures"].as_i64()
        ),
        (Some("everyone"), Some(14), Some(4)),
        "{settings}"
    );

    // The rules for administrators: a nonsense value is said on the form and changes nothing;
    // saved, a password-only session is asked to step up for its next change.
    let administrators = |mfa: &'static str, minutes: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("mfa", mfa.to_owned()),
            ("recent_minutes", minutes.to_owned()),
            ("keys_for_privileged", "on".to_owned()),
        ]
    };
    let zero = browser
        .post(
            "/t/operator/console/settings/administrators",
            &pairs(&administrators("none", "0")),
        )
        .await;
    assert_eq!(zero.status, 422, "{}", zero.body);
    assert_eq!(
        admin.get("/v1/administrator-policy").await.expect(200)["mfa"],
        "none"
    );
    let saved = browser
        .post(
            "/t/operator/console/settings/administrators",
            &pairs(&administrators("writes", "30")),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let policy = admin.get("/v1/administrator-policy").await.expect(200);
    assert_eq!(
        (policy["mfa"].as_str(), policy["recent_minutes"].as_i64()),
        (Some("writes"), Some(30)),
        "{policy}"
    );
    let held = browser
        .post(
            "/t/operator/console/settings/signing-keys/rotate",
            &[("csrf", csrf.as_str()), ("alg", "ES256")],
        )
        .await;
    assert_eq!(held.status, 303, "{}", held.body);
    assert!(held.location().contains("/step-up"), "{}", held.location());
}

#[tokio::test]
async fn users_are_imported_from_a_csv_file_with_progress_and_a_report_by_line() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "ines", "user_administrator").await;
    let form = browser.get("/t/operator/console/users/import").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();

    // A file that is not a list of users is refused on the form.
    let wrong = browser
        .post_multipart(
            "/t/operator/console/users/import",
            &[("csrf", csrf.as_str())],
            &[("file", "people.csv", "text/csv", b"name\nada\n")],
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(
        wrong.body.contains("this import does not know"),
        "{}",
        wrong.body
    );

    let file =
        b"user_name,email\nada,ada@example.com\ngrace,not-an-address\nalan,alan@example.com\n";
    let started = browser
        .post_multipart(
            "/t/operator/console/users/import",
            &[("csrf", csrf.as_str())],
            &[("file", "people.csv", "text/csv", file)],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let report_page = started.location().to_owned();
    let id = report_page.rsplit('/').next().unwrap();
    crate::imports::finished(&server.admin(), id).await;
    let report = browser.get(&report_page).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(
        report.body.contains("Import of people.csv"),
        "{}",
        report.body
    );
    assert!(
        report.body.contains("<dt>Created</dt><dd>2</dd>")
            && report.body.contains("<dt>Failed</dt><dd>1</dd>"),
        "{}",
        report.body
    );
    let failed = between(&report.body, "<tbody>", "</tbody>")[0];
    assert!(failed.contains("<td>3</td><td>grace</td>"), "{failed}");
    // Finished, the page stops asking for itself.
    assert!(
        !report.body.contains("hx-trigger=\"every 1s\""),
        "{}",
        report.body
    );
    let ada = server.admin().get("/v1/users?prefix=ada").await.expect(200);
    assert_eq!(ada["items"][0]["email"], "ada@example.com");

    // A reader may not import.
    let (_, mut reader) = administrator(&server, "rex", "security_reader").await;
    let seen = reader.get("/t/operator/console/users/import").await;
    let refused = reader
        .post_multipart(
            "/t/operator/console/users/import",
            &[("csrf", seen.csrf().as_str())],
            &[("file", "people.csv", "text/csv", b"user_name\nmallory\n")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn users_at_risk_are_judged_in_the_console_and_a_reader_only_sees_them() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let admin = server.admin();
    let (_, mut browser) = administrator(&server, "sec", "user_administrator").await;
    let (_, mut reader) = administrator(&server, "rhea", "security_reader").await;
    // Lena's password turns up in a breach; her next sign-in puts her at risk.
    let lena = user_with_password(&server, "lena", false).await;
    admin
        .post(
            "/v1/leaked-passwords",
            json!({"hashes": [crate::risk::PASSWORD_SHA1]}),
        )
        .await
        .expect(200);
    Browser::new(&server)
        .sign_in("operator", "lena", PASSWORD)
        .await;
    let page = browser.get("/t/operator/console/risk").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let at_risk = between(
        &page.body,
        "<caption class=\"visually-hidden\">Users at risk",
        "</table>",
    )[0];
    assert!(at_risk.contains(">lena</a>"), "{at_risk}");
    let seen = between(
        &page.body,
        "Risky sign-ins and other detections",
        "</table>",
    )[0];
    assert!(
        seen.contains("leaked credentials") && seen.contains("lena"),
        "{seen}"
    );

    // A reader sees the same and is refused a verdict, which changes nothing.
    let shown = reader.get("/t/operator/console/risk").await;
    assert!(shown.body.contains(">lena</a>"), "{}", shown.body);
    let refused = reader
        .post(
            &format!("/t/operator/console/risk/users/{lena}"),
            &[
                ("csrf", shown.csrf().as_str()),
                ("verdict", "dismiss"),
                ("note", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let risky = admin.get("/v1/risk/users").await.expect(200);
    assert_eq!(risky["items"].as_array().unwrap().len(), 1, "{risky}");

    // Dismissed with a reason: no longer at risk, and the reason is in the trail.
    let dismissed = browser
        .post(
            &format!("/t/operator/console/risk/users/{lena}"),
            &[
                ("csrf", page.csrf().as_str()),
                ("verdict", "dismiss"),
                ("note", "Password changed by phone with the help desk"),
            ],
        )
        .await;
    assert_eq!(dismissed.status, 303, "{}", dismissed.body);
    let after = browser.get(dismissed.location()).await;
    assert!(after.body.contains("no longer at risk"), "{}", after.body);
    assert!(
        after.body.contains("Nobody is at low risk"),
        "{}",
        after.body
    );
    let trail = admin.get("/v1/audit?limit=20").await.expect(200);
    assert!(
        trail
            .to_string()
            .contains("Password changed by phone with the help desk"),
        "{trail}"
    );
    let odd = browser
        .post(
            &format!("/t/operator/console/risk/users/{lena}"),
            &[("csrf", page.csrf().as_str()), ("verdict", "forgive")],
        )
        .await;
    assert_eq!(odd.status, 400, "{}", odd.body);
}

#[tokio::test]
async fn a_report_only_policy_shows_what_it_would_have_done_day_by_day() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let (_, mut browser) = administrator(&server, "cora", "security_administrator").await;
    let admin = server.admin();
    let policy = admin
        .post(
            "/v1/access-policies",
            json!({
                "name": "MFA for everyone (trial)",
                "state": "report_only",
                "include": {"all_users": true},
                "applications": {"include": ["all"]},
                "conditions": {},
                "grant": {"kind": "require", "controls": ["mfa"]}
            }),
        )
        .await
        .expect(201);
    let id = policy["id"].as_str().unwrap();
    let page = browser
        .get(&format!("/t/operator/console/conditional-access/{id}"))
        .await;
    assert!(
        page.body.contains("It applied to no sign-in"),
        "{}",
        page.body
    );

    // Two people sign in with a password: the policy would have asked each for more, and
    // enforced nothing.
    for name in ["dina", "emil"] {
        user_with_password(&server, name, false).await;
        let signed_in = Browser::new(&server)
            .sign_in("operator", name, PASSWORD)
            .await;
        assert_eq!(signed_in.status, 303, "report-only enforces nothing");
    }
    let page = browser
        .get(&format!("/t/operator/console/conditional-access/{id}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let table = between(&page.body, "The policy's results by day", "</table>")[0];
    // Day, applied, met, not met, asked for more; summed over the days shown.
    let mut sums = [0u32; 4];
    for row in between(table, "<tr><td>", "</tr>") {
        let cells: Vec<u32> = row
            .split("<td>")
            .skip(1)
            .map(|cell| cell.trim_end_matches("</td>").parse().unwrap())
            .collect();
        for (sum, cell) in sums.iter_mut().zip(cells) {
            *sum += cell;
        }
    }
    assert_eq!(sums[0], 2, "{table}");
    assert_eq!(sums[1], 0, "nothing met MFA: {table}");
}

#[tokio::test]
async fn custom_roles_are_written_by_ticking_actions_grouped_by_type_and_reach() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let admin = server.admin();
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "document", "actions": [
                {"name": "read", "plane": "data"},
                {"name": "delete", "plane": "data"}
            ]}),
        )
        .await
        .expect(201);
    let (_, mut browser) = administrator(&server, "rita", "privileged_role_administrator").await;
    let form = browser.get("/t/operator/console/roles/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body.contains("<legend>document</legend>"),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("value=\"portcullis:user.read\""),
        "{}",
        form.body
    );
    let csrf = form.csrf();

    // An action nobody knows is refused on the form, with what was ticked kept.
    let unknown = browser
        .post(
            "/t/operator/console/roles/new",
            &[
                ("csrf", csrf.as_str()),
                ("name", "Editors"),
                ("action", "document.read"),
                ("action", "document.fly"),
                ("depth:document", "business_unit"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(
        unknown.body.contains("value=\"Editors\""),
        "{}",
        unknown.body
    );
    let made = browser
        .post(
            "/t/operator/console/roles/new",
            &[
                ("csrf", csrf.as_str()),
                ("name", "Editors"),
                ("description", "Read documents of their unit, and see users"),
                ("action", "document.read"),
                ("action", "portcullis:user.read"),
                ("depth:document", "business_unit"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let roles = admin.get("/v1/custom-roles").await.expect(200);
    let role = &roles["items"][0];
    assert_eq!(role["name"], "Editors", "{roles}");
    let permissions = role["permissions"].to_string();
    assert!(
        permissions.contains(r#"{"action":"document.read","depth":"business_unit"}"#),
        "{permissions}"
    );
    assert!(
        permissions.contains("portcullis:user.read"),
        "{permissions}"
    );

    // Edited against the version shown; a second edit with the old version is refused.
    let id = role["id"].as_str().unwrap();
    let page = browser
        .get(&format!("/t/operator/console/roles/{id}"))
        .await;
    assert!(
        page.body
            .contains("id=\"a-document.read\" name=\"action\" value=\"document.read\" checked"),
        "{}",
        page.body
    );
    let version = role["version"].to_string();
    let edit = |description: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("version", version.clone()),
            ("name", "Editors".to_owned()),
            ("description", description.to_owned()),
            ("action", "document.read".to_owned()),
            ("action", "document.delete".to_owned()),
            ("depth:document", "own".to_owned()),
        ]
    };
    let saved = browser
        .post(
            &format!("/t/operator/console/roles/{id}/edit"),
            &pairs(&edit("Their own documents")),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stale = browser
        .post(
            &format!("/t/operator/console/roles/{id}/edit"),
            &pairs(&edit("Someone else's edit")),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    let role = admin
        .get(&format!("/v1/custom-roles/{id}"))
        .await
        .expect(200);
    assert_eq!(role["description"], "Their own documents");
    assert_eq!(role["permissions"].as_array().unwrap().len(), 2, "{role}");

    // A reader may look, not write.
    let (_, mut reader) = administrator(&server, "remy", "security_reader").await;
    let seen = reader.get(&format!("/t/operator/console/roles/{id}")).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let refused = reader
        .post(
            &format!("/t/operator/console/roles/{id}/delete"),
            &[("csrf", seen.csrf().as_str())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let deleted = browser
        .post(
            &format!("/t/operator/console/roles/{id}/delete"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    admin
        .get(&format!("/v1/custom-roles/{id}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn deny_assignments_are_made_by_name_refuse_at_once_and_are_removed() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let admin = server.admin();
    let (_, mut browser) = administrator(&server, "tara", "tenant_administrator").await;
    let (ulla, mut ulla_browser) = administrator(&server, "ulla", "user_administrator").await;
    let target = admin.create_user("victor").await;
    let target_id = target["id"].as_str().unwrap();
    let form = browser.get("/t/operator/console/access/deny").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let deny = |principals: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", "No deleting people".to_owned()),
            ("principals", principals.to_owned()),
            ("excluded", String::new()),
            ("actions", "user.delete".to_owned()),
            ("scope", "tenant".to_owned()),
        ]
    };

    // A name that is nobody is said on the form, and nothing is made.
    let nobody = browser
        .post(
            "/t/operator/console/access/deny",
            &pairs(&deny("user nobody-here")),
        )
        .await;
    assert_eq!(nobody.status, 422, "{}", nobody.body);
    assert!(nobody.body.contains("nobody-here"), "{}", nobody.body);
    let listed = admin.get("/v1/deny-assignments").await.expect(200);
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");

    let made = browser
        .post(
            "/t/operator/console/access/deny",
            &pairs(&deny("user ulla")),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let listed = admin.get("/v1/deny-assignments").await.expect(200);
    assert_eq!(
        listed["items"][0]["principals"][0]["id"],
        ulla.as_str(),
        "{listed}"
    );
    let page = browser.get("/t/operator/console/access/deny").await;
    assert!(page.body.contains("user ulla"), "{}", page.body);

    // Ulla holds user_administrator, and is refused deleting anyone all the same.
    let user_page = ulla_browser
        .get(&format!("/t/operator/console/users/{target_id}"))
        .await;
    let version = target["version"].to_string();
    let refused = ulla_browser
        .post(
            &format!("/t/operator/console/users/{target_id}/delete"),
            &[
                ("csrf", user_page.csrf().as_str()),
                ("version", version.as_str()),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Removed, it refuses no more.
    let id = listed["items"][0]["id"].as_str().unwrap();
    let removed = browser
        .post(
            &format!("/t/operator/console/access/deny/{id}/remove"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    let deleted = ulla_browser
        .post(
            &format!("/t/operator/console/users/{target_id}/delete"),
            &[
                ("csrf", user_page.csrf().as_str()),
                ("version", version.as_str()),
            ],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
}

#[tokio::test]
async fn resource_types_are_registered_with_their_actions_and_removed() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let admin = server.admin();
    let (_, mut browser) = administrator(&server, "tom", "tenant_administrator").await;
    let form = browser.get("/t/operator/console/resource-types").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let register = |name: &'static str, actions: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("description", "Invoices from billing".to_owned()),
            ("actions", actions.to_owned()),
        ]
    };
    // A plane nobody knows is said on the form, with what was typed kept.
    let odd = browser
        .post(
            "/t/operator/console/resource-types",
            &pairs(&register("invoice", "read\napprove sideways\n")),
        )
        .await;
    assert_eq!(odd.status, 422, "{}", odd.body);
    assert!(odd.body.contains("sideways"), "{}", odd.body);
    assert!(odd.body.contains("read\napprove sideways"), "{}", odd.body);
    admin.get("/v1/resource-types/invoice").await.expect(404);
    let made = browser
        .post(
            "/t/operator/console/resource-types",
            &pairs(&register(
                "invoice",
                "read\napprove data\nconfigure control\nlist public\n",
            )),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let stored = admin.get("/v1/resource-types/invoice").await.expect(200);
    assert_eq!(
        stored["actions"],
        json!([
            {"name": "read", "plane": "data", "public": false},
            {"name": "approve", "plane": "data", "public": false},
            {"name": "configure", "plane": "control", "public": false},
            {"name": "list", "plane": "data", "public": true}
        ]),
        "{stored}"
    );
    let page = browser.get("/t/operator/console/resource-types").await;
    assert!(page.body.contains("configure · control"), "{}", page.body);

    // A reader may look, not remove.
    let (_, mut reader) = administrator(&server, "rosa", "security_reader").await;
    let seen = reader.get("/t/operator/console/resource-types").await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let refused = reader
        .post(
            "/t/operator/console/resource-types/invoice/remove",
            &[("csrf", seen.csrf().as_str())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let removed = browser
        .post(
            "/t/operator/console/resource-types/invoice/remove",
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    admin.get("/v1/resource-types/invoice").await.expect(404);
}

#[tokio::test]
async fn records_are_found_by_their_id_registered_moved_shared_and_deleted() {
    let server = TestServer::start().await;
    no_mfa_for_administrators(&server).await;
    let admin = server.admin();
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "invoice", "actions": [
                {"name": "read", "plane": "data"},
                {"name": "approve", "plane": "data"}
            ]}),
        )
        .await
        .expect(201);
    admin.create_user("ines").await;
    let billing = admin
        .post("/v1/groups", json!({"name": "billing"}))
        .await
        .expect(201);
    let units = admin.get("/v1/business-units").await.expect(200);
    let root = units["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, mut browser) = administrator(&server, "rita", "tenant_administrator").await;

    let empty = browser.get("/t/operator/console/records").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No invoice records"), "{}", empty.body);
    let csrf = empty.csrf();
    // An id with a slash, a space and a hash: it must survive the links and the forms.
    let id = "inv/2026 #7";
    let register = |owner: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("external_id", id.to_owned()),
            ("owner_kind", "user".to_owned()),
            ("owner", owner.to_owned()),
            ("business_unit", root.clone()),
            ("environment", String::new()),
        ]
    };

    // A owner who is nobody is said on the form, with what was typed kept; nothing is made.
    let nobody = browser
        .post(
            "/t/operator/console/records/invoice",
            &pairs(&register("nobody-here")),
        )
        .await;
    assert_eq!(nobody.status, 422, "{}", nobody.body);
    assert!(nobody.body.contains("nobody-here"), "{}", nobody.body);
    assert!(nobody.body.contains("inv/2026 #7"), "{}", nobody.body);
    let none = admin.get("/v1/records/invoice").await.expect(200);
    assert_eq!(none["items"], json!([]), "{none}");

    let made = browser
        .post(
            "/t/operator/console/records/invoice",
            &pairs(&register("ines")),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page_link = made.location().to_owned();
    assert_eq!(
        page_link,
        "/t/operator/console/records/invoice/inv%2F2026%20%237?done=saved"
    );
    let page = browser.get(&page_link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ines"), "{}", page.body);
    assert!(
        page.body.contains("action=invoice.approve"),
        "the explorer asks who may approve it: {}",
        page.body
    );
    let base = "/t/operator/console/records/invoice/inv%2F2026%20%237";

    // Found by the start of its id, exactly: case matters, as it does for the application.
    let found = browser
        .get("/t/operator/console/records/invoice?q=inv%2F")
        .await;
    assert!(found.body.contains(base), "{}", found.body);
    let missed = browser
        .get("/t/operator/console/records/invoice?q=INV")
        .await;
    assert!(!missed.body.contains(base), "{}", missed.body);
    assert!(
        missed.body.contains("No invoice records start with"),
        "{}",
        missed.body
    );

    // Shared with a group for one action; an action the type lacks is refused, nothing kept.
    let odd = browser
        .post(
            &format!("{base}/shares"),
            &[
                ("csrf", csrf.as_str()),
                ("kind", "group"),
                ("name", "billing"),
                ("action", "fly"),
            ],
        )
        .await;
    assert_eq!(odd.status, 422, "{}", odd.body);
    let api_shares = "/v1/records/invoice/inv%2F2026%20%237/shares";
    assert_eq!(admin.get(api_shares).await.expect(200)["items"], json!([]));
    let shared = browser
        .post(
            &format!("{base}/shares"),
            &[
                ("csrf", csrf.as_str()),
                ("kind", "group"),
                ("name", "billing"),
                ("action", "read"),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(shared.status, 303, "{}", shared.body);
    let shares = admin.get(api_shares).await.expect(200);
    assert_eq!(
        shares["items"][0]["principal"]["id"], billing["id"],
        "{shares}"
    );
    assert_eq!(shares["items"][0]["actions"], json!(["read", "approve"]));

    // Moved to the group from its own page.
    let moved = browser
        .post(
            "/t/operator/console/records/invoice",
            &[
                ("csrf", csrf.as_str()),
                ("external_id", id),
                ("owner_kind", "group"),
                ("owner", "billing"),
                ("business_unit", root.as_str()),
                ("environment", ""),
                ("from_record", "true"),
            ],
        )
        .await;
    assert_eq!(moved.status, 303, "{}", moved.body);
    let record = admin
        .get("/v1/records/invoice/inv%2F2026%20%237")
        .await
        .expect(200);
    assert_eq!(record["owner"]["kind"], "group", "{record}");

    // A reader sees it and may not change it.
    let (_, mut reader) = administrator(&server, "rosa", "security_reader").await;
    let seen = reader.get(base).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let refused = reader
        .post(&format!("{base}/delete"), &[("csrf", seen.csrf().as_str())])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The share taken back, then the record deleted.
    let share_id = shares["items"][0]["id"].as_str().unwrap();
    let unshared = browser
        .post(
            &format!("{base}/shares/{share_id}/remove"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(unshared.status, 303, "{}", unshared.body);
    assert_eq!(admin.get(api_shares).await.expect(200)["items"], json!([]));
    let deleted = browser
        .post(&format!("{base}/delete"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    admin
        .get("/v1/records/invoice/inv%2F2026%20%237")
        .await
        .expect(404);
    assert_eq!(browser.get(base).await.status, 404);
}
