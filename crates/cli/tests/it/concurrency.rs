//! Rules that must hold under any interleaving: for every write with a precondition (a cycle, a
//! cap, a version, a uniqueness) and every throttle, many conflicting requests are fired at
//! once and the invariant is checked afterwards, on SQLite and on PostgreSQL. Counts are
//! bounded and nothing here depends on how fast the machine is.

use std::future::Future;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Client, TestServer};
use crate::signin::{Browser, PASSWORD, user_with_password};

/// Runs `count` requests made by `make`, released together from a barrier so they overlap,
/// and returns their results in order.
pub(crate) async fn all_at_once<T, F, Fut>(count: usize, make: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let barrier = barrier.clone();
        let request = make(i);
        tasks.spawn(async move {
            barrier.wait().await;
            (i, request.await)
        });
    }
    let mut results: Vec<(usize, T)> = tasks.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn count(statuses: &[StatusCode], status: u16) -> usize {
    statuses.iter().filter(|s| s.as_u16() == status).count()
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn group(admin: &Client, name: &str) -> String {
    id(&admin
        .post("/v1/groups", json!({"name": name}))
        .await
        .expect(201))
}

fn nest(admin: &Client, parent: &str, child: &str) -> impl Future<Output = StatusCode> + use<> {
    let (admin, path) = (admin.clone(), format!("/v1/groups/{parent}/members"));
    let body = json!({"kind": "group", "id": child});
    async move { admin.post(&path, body).await.status }
}

/// The tenant's admin API and its AuthZEN endpoint still answer.
async fn tenant_answers(server: &TestServer, admin: &Client, tenant: &str) {
    admin.get("/v1/groups").await.expect(200);
    let (_, pep) = admin
        .principal_with_role("probe", "access_evaluator", "tenant")
        .await;
    server
        .client(&pep)
        .post(
            &format!("/t/{tenant}/access/v1/evaluation"),
            json!({"subject": {"type": "service_principal", "id": "00000000-0000-7000-8000-000000000000"},
                   "action": {"name": "read"}, "resource": {"type": "user", "id": "x"}}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn opposite_nestings_at_once_never_make_a_cycle() {
    let server = TestServer::start().await;
    let (_, key) = server.admin().create_tenant("acme").await;
    let admin = server.client(&key);
    for round in 0..8 {
        let a = group(&admin, &format!("a{round}")).await;
        let b = group(&admin, &format!("b{round}")).await;
        let pair = [(a.clone(), b.clone()), (b.clone(), a.clone())];
        let statuses = all_at_once(2, |i| nest(&admin, &pair[i].0, &pair[i].1)).await;
        assert_eq!(
            (count(&statuses, 201), count(&statuses, 409)),
            (1, 1),
            "round {round}: exactly one nesting wins: {statuses:?}"
        );
    }
    // Three groups nested round a ring at once: at most two of the three edges can stand.
    let ring: Vec<String> = [
        group(&admin, "r0").await,
        group(&admin, "r1").await,
        group(&admin, "r2").await,
    ]
    .into();
    let statuses = all_at_once(3, |i| nest(&admin, &ring[i], &ring[(i + 1) % 3])).await;
    assert_eq!(count(&statuses, 201), 2, "{statuses:?}");
    tenant_answers(&server, &admin, "acme").await;
}

#[tokio::test]
async fn a_cycle_already_in_the_database_takes_out_only_the_principals_it_touches() {
    let server = TestServer::start().await;
    let (tenant_id, key) = server.admin().create_tenant("acme").await;
    let admin = server.client(&key);
    let outer = group(&admin, "outer").await;
    let inner = group(&admin, "inner").await;
    let member = id(&admin.create_user("in-the-loop").await);
    let bystander = id(&admin.create_user("bystander").await);
    for (kind, principal) in [("group", &outer), ("user", &bystander)] {
        admin
            .post(
                "/v1/role-assignments",
                json!({"principal": {"kind": kind, "id": principal}, "role": "security_reader", "scope": "tenant"}),
            )
            .await
            .expect(201);
    }
    nest(&admin, &outer, &inner).await;
    // Every admin request waits for the latest revision: once this answers, the snapshot of the
    // nesting is built, and no rebuild still under way can read the hand edit below early.
    admin
        .get(&format!("/v1/groups/{inner}/members"))
        .await
        .expect(200);
    // A database edited by hand (or a bug) closes the loop behind the API's back.
    server
        .db
        .execute(&format!(
            "INSERT INTO group_members (tenant_id, group_id, member_kind, member_id, added_at) \
             VALUES ('{tenant_id}', '{inner}', 'group', '{outer}', 0)"
        ))
        .await
        .unwrap();
    admin
        .post(
            &format!("/v1/groups/{inner}/members"),
            json!({"kind": "user", "id": member}),
        )
        .await
        .expect(201);
    // Changes are applied as deltas, which read back only what the change feed names: the
    // hand edit is taken in by the next build of the whole snapshot, which a change that
    // reshapes the engine (a new resource type) brings.
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "memo", "actions": [{"name": "read", "plane": "data"}]}),
        )
        .await
        .expect(201);

    let (_, pep) = admin
        .principal_with_role("pep", "access_evaluator", "tenant")
        .await;
    let pep = server.client(&pep);
    let ask = |subject: &str| {
        json!({"subject": {"type": "user", "id": subject}, "action": {"name": "read"},
               "resource": {"type": "audit", "id": "trail"}})
    };
    let path = "/t/acme/access/v1/evaluation";
    let in_loop = pep.post(path, ask(&member)).await.expect(200);
    assert_eq!(in_loop["decision"], false, "{in_loop}");
    assert_eq!(in_loop["context"]["reason"]["kind"], "membership_cycle");
    let fine = pep.post(path, ask(&bystander)).await.expect(200);
    assert_eq!(fine["decision"], true, "{fine}");

    // Reported: readiness, a metric and one audit event naming the membership to remove.
    let ready = server.anonymous().get("/readyz").await.expect(200);
    assert_eq!(ready["tenants_with_membership_cycles"], 1);
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_authz_quarantined_principals")
                && l.contains(&tenant_id)
                && l.ends_with(" 3")),
        "outer, inner, the member and nobody else: {metrics}"
    );
    let events = admin.audit("authz.membership_cycle").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let closing = &events[0]["details"]["closing_memberships"][0];
    let (parent, child) = (
        closing["group"]["id"].as_str().unwrap().to_owned(),
        closing["member"]["id"].as_str().unwrap().to_owned(),
    );

    // The tenant's administrator can still act, and removes the membership it names.
    admin
        .delete(&format!("/v1/groups/{parent}/members/group/{child}"))
        .await
        .expect(204);
    let back = pep.post(path, ask(&member)).await.expect(200);
    assert_eq!(back["decision"], true, "{back}");
    let ready = server.anonymous().get("/readyz").await.expect(200);
    assert!(
        ready.get("tenants_with_membership_cycles").is_none(),
        "{ready}"
    );
}

