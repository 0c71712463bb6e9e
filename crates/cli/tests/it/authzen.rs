//! AuthZEN 1.0 as unmodified enforcement points call it: subjects by the identifiers in their
//! own tokens and in their own words for subject types, application types that share a name
//! with Portcullis's own, inline records that name only their owner, batches in which one bad
//! item costs only that item, and search pages bound to their query. Requests and responses
//! are shaped like the examples of the specification.

use serde_json::{Value, json};

use crate::access::{Acme, acme, ask, evaluate};
use crate::harness::{TestServer, cli};

const EVALUATION: &str = "/t/acme/access/v1/evaluation";
const EVALUATIONS: &str = "/t/acme/access/v1/evaluations";

fn subject(kind: &str, id: &str) -> Value {
    json!({"type": kind, "id": id})
}

fn question(subject: Value, action: &str, resource: Value) -> Value {
    json!({"subject": subject, "action": {"name": action}, "resource": resource})
}

fn document(id: &str) -> Value {
    json!({"type": "document", "id": id})
}

async fn set_email(t: &Acme, user: &str, email: &str) {
    t.admin
        .patch(&format!("/v1/users/{user}"), json!({"email": email}))
        .await
        .expect(200);
}

#[tokio::test]
async fn subjects_are_named_by_the_identifiers_in_the_enforcement_points_tokens() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    set_email(&t, &t.alice, "Alice@Example.com").await;
    // An upstream identity provider's `sub`, set through the API and through the CLI.
    let alice = t
        .admin
        .patch(
            &format!("/v1/users/{}", t.alice),
            json!({"external_id": "00u1a2b3c4"}),
        )
        .await
        .expect(200);
    assert_eq!(alice["external_id"], "00u1a2b3c4");
    let (_, key) = t
        .admin
        .principal_with_role("operator-cli", "user_administrator", "tenant")
        .await;
    let (code, out, err) = cli(
        &server,
        &key,
        &["user", "update", &t.bob, "--external-id", "auth0|bob"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("auth0|bob"), "{out}");

    // Every identifier of alice gets alice's answer; before, only the UUID was accepted.
    for id in [
        t.alice.as_str(),
        "alice",
        "ALICE",
        "alice@example.com",
        "00u1a2b3c4",
    ] {
        let d = evaluate(&t.pep, "acme", ask(id, "read", "d-emea")).await;
        assert_eq!(d["decision"], true, "{id}: {d}");
        assert_eq!(d["context"]["reason"]["principal"]["kind"], "group", "{id}");
    }
    let d = evaluate(&t.pep, "acme", ask("auth0|bob", "delete", "d-emea")).await;
    assert_eq!(d["decision"], false);
    assert_eq!(
        d["context"]["reason"]["kind"], "no_role",
        "found, holds nothing: {d}"
    );
    // External ids are compared exactly; a look-alike of a name is nobody.
    for nobody in ["00U1A2B3C4", "\u{430}lice", "carol"] {
        let d = evaluate(&t.pep, "acme", ask(nobody, "read", "d-emea")).await;
        assert_eq!(d["decision"], false, "{nobody}");
        assert_eq!(
            d["context"]["reason"]["kind"], "unknown_subject",
            "{nobody}"
        );
    }

    // An identifier two principals answer to is refused, not guessed; the PEP may say which
    // kind of identifier it sends.
    t.admin
        .patch(
            &format!("/v1/users/{}", t.bob),
            json!({"user_name": "alice@example.com"}),
        )
        .await
        .expect(200);
    let d = evaluate(&t.pep, "acme", ask("alice@example.com", "read", "d-emea")).await;
    assert_eq!(d["decision"], false, "{d}");
    assert_eq!(d["context"]["reason"]["kind"], "ambiguous_subject");
    let by_email = question(
        json!({"type": "user", "id": "alice@example.com", "properties": {"identifier": "email"}}),
        "delete",
        document("d-emea"),
    );
    let d = evaluate(&t.pep, "acme", by_email).await;
    assert_eq!(d["decision"], true, "alice owns d-emea: {d}");
    let p = t
        .pep
        .post(
            EVALUATION,
            question(
                json!({"type": "user", "id": "alice", "properties": {"identifier": "phone"}}),
                "read",
                document("d-emea"),
            ),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "subject.properties.identifier");

    // External ids are unique in the tenant, whoever sets them at once.
    let p = t
        .admin
        .patch(
            &format!("/v1/users/{}", t.bob),
            json!({"external_id": "00u1a2b3c4"}),
        )
        .await
        .problem(409);
    assert_eq!(p["field"], "external_id");
    let p = t
        .admin
        .patch(
            &format!("/v1/users/{}", t.bob),
            json!({"external_id": "a\nb"}),
        )
        .await
        .problem(422);
    assert_eq!(p["field"], "external_id");

    // Service principals by name, by client id (their id) and by external id.
    let robot = t
        .admin
        .post(
            "/v1/service-principals",
            json!({"name": "billing-bot", "external_id": "spiffe://acme/billing"}),
        )
        .await
        .expect(201);
    let robot_id = robot["id"].as_str().unwrap();
    // A principal created holding nothing is found from the next authorization change.
    t.admin
        .post(
            &format!("/v1/groups/{}/members", t.editors),
            json!({"kind": "service_principal", "id": robot_id}),
        )
        .await
        .expect(201);
    for id in ["billing-bot", robot_id, "spiffe://acme/billing"] {
        let d = evaluate(
            &t.pep,
            "acme",
            question(subject("service_principal", id), "read", document("d-emea")),
        )
        .await;
        assert_eq!(
            d["context"]["reason"]["kind"], "depth_too_shallow",
            "{id}: {d}"
        );
    }
}

