//! The authorization engine through its APIs: resource types, custom roles, records, shares
//! and deny assignments written through the admin API; decisions, reasons, revisions and
//! searches read through AuthZEN; and a second node catching up through the change feed.

use serde_json::{Value, json};

use crate::harness::{Client, TestServer};

/// A tenant `acme` with units root > sales > emea, alice (emea, in group editors) and bob
/// (sales), a `document` type, a `reader` role held by the editors, two documents, and an
/// enforcement point allowed to ask.
pub(crate) struct Acme {
    pub(crate) admin: Client,
    pub(crate) pep: Client,
    pub(crate) alice: String,
    pub(crate) bob: String,
    pub(crate) editors: String,
    pub(crate) sales: String,
    pub(crate) emea: String,
}

pub(crate) async fn acme(server: &TestServer, name: &str) -> Acme {
    let (_, key) = server.admin().create_tenant(name).await;
    let admin = server.client(&key);
    let sales = admin
        .post("/v1/business-units", json!({"name": "Sales"}))
        .await
        .expect(201);
    let emea = admin
        .post(
            "/v1/business-units",
            json!({"name": "EMEA", "parent_id": sales["id"]}),
        )
        .await
        .expect(201);
    let user = |name: &'static str, unit: Value| {
        let admin = admin.clone();
        async move {
            admin
                .post(
                    "/v1/users",
                    json!({"user_name": name, "business_unit_id": unit}),
                )
                .await
                .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let alice = user("alice", emea["id"].clone()).await;
    let bob = user("bob", sales["id"].clone()).await;
    let editors = admin
        .post("/v1/groups", json!({"name": "editors"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(
            &format!("/v1/groups/{editors}/members"),
            json!({"kind": "user", "id": alice}),
        )
        .await
        .expect(201);
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
    admin
        .post(
            "/v1/resource-types",
            json!({"name": "notice", "actions": [{"name": "read", "plane": "data", "public": true}]}),
        )
        .await
        .expect(201);
    let reader = admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Reader", "permissions": [
                {"action": "document.read", "depth": "business_unit_tree"},
                {"action": "document.delete", "depth": "own"}
            ]}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": editors}, "role": reader["id"], "scope": "tenant"}),
        )
        .await
        .expect(201);
    for (id, owner, unit) in [("d-emea", &alice, &emea), ("d-sales", &bob, &sales)] {
        admin
            .send(
                reqwest::Method::PUT,
                &format!("/v1/records/document/{id}"),
                Some(
                    json!({"owner": {"kind": "user", "id": owner}, "business_unit_id": unit["id"]}),
                ),
                &[],
            )
            .await
            .expect(200);
    }
    let (_, pep) = admin
        .principal_with_role("pep", "access_evaluator", "tenant")
        .await;
    Acme {
        pep: server.client(&pep),
        admin,
        alice,
        bob,
        editors,
        sales: sales["id"].as_str().unwrap().to_owned(),
        emea: emea["id"].as_str().unwrap().to_owned(),
    }
}

pub(crate) fn ask(user: &str, action: &str, doc: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": user},
        "action": {"name": action},
        "resource": {"type": "document", "id": doc}
    })
}

pub(crate) async fn evaluate(pep: &Client, tenant: &str, body: Value) -> Value {
    pep.post(&format!("/t/{tenant}/access/v1/evaluation"), body)
        .await
        .expect(200)
}