#[tokio::test]
async fn simultaneous_key_issues_stop_at_the_cap() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = id(&admin
        .post("/v1/service-principals", json!({"name": "busy"}))
        .await
        .expect(201));
    let path = format!("/v1/service-principals/{sp}/api-keys");
    let statuses = all_at_once(30, |_| {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.post(&path, json!({})).await.status }
    })
    .await;
    assert_eq!(count(&statuses, 201), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 20, "{statuses:?}");
    let keys = admin.get(&path).await.expect(200)["items"].take();
    let active = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked_at"].is_null())
        .count();
    assert_eq!(active, 10);
}

#[tokio::test]
async fn simultaneous_creates_of_one_name_make_one_user() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let statuses = all_at_once(20, |i| {
        let admin = admin.clone();
        // Spellings of one name that differ only in case and width.
        let name = ["twin", "TWIN", "ｔｗｉｎ", "Twin"][i % 4];
        async move {
            admin
                .post("/v1/users", json!({"user_name": name}))
                .await
                .status
        }
    })
    .await;
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 19, "{statuses:?}");
}

#[tokio::test]
async fn of_simultaneous_versioned_writes_exactly_one_wins() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let created = admin.create_user("contested").await;
    let path = format!("/v1/users/{}", id(&created));

    let statuses = all_at_once(20, |i| {
        let (admin, path) = (admin.clone(), path.clone());
        async move {
            let body = json!({"display_name": format!("writer {i}")});
            admin
                .send(Method::PATCH, &path, Some(body), &[("if-match", "\"1\"")])
                .await
                .status
        }
    })
    .await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 412), 19, "{statuses:?}");
    assert_eq!(admin.audit("user.update").await.len(), 1);

    let statuses = all_at_once(20, |_| {
        let (admin, path) = (admin.clone(), path.clone());
        async move {
            admin
                .send(Method::DELETE, &path, None, &[("if-match", "\"2\"")])
                .await
                .status
        }
    })
    .await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(
        count(&statuses, 412) + count(&statuses, 404),
        19,
        "{statuses:?}"
    );
    assert_eq!(admin.audit("user.delete").await.len(), 1);

    // Unconditional deletes of one group: one deletes it, the rest find nothing.
    let doomed = group(&admin, "doomed").await;
    let path = format!("/v1/groups/{doomed}");
    let statuses = all_at_once(20, |_| {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.delete(&path).await.status }
    })
    .await;
    assert_eq!(count(&statuses, 204), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 404), 19, "{statuses:?}");
    assert_eq!(admin.audit("group.delete").await.len(), 1);
}