#[tokio::test]
async fn a_tenant_names_its_enforcement_points_subject_types() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let as_identity = question(subject("identity", "alice"), "read", document("d-emea"));
    let p = t
        .pep
        .post(EVALUATION, as_identity.clone())
        .await
        .problem(400);
    assert_eq!(p["field"], "subject.type");

    for (bad, field) in [
        (json!({"user": ["group"]}), "subject_types.user"),
        (json!({"identity": []}), "subject_types.identity"),
        (
            json!({"identity": ["user", "user"]}),
            "subject_types.identity",
        ),
        (json!({"bad name": ["user"]}), "subject_types"),
    ] {
        let p = t
            .admin
            .send(
                reqwest::Method::PUT,
                "/v1/access-settings",
                Some(json!({"audit_allowed_one_in": 0, "subject_types": bad})),
                &[],
            )
            .await
            .problem(422);
        assert_eq!(p["field"], field, "{p}");
    }
    t.admin
        .send(
            reqwest::Method::PUT,
            "/v1/access-settings",
            Some(json!({"audit_allowed_one_in": 0, "subject_types": {
                "identity": ["user", "service_principal"], "account": ["user"]}})),
            &[],
        )
        .await
        .expect(200);
    let d = evaluate(&t.pep, "acme", as_identity).await;
    assert_eq!(d["decision"], true, "{d}");
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("account", "bob"), "read", document("d-emea")),
    )
    .await;
    assert_eq!(d["context"]["reason"]["kind"], "no_role");
    // The subject search answers in the tenant's word too, with Portcullis's types.
    let found = t
        .pep
        .post(
            "/t/acme/access/v1/search/subject",
            json!({"subject": {"type": "identity"}, "action": {"name": "read"},
                   "resource": document("d-emea")}),
        )
        .await
        .expect(200);
    assert_eq!(
        found["results"],
        json!([{"type": "user", "id": t.alice}]),
        "{found}"
    );
}