#[tokio::test]
async fn decisions_explain_themselves_and_follow_every_change() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let pep = &t.pep;

    // Through the group, down the unit tree from emea; the reason names the assignment.
    let d = evaluate(pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(d["context"]["reason"]["kind"], "assignment");
    assert_eq!(
        d["context"]["reason"]["principal"]["id"],
        t.editors.as_str()
    );
    assert!(d["context"]["revision"].as_i64().unwrap() > 0);
    // Sales is above alice's unit; bob holds nothing; writing is no action of documents.
    let d = evaluate(pep, "acme", ask(&t.alice, "read", "d-sales")).await;
    assert_eq!(
        (
            d["decision"].clone(),
            d["context"]["reason"]["kind"].clone()
        ),
        (json!(false), json!("depth_too_shallow"))
    );
    let d = evaluate(pep, "acme", ask(&t.bob, "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "no_role");
    let d = evaluate(pep, "acme", ask(&t.alice, "write", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_action");
    // Her own record: delete at `own` depth.
    assert_eq!(
        evaluate(pep, "acme", ask(&t.alice, "delete", "d-emea")).await["decision"],
        true
    );
    // An unregistered record described inline, and a public action for nobody in particular.
    let inline = json!({
        "subject": {"type": "user", "id": t.alice},
        "action": {"name": "read"},
        "resource": {"type": "document", "id": "draft-9", "properties": {"business_unit_id": t.emea}}
    });
    assert_eq!(evaluate(pep, "acme", inline).await["decision"], true);
    let notice = json!({
        "subject": {"type": "anonymous"},
        "action": {"name": "read"},
        "resource": {"type": "notice", "id": "n1", "properties": {"business_unit_id": t.sales}}
    });
    let d = evaluate(pep, "acme", notice).await;
    assert_eq!(
        (
            d["decision"].clone(),
            d["context"]["reason"]["kind"].clone()
        ),
        (json!(true), json!("public"))
    );

    // A share, then a guardrail that beats every grant; the denial is audited.
    t.admin
        .post(
            "/v1/records/document/d-sales/shares",
            json!({"principal": {"kind": "user", "id": t.alice}, "actions": ["read"]}),
        )
        .await
        .expect(201);
    let d = evaluate(
        pep,
        "acme",
        with(
            ask(&t.alice, "read", "d-sales"),
            "context",
            json!({"min_revision": "latest"}),
        ),
    )
    .await;
    assert_eq!(
        (
            d["decision"].clone(),
            d["context"]["reason"]["kind"].clone()
        ),
        (json!(true), json!("share"))
    );
    let deny = t
        .admin
        .post(
            "/v1/deny-assignments",
            json!({"name": "no deleting in sales", "principals": [{"kind": "group", "id": t.editors}],
                   "actions": ["document.delete"], "scope": format!("business_unit/{}", t.sales)}),
        )
        .await
        .expect(201);
    let d = evaluate(pep, "acme", ask(&t.alice, "delete", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "deny_assignment", "{d}");
    assert_eq!(d["context"]["reason"]["deny_assignment_id"], deny["id"]);
    let mut denied = Vec::new();
    for _ in 0..200 {
        denied = t.admin.audit("access.evaluate").await;
        if !denied.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["target"]["id"], "d-emea");

    // Searches: who may read d-emea, what alice may read, what she may do to d-emea.
    let who = pep
        .post(
            "/t/acme/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "document", "id": "d-emea"}}),
        )
        .await
        .expect(200);
    assert_eq!(who["results"], json!([{"type": "user", "id": t.alice}]));
    let what = pep
        .post(
            "/t/acme/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": t.alice}, "action": {"name": "read"}, "resource": {"type": "document"},
                   "page": {"limit": 1}}),
        )
        .await
        .expect(200);
    assert_eq!(
        what["results"],
        json!([{"type": "document", "id": "d-emea"}])
    );
    let token = what["page"]["next_token"].as_str().unwrap();
    let rest = pep
        .post(
            "/t/acme/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": t.alice}, "action": {"name": "read"}, "resource": {"type": "document"},
                   "page": {"limit": 1, "token": token}}),
        )
        .await
        .expect(200);
    assert_eq!(
        rest["results"],
        json!([{"type": "document", "id": "d-sales"}])
    );
    assert_eq!(rest["page"]["next_token"], "");
    let actions = pep
        .post(
            "/t/acme/access/v1/search/action",
            json!({"subject": {"type": "user", "id": t.alice}, "resource": {"type": "document", "id": "d-emea"}}),
        )
        .await
        .expect(200);
    assert_eq!(actions["results"], json!([{"name": "read"}]));

    // Leaving the group takes the role away at once (read-your-writes on this node).
    let before =
        evaluate(pep, "acme", ask(&t.alice, "read", "d-emea")).await["context"]["revision"]
            .as_i64()
            .unwrap();
    t.admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            t.editors, t.alice
        ))
        .await
        .expect(204);
    let d = evaluate(
        pep,
        "acme",
        with(
            ask(&t.alice, "read", "d-emea"),
            "context",
            json!({"min_revision": before + 1}),
        ),
    )
    .await;
    assert_eq!(d["decision"], false, "{d}");
    assert_eq!(d["context"]["reason"]["kind"], "no_role");

    // A batch: defaults at the top, stopping at the first denial when asked to.
    let batch = pep
        .post(
            "/t/acme/access/v1/evaluations",
            json!({
                "subject": {"type": "user", "id": t.alice},
                "action": {"name": "read"},
                "evaluations": [
                    {"resource": {"type": "document", "id": "d-sales"}},
                    {"resource": {"type": "document", "id": "d-emea"}},
                    {"resource": {"type": "document", "id": "d-sales"}}
                ],
                "options": {"evaluations_semantic": "deny_on_first_deny"}
            }),
        )
        .await
        .expect(200);
    let decisions: Vec<&Value> = batch["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .collect();
    assert_eq!(decisions, [&json!(true), &json!(false)]);

    // Where AuthZEN 1.0 puts the metadata (the well-known string between the host and the
    // PDP's path), naming the identifier it was derived from; and where it was before.
    let config = server
        .anonymous()
        .get("/.well-known/authzen-configuration/t/acme")
        .await
        .expect(200);
    let pdp = config["policy_decision_point"].as_str().unwrap();
    assert_eq!(
        format!(
            "{}/.well-known/authzen-configuration/t/acme",
            pdp.trim_end_matches("/t/acme")
        ),
        format!(
            "http://localhost:{}/.well-known/authzen-configuration/t/acme",
            server.addr.port()
        ),
        "the metadata URL is derived from policy_decision_point: {config}"
    );
    assert!(
        config["access_evaluations_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/t/acme/access/v1/evaluations")
    );
    let old_place = server
        .anonymous()
        .get("/t/acme/.well-known/authzen-configuration")
        .await
        .expect(200);
    assert_eq!(old_place, config);
    server
        .anonymous()
        .get("/.well-known/authzen-configuration/t/nobody")
        .await
        .problem(404);

    // Deleting a record takes its shares with it; its type goes once no record uses it.
    let shares = t
        .admin
        .get("/v1/records/document/d-sales/shares")
        .await
        .expect(200)["items"]
        .take();
    let share_id = shares[0]["id"].as_str().unwrap().to_owned();
    t.admin
        .delete("/v1/records/document/d-sales")
        .await
        .expect(204);
    t.admin
        .delete("/v1/records/document/d-sales")
        .await
        .problem(404);
    t.admin
        .delete(&format!("/v1/shares/{share_id}"))
        .await
        .problem(404);
    let d = evaluate(pep, "acme", ask(&t.alice, "read", "d-sales")).await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_resource");
    t.admin
        .delete("/v1/resource-types/document")
        .await
        .problem(409);
    t.admin
        .delete("/v1/records/document/d-emea")
        .await
        .expect(204);
    t.admin
        .delete("/v1/resource-types/document")
        .await
        .expect(204);
}