#[tokio::test]
async fn an_if_match_that_cannot_be_read_is_refused_not_ignored() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let created = admin.create_user("guarded").await;
    let url = server.url(&format!("/v1/users/{}", id(&created)));
    for value in [&b"\"1\xc3\xa9\""[..], b"1", b"\"1", b"\"1\" trailing"] {
        let response = reqwest::Client::new()
            .delete(&url)
            .bearer_auth(&server.admin_key)
            .header(
                "if-match",
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{value:?}");
    }
    let user = admin
        .get(&format!("/v1/users/{}", id(&created)))
        .await
        .expect(200);
    assert_eq!(user["state"], "active", "nothing was deleted");
}

/// The statuses of `count` sign-in posts sent at once with one browser's CSRF pair.
async fn sign_in_burst(
    server: &TestServer,
    attempts: usize,
    form: impl Fn(usize) -> (String, String),
) -> Vec<StatusCode> {
    let mut browser = Browser::new(server);
    let page = browser.get("/t/operator/sign-in").await;
    let csrf = page.csrf();
    let browser = Arc::new(browser);
    all_at_once(attempts, |i| {
        let (user, password) = form(i);
        browser.post_detached(
            "/t/operator/sign-in",
            &[
                ("csrf", &csrf),
                ("user_name", &user),
                ("password", &password),
            ],
        )
    })
    .await
}