#[tokio::test]
async fn an_application_may_call_its_own_types_user_and_group() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    // A role written before the application registers `user`: it names Portcullis's own.
    let directory = t
        .admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Directory reader", "permissions": [{"action": "user.read"}]}),
        )
        .await
        .expect(201);
    assert_eq!(
        directory["permissions"][0]["action"], "portcullis:user.read",
        "{directory}"
    );
    let registered = t
        .admin
        .post(
            "/v1/resource-types",
            json!({"name": "user", "actions": [
                {"name": "read", "plane": "data"}, {"name": "suspend", "plane": "data"}]}),
        )
        .await
        .expect(201);
    assert_eq!(registered["name"], "user");
    let app_role = t
        .admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Profile owner", "permissions": [
                {"action": "user.read", "depth": "own"},
                {"action": "portcullis:group.read"}]}),
        )
        .await
        .expect(201);
    assert_eq!(
        app_role["permissions"],
        json!([{"action": "user.read", "depth": "own"},
               {"action": "portcullis:group.read", "depth": "tenant"}])
    );
    // `user.create` is not an action of the application's `user`, and is not quietly taken
    // as Portcullis's either once the name is the application's.
    let p = t
        .admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Ambiguous", "permissions": [{"action": "user.create"}]}),
        )
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("portcullis:"), "{p}");

    let (dir_id, dir_key) = t
        .admin
        .principal_with_role("directory", directory["id"].as_str().unwrap(), "tenant")
        .await;
    let (_, app_key) = t
        .admin
        .principal_with_role("profiles", app_role["id"].as_str().unwrap(), "tenant")
        .await;
    // The older role still opens Portcullis's directory; the application's does not.
    server.client(&dir_key).get("/v1/users").await.expect(200);
    server.client(&app_key).get("/v1/users").await.problem(403);
    server.client(&app_key).get("/v1/groups").await.expect(200);

    // The application's users are records like any other.
    t.admin
        .send(
            reqwest::Method::PUT,
            "/v1/records/user/u-7",
            Some(json!({"owner": {"kind": "user", "id": t.alice}, "business_unit_id": t.emea})),
            &[],
        )
        .await
        .expect(200);
    t.admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": t.editors}, "role": app_role["id"], "scope": "tenant"}),
        )
        .await
        .expect(201);
    let app_user = json!({"type": "user", "id": "u-7"});
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("user", "alice"), "read", app_user.clone()),
    )
    .await;
    assert_eq!(d["decision"], true, "{d}");
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("user", "bob"), "read", app_user.clone()),
    )
    .await;
    assert_eq!(d["decision"], false, "{d}");
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("service_principal", &dir_id), "read", app_user),
    )
    .await;
    assert_eq!(
        d["decision"], false,
        "Portcullis's user.read is not the app's: {d}"
    );
    // Portcullis's own users are still asked about, by the prefixed name.
    let d = evaluate(
        &t.pep,
        "acme",
        question(
            subject("service_principal", &dir_id),
            "read",
            json!({"type": "portcullis:user", "id": t.bob}),
        ),
    )
    .await;
    assert_eq!(d["decision"], true, "{d}");
    let actions = t
        .pep
        .post(
            "/t/acme/access/v1/search/action",
            question(
                subject("user", "alice"),
                "",
                json!({"type": "user", "id": "u-7"}),
            ),
        )
        .await
        .expect(200);
    assert_eq!(actions["results"], json!([{"name": "read"}]), "{actions}");
}

#[tokio::test]
async fn an_inline_record_needs_only_its_owner() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    set_email(&t, &t.alice, "alice@example.com").await;
    let draft = |props: Value| json!({"type": "document", "id": "draft-9", "properties": props});
    // The reader role deletes only what one owns, and reads down from one's own unit.
    let owned_by_alice = draft(json!({"ownerID": "alice@example.com"}));
    for (who, action, allowed) in [
        ("alice", "delete", true),
        ("alice", "read", true),
        ("bob", "delete", false),
    ] {
        let d = evaluate(
            &t.pep,
            "acme",
            question(subject("user", who), action, owned_by_alice.clone()),
        )
        .await;
        assert_eq!(d["decision"], allowed, "{who} {action}: {d}");
    }
    // The owner may be a subject object, named as subjects are; bob's drafts sit in sales,
    // above alice's unit.
    let owned_by_bob = draft(json!({"owner": {"type": "user", "id": "bob"}}));
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("user", "alice"), "read", owned_by_bob),
    )
    .await;
    assert_eq!(d["context"]["reason"]["kind"], "depth_too_shallow", "{d}");
    // A named unit still wins over the owner's.
    let in_emea = draft(json!({"owner_id": t.bob, "business_unit_id": t.emea}));
    let d = evaluate(
        &t.pep,
        "acme",
        question(subject("user", "alice"), "read", in_emea),
    )
    .await;
    assert_eq!(d["decision"], true, "{d}");
    // An owner nobody answers to leaves the record nowhere.
    let d = evaluate(
        &t.pep,
        "acme",
        question(
            subject("user", "alice"),
            "read",
            draft(json!({"ownerID": "mallory@example.com"})),
        ),
    )
    .await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_resource", "{d}");
    let p = t
        .pep
        .post(
            EVALUATION,
            question(
                subject("user", "alice"),
                "read",
                draft(json!({"owner": 42})),
            ),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "resource.properties.owner");
}