#[tokio::test]
async fn records_are_listed_by_prefix_a_page_at_a_time_and_only_the_tenants_own() {
    let server = TestServer::start().await;
    let t = acme(&server, "records-listed").await;
    for id in ["a-3", "a-1", "b-1", "A-1", "a-5", "a-2", "a-4"] {
        t.admin
            .send(
                reqwest::Method::PUT,
                &format!("/v1/records/document/{id}"),
                Some(json!({"owner": {"kind": "group", "id": t.editors}, "business_unit_id": t.sales})),
                &[],
            )
            .await
            .expect(200);
    }
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["external_id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Everything, two at a time, in bytewise order ("A" before "a").
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/records/document?limit=2&cursor={c}"),
            None => "/v1/records/document?limit=2".to_owned(),
        };
        let page = t.admin.get(&path).await.expect(200);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "A-1", "a-1", "a-2", "a-3", "a-4", "a-5", "b-1", "d-emea", "d-sales"
        ]
    );

    // A prefix is a range: exact, case and all.
    let first = t
        .admin
        .get("/v1/records/document?prefix=a-&limit=3")
        .await
        .expect(200);
    assert_eq!(ids(&first), ["a-1", "a-2", "a-3"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = t
        .admin
        .get(&format!(
            "/v1/records/document?prefix=a-&limit=3&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(ids(&rest), ["a-4", "a-5"]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    // A cursor resumes only the listing it came from.
    let refused = t
        .admin
        .get(&format!("/v1/records/document?prefix=b&cursor={cursor}"))
        .await
        .problem(422);
    assert!(
        refused.to_string().contains("different search"),
        "{refused}"
    );
    let long = "x".repeat(257);
    t.admin
        .get(&format!("/v1/records/document?prefix={long}"))
        .await
        .problem(422);
    t.admin.get("/v1/records/invoice").await.problem(404);

    // Another tenant with a type of the same name sees none of these.
    let (_, key) = server.admin().create_tenant("records-elsewhere").await;
    let other = server.client(&key);
    other.get("/v1/records/document").await.problem(404);
    other
        .post(
            "/v1/resource-types",
            json!({"name": "document", "actions": [{"name": "read", "plane": "data"}]}),
        )
        .await
        .expect(201);
    let theirs = other.get("/v1/records/document").await.expect(200);
    assert_eq!(theirs["items"], json!([]), "{theirs}");
}

/// `body` with `key` set to `value`.
fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

#[tokio::test]
async fn only_the_tenants_own_enforcement_points_may_ask_and_bad_requests_change_nothing() {
    let server = TestServer::start_with(|mut s| {
        s.authz_max_wait_ms = Some(50);
        s
    })
    .await;
    let t = acme(&server, "acme").await;
    let other = acme(&server, "globex").await;
    // Another tenant's enforcement point learns nothing about acme, not even that it exists.
    other
        .pep
        .post(
            "/t/acme/access/v1/evaluation",
            ask(&t.alice, "read", "d-emea"),
        )
        .await
        .problem(404);
    // A principal of acme without `access.evaluate` may not ask.
    let (_, reader) = t
        .admin
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    server
        .client(&reader)
        .post(
            "/t/acme/access/v1/evaluation",
            ask(&t.alice, "read", "d-emea"),
        )
        .await
        .problem(403);
    server
        .anonymous()
        .post(
            "/t/acme/access/v1/evaluation",
            ask(&t.alice, "read", "d-emea"),
        )
        .await
        .problem(401);

    let p = t
        .pep
        .post(
            "/t/acme/access/v1/evaluation",
            json!({"subject": {"type": "account", "id": "alice"}, "action": {"name": "read"},
                   "resource": {"type": "document", "id": "d-emea"}}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "subject.type");
    let p = t
        .pep
        .post(
            "/t/acme/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": t.alice}, "action": {"name": "read"}}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "resource");
    let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    t.pep
        .post(
            "/t/acme/access/v1/evaluations",
            with(ask(&t.alice, "read", "d-emea"), "evaluations", json!(many)),
        )
        .await
        .problem(400);
    // A full batch, each evaluation spelled out, fits; a body past the batch limit does not.
    let full: Vec<Value> = (0..1000).map(|_| ask(&t.alice, "read", "d-emea")).collect();
    let answered = t
        .pep
        .post(
            "/t/acme/access/v1/evaluations",
            json!({"evaluations": full}),
        )
        .await
        .expect(200);
    assert_eq!(answered["evaluations"].as_array().unwrap().len(), 1000);
    let padded = with(
        ask(&t.alice, "read", "d-emea"),
        "context",
        json!({"note": "x".repeat(1024 * 1024)}),
    );
    t.pep
        .post("/t/acme/access/v1/evaluations", padded)
        .await
        .problem(413);
    let p = t
        .pep
        .post(
            "/t/acme/access/v1/evaluations",
            with(
                with(ask(&t.alice, "read", "d-emea"), "evaluations", json!([])),
                "options",
                json!({"evaluations_semantic": "first"}),
            ),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "options.evaluations_semantic");
    // A revision the database has not reached is refused after a bounded wait.
    let p = t
        .pep
        .post(
            "/t/acme/access/v1/evaluation",
            with(
                ask(&t.alice, "read", "d-emea"),
                "context",
                json!({"min_revision": 1_000_000_000}),
            ),
        )
        .await
        .problem(409);
    assert_eq!(p["field"], "context.min_revision");
    t.pep
        .post(
            "/t/acme/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"},
            "resource": {"type": "document", "id": "d-emea"}, "page": {"limit": 1001}}),
        )
        .await
        .problem(400);

    // The admin side refuses what would not mean anything.
    let p = t
        .admin
        .post(
            "/v1/resource-types",
            json!({"name": "portcullis:user", "actions": [{"name": "read", "plane": "data"}]}),
        )
        .await
        .problem(422);
    assert_eq!(p["field"], "name");
    t.admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Bad", "permissions": [{"action": "document.fly"}]}),
        )
        .await
        .problem(422);
    t.admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Sneaky", "permissions": [{"action": "user.read", "depth": "own"}]}),
        )
        .await
        .problem(422);
    let p = t
        .admin
        .send(
            reqwest::Method::PUT,
            "/v1/records/document/x",
            Some(
                json!({"owner": {"kind": "user", "id": t.alice}, "business_unit_id": other.sales}),
            ),
            &[],
        )
        .await
        .problem(422);
    assert_eq!(p["field"], "business_unit_id");
    t.admin
        .post(
            "/v1/records/document/d-emea/shares",
            json!({"principal": {"kind": "user", "id": other.alice}, "actions": ["read"]}),
        )
        .await
        .problem(422);
    t.admin
        .delete("/v1/resource-types/document")
        .await
        .problem(409);

    // Nothing of another tenant can be named: its users, units, records, shares.
    let d = evaluate(&t.pep, "acme", ask(&other.alice, "read", "d-emea")).await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_subject");
    let foreign_unit = with(
        ask(&t.alice, "read", "draft-1"),
        "resource",
        json!({"type": "document", "id": "draft-1", "properties": {"business_unit_id": other.emea}}),
    );
    let d = evaluate(&t.pep, "acme", foreign_unit).await;
    assert_eq!(d["context"]["reason"]["kind"], "unknown_resource");
    let foreign_record = other
        .admin
        .get("/v1/records/document/d-emea")
        .await
        .expect(200);
    let p = t
        .admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": t.alice}, "role": "auditor",
                   "scope": format!("record/{}", foreign_record["id"].as_str().unwrap())}),
        )
        .await
        .problem(422);
    assert_eq!(p["field"], "scope");
    t.admin
        .post(
            "/v1/deny-assignments",
            json!({"name": "x", "principals": [{"kind": "user", "id": other.bob}], "actions": ["document.read"]}),
        )
        .await
        .problem(422);
    let foreign_share = other
        .admin
        .post(
            "/v1/records/document/d-emea/shares",
            json!({"principal": {"kind": "user", "id": other.bob}, "actions": ["read"]}),
        )
        .await
        .expect(201);
    t.admin
        .delete(&format!(
            "/v1/shares/{}",
            foreign_share["id"].as_str().unwrap()
        ))
        .await
        .problem(404);
    other
        .admin
        .get("/v1/records/document/d-emea/shares")
        .await
        .expect(200)["items"]
        .take();
    // A unit or environment that records still live in is not deleted from under them.
    let archive = t
        .admin
        .post("/v1/business-units", json!({"name": "Archive"}))
        .await
        .expect(201);
    let dev = t
        .admin
        .post("/v1/environments", json!({"name": "dev"}))
        .await
        .expect(201);
    t.admin
        .send(
            reqwest::Method::PUT,
            "/v1/records/document/old-1",
            Some(
                json!({"owner": {"kind": "user", "id": t.alice}, "business_unit_id": archive["id"],
                        "environment_id": dev["id"]}),
            ),
            &[],
        )
        .await
        .expect(200);
    let p = t
        .admin
        .delete(&format!(
            "/v1/business-units/{}",
            archive["id"].as_str().unwrap()
        ))
        .await
        .problem(409);
    assert!(p["detail"].as_str().unwrap().contains("records"), "{p}");
    let p = t
        .admin
        .delete(&format!("/v1/environments/{}", dev["id"].as_str().unwrap()))
        .await
        .problem(409);
    assert!(p["detail"].as_str().unwrap().contains("records"), "{p}");
    t.admin
        .delete("/v1/records/document/old-1")
        .await
        .expect(204);
    t.admin
        .delete(&format!("/v1/environments/{}", dev["id"].as_str().unwrap()))
        .await
        .expect(204);

    // Forged revisions and page tokens are refused.
    for bad in [json!(-1), json!("soon"), json!(1.5)] {
        t.pep
            .post(
                "/t/acme/access/v1/evaluation",
                with(
                    ask(&t.alice, "read", "d-emea"),
                    "context",
                    json!({"min_revision": bad}),
                ),
            )
            .await
            .problem(400);
    }
    let p = t
        .pep
        .post(
            "/t/acme/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"},
                   "resource": {"type": "document", "id": "d-emea"}, "page": {"token": "../../etc"}}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "page.token");

    // None of it changed a decision.
    let d = evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], true);
    assert_eq!(
        other
            .admin
            .get("/v1/records/document/d-emea/shares")
            .await
            .expect(200)["items"]
            .take()[0]["id"],
        foreign_share["id"]
    );
    let _ = (&t.bob, &other.editors);
}