#[tokio::test]
async fn a_burst_of_password_guesses_gets_only_the_free_attempts() {
    let server = TestServer::start().await;
    user_with_password(&server, "target", false).await;
    // 199 wrong guesses and the right password, all at once.
    let started = std::time::Instant::now();
    let statuses = sign_in_burst(&server, 200, |i| {
        let password = if i == 150 { PASSWORD } else { "wrong guess" };
        ("target".into(), password.into())
    })
    .await;
    // The back-off after the free attempts starts at one second and doubles, so a burst
    // that a loaded machine stretches over several seconds may rightly earn one more attempt
    // per doubling; a race would let dozens through.
    let doublings = (started.elapsed().as_secs_f64() + 1.0).log2().ceil() as usize;
    let allowed = 5 + doublings;
    let answered = statuses.iter().filter(|s| s.as_u16() != 429).count();
    assert!(
        answered <= allowed,
        "only the 5 free attempts (and {doublings} earned by waiting) are verified: {statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 200 - answered);
    let verified = server.admin().audit("signin").await;
    assert!(verified.len() <= allowed, "{verified:?}");
}

#[tokio::test]
async fn a_spray_from_one_address_gets_only_the_addresses_free_attempts() {
    let server = TestServer::start().await;
    let statuses = sign_in_burst(&server, 120, |i| (format!("nobody-{i}"), "guess".into())).await;
    let answered = statuses.iter().filter(|s| s.as_u16() != 429).count();
    assert!(answered <= 50, "{answered} of 120 were verified");
    assert!(answered >= 1);
}

#[tokio::test]
async fn a_burst_of_codes_gets_only_the_free_attempts() {
    let server = TestServer::start().await;
    crate::mfa::enrolled(&server, "coder").await;
    let mut browser = Browser::new(&server);
    let step = browser.sign_in("operator", "coder", PASSWORD).await;
    assert_eq!(step.location(), "/t/operator/sign-in/code");
    let csrf = browser.get("/t/operator/sign-in/code").await.csrf();
    let browser = Arc::new(browser);
    let statuses = all_at_once(300, |i| {
        let field = if i % 2 == 0 { "code" } else { "recovery_code" };
        let guess = if i % 2 == 0 {
            format!("{:06}", i)
        } else {
            format!("guess-{i:05}")
        };
        browser.post_detached(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), (field, &guess)],
        )
    })
    .await;
    let answered = statuses.iter().filter(|s| s.as_u16() != 429).count();
    assert!(answered <= 5, "{answered} codes were tried: {statuses:?}");
}

/// An API key with its secret replaced: the prefix exists, the secret is wrong.
fn wrong_secret(key: &str) -> String {
    format!("{}{}", &key[..key.len() - 43], "A".repeat(43))
}

#[tokio::test]
async fn a_burst_of_bad_api_keys_gets_only_the_addresses_limit() {
    let server = TestServer::start().await;
    let bad = wrong_secret(&server.admin_key);
    let statuses = all_at_once(80, |i| {
        let client = server.client(if i % 2 == 0 {
            &bad
        } else {
            "pcs_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        });
        async move { client.get("/v1/me").await.status }
    })
    .await;
    assert_eq!(count(&statuses, 401), 30, "the default limit: {statuses:?}");
    assert_eq!(count(&statuses, 429), 50);
}

#[tokio::test]
async fn a_burst_of_bad_client_secrets_gets_only_the_addresses_limit() {
    let server = TestServer::start().await;
    let (client_id, secret) = crate::oauth::client(&server, "app").await;
    let authorization = crate::oauth::basic(&client_id, &wrong_secret(&secret));
    let url = server.url("/t/operator/oauth/token");
    let statuses = all_at_once(80, |_| {
        let request = reqwest::Client::new()
            .post(&url)
            .header("authorization", &authorization)
            .form(&[("grant_type", "client_credentials")]);
        async move { request.send().await.unwrap().status() }
    })
    .await;
    assert_eq!(count(&statuses, 401), 30, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 50);
}

#[tokio::test]
async fn refused_attempts_are_audited_as_counts_not_one_row_each() {
    let server = TestServer::start_with(|mut s| {
        s.sweep_interval_seconds = Some(1);
        s
    })
    .await;
    user_with_password(&server, "target", false).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses
            .extend(sign_in_burst(&server, 200, |_| ("target".into(), "wrong guess".into())).await);
    }
    let refused = count(&statuses, 429);
    assert!(refused >= 990, "{refused} of 1000 were throttled");
    let admin = server.admin();
    let total = |events: &[Value]| -> u64 {
        events
            .iter()
            .map(|e| e["details"]["count"].as_u64().unwrap())
            .sum()
    };
    let summaries = admin
        .audit_once("authn.throttled", |events| total(events) >= refused as u64)
        .await;
    let counted = total(&summaries);
    assert_eq!(counted, refused as u64, "every refusal is counted once");
    let rows = summaries.len() + admin.audit("signin").await.len();
    eprintln!(
        "{rows} audit rows for {refused} throttled and {} answered attempts",
        statuses.len() - refused
    );
    assert!(
        rows <= 15,
        "{rows} audit rows for {refused} refused attempts (one per key and sweep)"
    );
    assert!(summaries.iter().all(|e| e["target"]["id"] == "target"));
}