#[tokio::test]
async fn a_batch_answers_every_item_and_an_empty_one_is_a_single_evaluation() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let top = ask("alice", "read", "d-emea");
    // Absent or empty `evaluations`: the top-level question, answered as a single one.
    for body in [
        top.clone(),
        json!({"subject": top["subject"], "action": top["action"], "resource": top["resource"], "evaluations": []}),
    ] {
        let d = t.pep.post(EVALUATIONS, body).await.expect(200);
        assert_eq!(d["decision"], true, "{d}");
        assert!(d.get("evaluations").is_none(), "{d}");
    }
    // One item of an unknown subject type, one without a resource id, one fine: the bad ones
    // are denials carrying their error; the good one is answered.
    let batch = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "evaluations": [
            {"resource": {"type": "document", "id": "d-emea"}},
            {"subject": {"type": "account", "id": "alice"}, "resource": {"type": "document", "id": "d-emea"}},
            {"resource": {"type": "document"}},
            {"resource": {"type": "spaceship", "id": "x"}}
        ]
    });
    let answered = t.pep.post(EVALUATIONS, batch).await.expect(200);
    let items = answered["evaluations"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{answered}");
    assert_eq!(items[0]["decision"], true);
    for (item, field) in [(&items[1], "subject.type"), (&items[2], "resource.id")] {
        assert_eq!(item["decision"], false, "{item}");
        assert_eq!(item["context"]["error"]["status"], 400, "{item}");
        assert_eq!(item["context"]["error"]["field"], field, "{item}");
        assert!(item["context"].get("reason").is_none(), "{item}");
    }
    // An unknown type is a decision, with its reason.
    assert_eq!(items[3]["context"]["reason"]["kind"], "unknown_action");
    // The errors are audited with the denials.
    let events = t
        .admin
        .audit_once("access.evaluate", |events| !events.is_empty())
        .await;
    assert!(
        events
            .iter()
            .any(|e| e["details"]["denials"] == 3 && e["details"]["evaluations"] == 4),
        "{events:?}"
    );
}

#[tokio::test]
async fn search_pages_resume_only_their_own_query() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    // Bob joins the editors: both may now read d-emea (bob from sales, above it).
    t.admin
        .post(
            &format!("/v1/groups/{}/members", t.editors),
            json!({"kind": "user", "id": t.bob}),
        )
        .await
        .expect(201);
    let search = |limit: usize, token: &str, doc: &str| {
        json!({"subject": {"type": "user"}, "action": {"name": "read"},
               "resource": document(doc), "page": {"limit": limit, "token": token}})
    };
    let path = "/t/acme/access/v1/search/subject";
    let mut everyone = [t.alice.clone(), t.bob.clone()];
    everyone.sort();

    // A limit of 0 asks only whether there is anything: no results, a token to start from.
    let none = t.pep.post(path, search(0, "", "d-emea")).await.expect(200);
    assert_eq!(none["results"], json!([]), "{none}");
    let start = none["page"]["next_token"].as_str().unwrap().to_owned();
    assert!(!start.is_empty(), "{none}");
    let first = t
        .pep
        .post(path, search(1, &start, "d-emea"))
        .await
        .expect(200);
    assert_eq!(first["results"][0]["id"], everyone[0], "{first}");
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();

    // The token resumes its own query only.
    let p = t
        .pep
        .post(path, search(1, &token, "d-sales"))
        .await
        .problem(400);
    assert_eq!(p["field"], "page.token");
    assert!(
        p["detail"].as_str().unwrap().contains("different search"),
        "{p}"
    );
    let p = t
        .pep
        .post(path, search(1, "not-a-token", "d-emea"))
        .await
        .problem(400);
    assert_eq!(p["field"], "page.token");

    let rest = t
        .pep
        .post(path, search(1, &token, "d-emea"))
        .await
        .expect(200);
    assert_eq!(rest["results"][0]["id"], everyone[1], "{rest}");
    assert_eq!(rest["page"]["next_token"], "", "{rest}");
    // Nothing to find: no token.
    let nothing = t.pep.post(path, search(0, "", "d-none")).await.problem(400);
    assert_eq!(nothing["field"], "resource");
}