#[tokio::test]
async fn a_change_on_one_node_is_decided_on_another() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    // A second node on the same database, polling rarely: only the change feed's wake-up or a
    // demanded revision can bring it up to date quickly.
    let node = server
        .another_node(|mut s| {
            s.authz_poll_interval_ms = Some(if server.db.is_postgres() { 60_000 } else { 20 });
            s
        })
        .await;
    let remote = node.client(&t.pep.key.clone().unwrap());
    let d = evaluate(&remote, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], true);

    // Removed on the first node; the revision the first node reports makes the second catch up.
    t.admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            t.editors, t.alice
        ))
        .await
        .expect(204);
    let local = evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(local["decision"], false);
    let revision = local["context"]["revision"].as_i64().unwrap();
    let d = evaluate(
        &remote,
        "acme",
        with(
            ask(&t.alice, "read", "d-emea"),
            "context",
            json!({"min_revision": revision}),
        ),
    )
    .await;
    assert_eq!(d["decision"], false, "{d}");
    assert!(d["context"]["revision"].as_i64().unwrap() >= revision);

    // Without asking for a revision, the second node still converges on its own.
    t.admin
        .post(
            &format!("/v1/groups/{}/members", t.editors),
            json!({"kind": "user", "id": t.alice}),
        )
        .await
        .expect(201);
    let mut seen = false;
    for _ in 0..500 {
        if evaluate(&remote, "acme", ask(&t.alice, "read", "d-emea")).await["decision"] == true {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen, "the second node never saw the change");
}

/// A service principal of the tenant holding `role` at `scope`: its id, its API key and the
/// assignment's id.
async fn holder(admin: &Client, name: &str, role: &Value, scope: &str) -> (String, String, String) {
    let sp = admin
        .post("/v1/service-principals", json!({"name": name}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap().to_owned();
    let assignment = admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": id}, "role": role, "scope": scope}),
        )
        .await
        .expect(201);
    let key = admin
        .post(&format!("/v1/service-principals/{id}/api-keys"), json!({}))
        .await
        .expect(201);
    (
        id,
        key["secret"].as_str().unwrap().to_owned(),
        assignment["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_admin_api_is_decided_by_the_engine() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let admin = &t.admin;

    // A custom role that lists Portcullis's own actions opens exactly those.
    let directory = admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Directory reader", "permissions": [{"action": "user.read"}, {"action": "group.read"}]}),
        )
        .await
        .expect(201);
    let (_, key, assignment) = holder(admin, "helpdesk", &directory["id"], "tenant").await;
    let helpdesk = server.client(&key);
    helpdesk.get("/v1/users").await.expect(200);
    helpdesk.get("/v1/groups").await.expect(200);
    let refused = helpdesk
        .post("/v1/users", json!({"user_name": "mallory"}))
        .await
        .problem(403);
    assert!(
        refused["detail"].as_str().unwrap().contains("no role"),
        "{refused}"
    );
    let me = helpdesk.get("/v1/me").await.expect(200);
    assert_eq!(me["grants"][0]["role"], directory["id"]);

    // Held at a business unit, the same role reaches that unit's records, never the settings.
    let (_, key, _) = holder(
        admin,
        "unit-helpdesk",
        &directory["id"],
        &format!("business_unit/{}", t.sales),
    )
    .await;
    let refused = server.client(&key).get("/v1/users").await.problem(403);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("does not cover"),
        "{refused}"
    );

    // Removing the assignment is refused at once.
    admin
        .delete(&format!("/v1/role-assignments/{assignment}"))
        .await
        .expect(204);
    helpdesk.get("/v1/users").await.problem(403);

    // A deny assignment guards the production environment from everyone but break-glass.
    let me = admin.get("/v1/me").await.expect(200);
    let administrator = me["principal"].clone();
    let (breakglass_id, breakglass_key, _) = holder(
        admin,
        "break-glass",
        &json!("tenant_administrator"),
        "tenant",
    )
    .await;
    let breakglass = json!({"kind": "service_principal", "id": breakglass_id});
    let dev = admin
        .post("/v1/environments", json!({"name": "dev"}))
        .await
        .expect(201);
    let prod = admin
        .post("/v1/environments", json!({"name": "prod"}))
        .await
        .expect(201);
    let guard = admin
        .post(
            "/v1/deny-assignments",
            json!({"name": "prod stays", "principals": [administrator, breakglass],
                   "excluded": [breakglass], "actions": ["environment.delete"],
                   "scope": format!("environment/{}", prod["id"].as_str().unwrap())}),
        )
        .await
        .expect(201);
    let refused = admin
        .delete(&format!(
            "/v1/environments/{}",
            prod["id"].as_str().unwrap()
        ))
        .await
        .problem(403);
    assert!(
        refused["detail"].as_str().unwrap().contains("prod stays"),
        "{refused}"
    );
    let audited = admin.audit("environment.delete").await;
    assert_eq!(audited[0]["outcome"], "denied");
    assert_eq!(audited[0]["details"]["decision"]["kind"], "deny_assignment");
    assert_eq!(
        audited[0]["details"]["decision"]["deny_assignment_id"],
        guard["id"]
    );
    admin
        .delete(&format!("/v1/environments/{}", dev["id"].as_str().unwrap()))
        .await
        .expect(204);
    server
        .client(&breakglass_key)
        .delete(&format!(
            "/v1/environments/{}",
            prod["id"].as_str().unwrap()
        ))
        .await
        .expect(204);

    // Enforcement points may ask about Portcullis's own resources too.
    let d = evaluate(
        &t.pep,
        "acme",
        json!({"subject": {"type": "service_principal", "id": breakglass_id},
               "action": {"name": "delete"},
               "resource": {"type": "environment", "id": dev["id"]}}),
    )
    .await;
    assert_eq!(d["decision"], true, "{d}");
}

#[tokio::test]
async fn a_role_removed_through_one_node_is_refused_at_once_on_the_others() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    // Two more nodes on the same database that poll rarely.
    let rarely = |mut s: portcullis_server::Settings| {
        s.authz_poll_interval_ms = Some(60_000);
        s
    };
    let second = server.another_node(rarely).await;
    let third = server.another_node(rarely).await;
    let (_, key, assignment) =
        holder(&t.admin, "reader", &json!("security_reader"), "tenant").await;
    for node in [&second, &third] {
        node.client(&key).get("/v1/users").await.expect(200);
        let d = evaluate(
            &node.client(&t.pep.key.clone().unwrap()),
            "acme",
            ask(&t.alice, "read", "d-emea"),
        )
        .await;
        assert_eq!(d["decision"], true);
    }

    t.admin
        .delete(&format!("/v1/role-assignments/{assignment}"))
        .await
        .expect(204);
    t.admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            t.editors, t.alice
        ))
        .await
        .expect(204);
    for node in [&second, &third] {
        // The admin API decides on everything committed before the request, on any node.
        node.client(&key).get("/v1/users").await.problem(403);
        // An enforcement point that asks for the latest revision gets the same.
        let d = evaluate(
            &node.client(&t.pep.key.clone().unwrap()),
            "acme",
            with(
                ask(&t.alice, "read", "d-emea"),
                "context",
                json!({"min_revision": "latest"}),
            ),
        )
        .await;
        assert_eq!(d["decision"], false, "{d}");
    }
}