/// Roles and deny assignments stored before Portcullis's own types were named apart keep
/// meaning Portcullis's own actions: their bare names are given the prefix once, at start.
#[tokio::test]
async fn own_actions_stored_by_an_older_server_are_renamed_at_start() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let role = admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Directory", "permissions": [{"action": "user.read"}]}),
        )
        .await
        .expect(201);
    let (who, _) = admin
        .principal_with_role("reader", role["id"].as_str().unwrap(), "tenant")
        .await;
    let deny = admin
        .post(
            "/v1/deny-assignments",
            json!({"name": "no deletes", "principals": [{"kind": "service_principal", "id": who}],
                   "actions": ["user.delete", "portcullis:group.write"]}),
        )
        .await
        .expect(201);
    // As an older server stored them.
    server
        .db
        .execute(
            r#"UPDATE custom_roles SET permissions = '[{"action":"user.read","depth":"tenant"}]'"#,
        )
        .await
        .unwrap();
    server
        .db
        .execute(r#"UPDATE deny_assignments SET actions = '["user.delete","group.write"]'"#)
        .await
        .unwrap();
    server
        .db
        .execute("DELETE FROM data_upgrades")
        .await
        .unwrap();
    let node = server.another_node(|s| s).await;
    let admin = node.client(&server.admin_key);
    let role = admin
        .get(&format!(
            "/v1/custom-roles/{}",
            role["id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(role["permissions"][0]["action"], "portcullis:user.read");
    let denies = admin.get("/v1/deny-assignments").await.expect(200);
    let stored = denies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == deny["id"])
        .unwrap();
    assert_eq!(
        stored["actions"],
        json!(["portcullis:user.delete", "portcullis:group.write"])
    );
}

/// A PEP may authenticate with an access token from `client_credentials` for the tenant's
/// policy decision point instead of an API key; a token for another audience, of another
/// tenant, of a user, or revoked is refused.
#[tokio::test]
async fn an_enforcement_point_may_ask_with_an_oauth_access_token() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let decision_point = format!("http://localhost:{}/t/acme", server.addr.port());
    let (pep_id, pep_secret) = t
        .admin
        .principal_with_role("gateway", "access_evaluator", "tenant")
        .await;
    t.admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{pep_id}/oauth-client"),
            Some(
                json!({"grant_types": ["client_credentials"], "scopes": ["decisions"],
                        "resources": [decision_point, "https://api.example.com"]}),
            ),
            &[],
        )
        .await
        .expect(200);
    let token_for = |resource: &'static str| {
        let (server, id, secret, pdp) = (
            &server,
            pep_id.clone(),
            pep_secret.clone(),
            decision_point.clone(),
        );
        async move {
            let resource = if resource.is_empty() {
                pdp
            } else {
                resource.to_owned()
            };
            let (status, _, body) = crate::oauth::token_request(
                server,
                "acme",
                Some(&crate::oauth::basic(&id, &secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", &resource),
                ],
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let token = token_for("").await;
    let pep = server.client(&token);
    let d = pep
        .post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .expect(200);
    assert_eq!(d["decision"], true, "{d}");
    pep.post(
        "/t/acme/access/v1/search/action",
        question(subject("user", "alice"), "", document("d-emea")),
    )
    .await
    .expect(200);

    // A token for another API is not one for the decision point.
    let elsewhere = token_for("https://api.example.com").await;
    let p = server
        .client(&elsewhere)
        .post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .problem(401);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("policy decision point"),
        "{p}"
    );
    // Not at another tenant either, and not on the admin API.
    server
        .client(&token)
        .post(
            "/t/globex/access/v1/evaluation",
            ask("alice", "read", "d-emea"),
        )
        .await
        .problem(404);
    server.client(&token).get("/v1/users").await.problem(401);
    // Another tenant's token, even for acme's decision point URL, was not issued by acme.
    let other = acme(&server, "globex").await;
    let (other_id, other_secret) = other
        .admin
        .principal_with_role("gateway", "access_evaluator", "tenant")
        .await;
    other
        .admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{other_id}/oauth-client"),
            Some(
                json!({"grant_types": ["client_credentials"], "scopes": ["decisions"],
                        "resources": [decision_point]}),
            ),
            &[],
        )
        .await
        .expect(200);
    let (status, _, body) = crate::oauth::token_request(
        &server,
        "globex",
        Some(&crate::oauth::basic(&other_id, &other_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server
        .client(body["access_token"].as_str().unwrap())
        .post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .problem(401);
    // An expired token is refused, however well signed.
    let short_lived = token_for("").await;
    server.advance(time::Duration::hours(2));
    server
        .client(&short_lived)
        .post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .problem(401);
    // Revoked by the client: refused at once.
    let response = reqwest::Client::new()
        .post(server.url("/t/acme/oauth/revoke"))
        .header("authorization", crate::oauth::basic(&pep_id, &pep_secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    pep.post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .problem(401);
    // A client without `access.evaluate` gets a token but no answers.
    let nobody = t
        .admin
        .post("/v1/service-principals", json!({"name": "no-rights"}))
        .await
        .expect(201);
    let nobody_id = nobody["id"].as_str().unwrap();
    t.admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{nobody_id}/oauth-client"),
            Some(
                json!({"grant_types": ["client_credentials"], "scopes": ["decisions"],
                        "resources": [decision_point]}),
            ),
            &[],
        )
        .await
        .expect(200);
    let secret = t
        .admin
        .post(
            &format!("/v1/service-principals/{nobody_id}/api-keys"),
            json!({}),
        )
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = crate::oauth::token_request(
        &server,
        "acme",
        Some(&crate::oauth::basic(nobody_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server
        .client(body["access_token"].as_str().unwrap())
        .post(EVALUATION, ask("alice", "read", "d-emea"))
        .await
        .problem(403);
}

/// An external id names one principal however many administrators claim it at once.
#[tokio::test]
async fn simultaneous_claims_on_one_external_id_leave_exactly_one_owner() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(
            admin.create_user(&format!("claimant{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let statuses = crate::concurrency::all_at_once(users.len(), |i| {
        let admin = admin.clone();
        let path = format!("/v1/users/{}", users[i]);
        async move {
            admin
                .patch(&path, json!({"external_id": "okta|shared"}))
                .await
                .status
        }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let stored = server
        .db
        .texts("SELECT id FROM users WHERE external_id = 'okta|shared'")
        .await;
    assert_eq!(stored.len(), 1);
}

/// The sum of a counter's series that name `tenant`.
fn counted(metrics: &str, name: &str, tenant: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(tenant))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn principals_memberships_and_states_reach_decisions_without_a_rebuild() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let tenant = t.admin.get("/v1/me").await.expect(200)["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Settle: the set-up's resource types and roles reshaped the engine and rebuilt it.
    evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    let rebuilds = counted(
        &server.metrics().await,
        "portcullis_authz_snapshot_rebuilds_total",
        &tenant,
    );

    // A user created now is known by name at once: found, holding nothing.
    let dave = t
        .admin
        .post(
            "/v1/users",
            json!({"user_name": "dave", "business_unit_id": t.emea}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = evaluate(&t.pep, "acme", ask("dave", "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "no_role", "{d}");
    // In the editors, dave reads what they read in his unit's tree; out of them, nothing.
    let members = format!("/v1/groups/{}/members", t.editors);
    t.admin
        .post(&members, json!({"kind": "user", "id": dave}))
        .await
        .expect(201);
    let d = evaluate(&t.pep, "acme", ask("dave", "read", "d-emea")).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(
        d["context"]["reason"]["principal"]["id"],
        t.editors.as_str()
    );
    let d = evaluate(&t.pep, "acme", ask("dave", "read", "d-sales")).await;
    assert_eq!(d["context"]["reason"]["kind"], "depth_too_shallow", "{d}");
    // Disabled, dave is nobody; enabled again, what he held is his again.
    let path = format!("/v1/users/{dave}");
    t.admin
        .patch(&path, json!({"state": "disabled"}))
        .await
        .expect(200);
    let d = evaluate(&t.pep, "acme", ask(&dave, "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_subject", "{d}");
    t.admin
        .patch(&path, json!({"state": "active"}))
        .await
        .expect(200);
    let d = evaluate(&t.pep, "acme", ask("dave", "read", "d-emea")).await;
    assert_eq!(d["decision"], true, "{d}");
    t.admin
        .delete(&format!("{members}/user/{dave}"))
        .await
        .expect(204);
    let d = evaluate(&t.pep, "acme", ask("dave", "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "no_role", "{d}");
    // The group deleted takes alice's membership with it.
    t.admin
        .delete(&format!("/v1/groups/{}", t.editors))
        .await
        .expect(204);
    let d = evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "no_role", "{d}");

    // None of it built the snapshot again: each change was applied as a delta.
    let metrics = server.metrics().await;
    assert_eq!(
        counted(
            &metrics,
            "portcullis_authz_snapshot_rebuilds_total",
            &tenant
        ),
        rebuilds,
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_authz_snapshot_apply_seconds"));
}

/// The value of an unlabelled gauge or counter.
fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn past_the_memory_budget_cold_tenants_are_dropped_and_rebuilt_with_every_change() {
    // A budget smaller than any tenant: a node keeps only the tenant it was last asked about.
    let server = TestServer::start_with(|mut s| {
        s.authz_memory_mib = Some(0);
        s
    })
    .await;
    let a = acme(&server, "acme").await;
    let g = acme(&server, "globex").await;
    for _ in 0..2 {
        for (t, name) in [(&a, "acme"), (&g, "globex")] {
            let d = evaluate(&t.pep, name, ask(&t.alice, "read", "d-emea")).await;
            assert_eq!(d["decision"], true, "{name}: {d}");
        }
    }
    let metrics = server.metrics().await;
    assert!(
        gauge(&metrics, "portcullis_authz_tenants_dropped_total") >= 3.0,
        "{metrics}"
    );
    assert!(
        gauge(&metrics, "portcullis_authz_tenants_loaded") <= 2.0,
        "{metrics}"
    );

    // A change made while acme is not loaded is in the snapshot built on its next decision.
    a.admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            a.editors, a.alice
        ))
        .await
        .expect(204);
    evaluate(&g.pep, "globex", ask(&g.alice, "read", "d-emea")).await;
    let d = evaluate(&a.pep, "acme", ask(&a.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], false, "{d}");
    let d = evaluate(&g.pep, "globex", ask(&g.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], true, "{d}");

    // The node publishes the revision its snapshot of each tenant is at.
    let globex = g.admin.get("/v1/me").await.expect(200)["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = evaluate(&g.pep, "globex", ask(&g.alice, "read", "d-emea")).await;
    let revision = d["context"]["revision"].as_i64().unwrap();
    assert_eq!(
        counted(
            &server.metrics().await,
            "portcullis_authz_snapshot_revision",
            &globex
        ),
        revision as f64
    );
}