#[tokio::test]
async fn the_cli_explains_decisions_and_lists_who_may_do_what() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let key = t.admin.key.clone().unwrap();
    let run = |args: &'static [&'static str]| {
        let (server, key) = (&server, key.clone());
        async move { crate::harness::cli(server, &key, args).await }
    };

    let (code, out, err) = run(&[
        "explain",
        "--subject",
        "user:alice",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ALLOWED: user alice ("), "{out}");
    assert!(out.contains("is a member of group editors"), "{out}");
    assert!(out.contains("role \"Reader\""), "{out}");
    assert!(out.contains("held at tenant"), "{out}");
    let (code, explored, err) = run(&[
        "explain",
        "--explorer",
        "--subject",
        "user:alice",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(explored.starts_with("ALLOWED: user alice ("), "{explored}");
    assert!(
        explored.contains(&format!("is a member of group editors ({})", t.editors)),
        "{explored}"
    );
    assert!(!explored.contains("directly or through"), "{explored}");

    let (code, out, _) = run(&[
        "explain",
        "--subject",
        "user:alice",
        "--action",
        "document.delete",
        "--resource",
        "document:d-sales",
        "--min-revision",
        "latest",
    ])
    .await;
    assert_eq!(code, 2, "a denial exits 2: {out}");
    assert!(out.starts_with("DENIED: user alice"), "{out}");
    assert!(out.contains("does not reach this record"), "{out}");

    let (code, out, err) = run(&[
        "who-can",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&format!("user alice ({})", t.alice)), "{out}");

    let (code, out, err) = run(&[
        "what-can",
        "--subject",
        "user:alice",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "delete\nread\n");
    let (code, out, _) = run(&[
        "what-can",
        "--subject",
        "user:alice",
        "--action",
        "document.read",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(out, "document:d-emea\n");

    // Mistakes are explained, not guessed at.
    let (code, _, err) = run(&[
        "explain",
        "--subject",
        "alice",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("`<kind>:<id>`"), "{err}");
    let (code, _, err) = run(&[
        "explain",
        "--subject",
        "user:nobody",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("no user named \"nobody\""), "{err}");
    let (code, _, err) = run(&[
        "explain",
        "--subject",
        "user:alice",
        "--action",
        "read",
        "--resource",
        "document:d-emea",
        "--min-revision",
        "soon",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("neither a revision number"), "{err}");
}

#[tokio::test]
async fn the_access_explorer_draws_the_path_through_nested_groups_and_pages_who_can() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    // alice → editors → writers → staff; the role moves to staff, so alice holds it two
    // groups away. bob is in staff directly.
    let group = |name: &'static str| {
        let admin = t.admin.clone();
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
    let (writers, staff) = (group("writers").await, group("staff").await);
    for (member_kind, member, into) in [
        ("group", &t.editors, &writers),
        ("group", &writers, &staff),
        ("user", &t.bob, &staff),
    ] {
        t.admin
            .post(
                &format!("/v1/groups/{into}/members"),
                json!({"kind": member_kind, "id": member}),
            )
            .await
            .expect(201);
    }
    let held = t
        .admin
        .get(&format!(
            "/v1/role-assignments?principal_kind=group&principal_id={}",
            t.editors
        ))
        .await
        .expect(200)["items"][0]
        .clone();
    t.admin
        .delete(&format!(
            "/v1/role-assignments/{}",
            held["id"].as_str().unwrap()
        ))
        .await
        .expect(204);
    let moved = t
        .admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": staff}, "role": held["role"], "scope": "tenant"}),
        )
        .await
        .expect(201);

    let ask = |user: &str, action: &str, doc: &str| {
        json!({
            "principal": {"kind": "user", "id": user},
            "action": action,
            "resource": {"type": "document", "id": doc}
        })
    };
    let answer = t
        .admin
        .post("/v1/access-explorer/check", ask(&t.alice, "read", "d-emea"))
        .await
        .expect(200);
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["reason"]["kind"], "assignment");
    assert_eq!(answer["reason"]["assignment_id"], moved["id"]);
    let through: Vec<&str> = answer["through"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(through, [t.editors.as_str(), &writers, &staff], "{answer}");
    assert!(
        answer["reason_text"]
            .as_str()
            .unwrap()
            .starts_with("allowed")
    );
    // bob holds it one group away; a denial names the nearest miss and no groups.
    let answer = t
        .admin
        .post("/v1/access-explorer/check", ask(&t.bob, "read", "d-emea"))
        .await
        .expect(200);
    assert_eq!(answer["through"], json!([{"kind": "group", "id": staff}]));
    let answer = t
        .admin
        .post("/v1/access-explorer/check", ask(&t.bob, "delete", "d-emea"))
        .await
        .expect(200);
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["reason"]["kind"], "depth_too_shallow", "{answer}");
    assert_eq!(answer["through"], json!([]));

    // Who can read d-emea: alice and bob, a page of one at a time, each once. Not the groups:
    // the role reaches records through the holder's business unit, and a plain group has none.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = t
            .admin
            .post(
                "/v1/access-explorer/who-can",
                json!({"action": "document.read", "resource": {"type": "document", "id": "d-emea"},
                       "limit": 1, "cursor": cursor}),
            )
            .await
            .expect(200);
        let found = page["principals"].as_array().unwrap();
        assert!(found.len() <= 1);
        seen.extend(found.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut expected = vec![t.alice.clone(), t.bob.clone()];
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    let groups = t
        .admin
        .post(
            "/v1/access-explorer/who-can",
            json!({"action": "read", "resource": {"type": "document", "id": "d-emea"}, "kinds": ["group"]}),
        )
        .await
        .expect(200);
    assert_eq!(groups["principals"], json!([]), "{groups}");

    // Questions that cannot be asked say which field to mend; a forged cursor is refused.
    let problem = t
        .admin
        .post("/v1/access-explorer/check", ask(&t.alice, "fly", "d-emea"))
        .await
        .expect(422);
    assert_eq!(problem["field"], "action", "{problem}");
    let problem = t
        .admin
        .post(
            "/v1/access-explorer/check",
            ask(&t.alice, "read", "d-nowhere"),
        )
        .await
        .expect(422);
    assert_eq!(problem["field"], "resource.id", "{problem}");
    let problem = t
        .admin
        .post(
            "/v1/access-explorer/who-can",
            json!({"action": "read", "resource": {"type": "document", "id": "d-emea"}, "cursor": "robot/1"}),
        )
        .await
        .expect(422);
    assert_eq!(problem["field"], "cursor", "{problem}");

    // An enforcement point may evaluate, not read who holds what: the explorer refuses it.
    t.pep
        .post("/v1/access-explorer/check", ask(&t.alice, "read", "d-emea"))
        .await
        .expect(403);
    t.pep
        .post(
            "/v1/access-explorer/who-can",
            json!({"action": "read", "resource": {"type": "document", "id": "d-emea"}}),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn allowed_decisions_are_sampled_into_the_audit_trail_as_the_tenant_says() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let settings = t.admin.get("/v1/access-settings").await.expect(200);
    assert_eq!(
        settings,
        json!({"audit_allowed_one_in": 0, "subject_types": {}})
    );

    // By default only denials are written.
    for _ in 0..3 {
        let d = evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
        assert_eq!(d["decision"], true);
    }
    assert!(
        t.admin
            .audit("access.evaluate")
            .await
            .iter()
            .all(|e| e["outcome"] != "success")
    );

    // Bad settings are refused and change nothing; the enforcement point may not set them.
    let problem = t
        .admin
        .send(
            reqwest::Method::PUT,
            "/v1/access-settings",
            Some(json!({"audit_allowed_one_in": 2_000_000})),
            &[],
        )
        .await
        .problem(422);
    assert_eq!(problem["field"], "audit_allowed_one_in");
    t.admin
        .send(
            reqwest::Method::PUT,
            "/v1/access-settings",
            Some(json!({"audit_allowed_one_in": 1, "audit_denied": false})),
            &[],
        )
        .await
        .problem(400);
    t.pep
        .send(
            reqwest::Method::PUT,
            "/v1/access-settings",
            Some(json!({"audit_allowed_one_in": 1})),
            &[],
        )
        .await
        .problem(403);
    assert_eq!(
        t.admin.get("/v1/access-settings").await.expect(200),
        settings
    );

    // Every allowed decision, from the next one on.
    t.admin
        .send(
            reqwest::Method::PUT,
            "/v1/access-settings",
            Some(json!({"audit_allowed_one_in": 1})),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(t.admin.audit("access_settings.update").await.len(), 1);
    let d = evaluate(&t.pep, "acme", ask(&t.alice, "read", "d-emea")).await;
    assert_eq!(d["decision"], true);
    let mut sampled = Vec::new();
    for _ in 0..200 {
        sampled = t
            .admin
            .audit("access.evaluate")
            .await
            .into_iter()
            .filter(|e| e["outcome"] == "success")
            .collect();
        if !sampled.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(sampled.len(), 1, "{sampled:?}");
    assert_eq!(sampled[0]["target"]["id"], "d-emea");
    assert_eq!(
        sampled[0]["details"]["allowed"][0]["reason"]["kind"],
        "assignment"
    );
}

#[tokio::test]
async fn a_team_passes_its_roles_on_from_its_own_unit() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let refused = t
        .admin
        .post(
            "/v1/groups",
            json!({"name": "nowhere", "business_unit_id": "0190f1c2-7a1b-7c3d-8e4f-0123456789ab"}),
        )
        .await
        .problem(422);
    assert_eq!(refused["field"], "business_unit_id");
    // Another tenant's unit is no unit here.
    let other = acme(&server, "globex").await;
    let refused = t
        .admin
        .post(
            "/v1/groups",
            json!({"name": "intruders", "business_unit_id": other.sales}),
        )
        .await
        .problem(422);
    assert_eq!(refused["field"], "business_unit_id");
    let team = t
        .admin
        .post(
            "/v1/groups",
            json!({"name": "emea-support", "business_unit_id": t.emea}),
        )
        .await
        .expect(201);
    assert_eq!(team["business_unit_id"], t.emea.as_str());
    let team_id = team["id"].as_str().unwrap().to_owned();
    t.admin
        .post(
            &format!("/v1/groups/{team_id}/members"),
            json!({"kind": "user", "id": t.bob}),
        )
        .await
        .expect(201);
    let unit_reader = t
        .admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Unit reader", "permissions": [{"action": "document.read", "depth": "business_unit"}]}),
        )
        .await
        .expect(201);
    t.admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": team_id}, "role": unit_reader["id"], "scope": "tenant"}),
        )
        .await
        .expect(201);

    // Bob is in sales; through the EMEA team he reads EMEA's records, not his own unit's.
    let d = evaluate(&t.pep, "acme", ask(&t.bob, "read", "d-emea")).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(d["context"]["reason"]["principal"]["id"], team_id.as_str());
    let d = evaluate(&t.pep, "acme", ask(&t.bob, "read", "d-sales")).await;
    assert_eq!(d["context"]["reason"]["kind"], "depth_too_shallow", "{d}");

    let refused = t
        .admin
        .patch(
            &format!("/v1/groups/{team_id}"),
            json!({"business_unit_id": other.emea}),
        )
        .await
        .problem(422);
    assert_eq!(refused["field"], "business_unit_id");
    // Made a plain group again, its role counts from each member's own unit.
    t.admin
        .patch(
            &format!("/v1/groups/{team_id}"),
            json!({"business_unit_id": null}),
        )
        .await
        .expect(200);
    assert_eq!(
        evaluate(&t.pep, "acme", ask(&t.bob, "read", "d-sales")).await["decision"],
        true
    );
    assert_eq!(
        evaluate(&t.pep, "acme", ask(&t.bob, "read", "d-emea")).await["decision"],
        false
    );
}

#[tokio::test]
async fn roles_are_cloned_into_custom_roles_to_edit() {
    let server = TestServer::start().await;
    let t = acme(&server, "acme").await;
    let clone = t
        .admin
        .post(
            "/v1/roles/user_administrator/clone",
            json!({"name": "Helpdesk"}),
        )
        .await
        .expect(201);
    let builtin = t.admin.get("/v1/roles").await.expect(200)["items"].take();
    let expected: Vec<Value> = builtin
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "user_administrator")
        .unwrap()["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(
            |a| json!({"action": format!("portcullis:{}", a.as_str().unwrap()), "depth": "tenant"}),
        )
        .collect();
    // Portcullis's own actions are stored apart from any application's.
    assert_eq!(clone["permissions"], json!(expected));
    // A clone of the clone, and refusals that change nothing.
    let again = t
        .admin
        .post(
            &format!("/v1/roles/{}/clone", clone["id"].as_str().unwrap()),
            json!({"name": "Helpdesk 2"}),
        )
        .await
        .expect(201);
    assert_eq!(again["permissions"], clone["permissions"]);
    t.admin
        .post("/v1/roles/overlord/clone", json!({"name": "x"}))
        .await
        .problem(404);
    // Another tenant's custom role cannot be copied out of it.
    let other = acme(&server, "globex").await;
    let theirs =
        other.admin.get("/v1/custom-roles").await.expect(200)["items"].take()[0]["id"].clone();
    t.admin
        .post(
            &format!("/v1/roles/{}/clone", theirs.as_str().unwrap()),
            json!({"name": "Stolen"}),
        )
        .await
        .problem(404);
    t.admin
        .post("/v1/roles/auditor/clone", json!({"name": "Helpdesk"}))
        .await
        .problem(409);
    t.pep
        .post("/v1/roles/auditor/clone", json!({"name": "Mine"}))
        .await
        .problem(403);
    assert_eq!(
        t.admin.get("/v1/custom-roles").await.expect(200)["items"]
            .take()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
