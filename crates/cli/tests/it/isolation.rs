//! Tenant isolation: one tenant's administrator can neither read, change nor detect another
//! tenant's objects, and only the operator tenant manages tenants.

use serde_json::json;

use crate::harness::TestServer;

#[tokio::test]
async fn a_tenant_cannot_read_change_or_detect_another_tenants_objects() {
    let server = TestServer::start().await;
    let operator = server.admin();
    let (_, a_key) = operator.create_tenant("acme").await;
    let (b_tenant, b_key) = operator.create_tenant("globex").await;
    let a = server.client(&a_key);
    let b = server.client(&b_key);

    let b_user = b.create_user("secret-agent").await;
    let b_user_id = b_user["id"].as_str().unwrap();
    let b_group = b
        .post("/v1/groups", json!({"name": "spies"}))
        .await
        .expect(201);
    let b_group_id = b_group["id"].as_str().unwrap();
    let b_env = b
        .post("/v1/environments", json!({"name": "prod"}))
        .await
        .expect(201);
    let b_env_id = b_env["id"].as_str().unwrap();
    let b_sp = b.get("/v1/me").await.expect(200)["principal"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Reading by id answers exactly as for an id that never existed.
    let never = "0190f1c2-7a1b-7c3d-8e4f-0123456789ab";
    for (existing, path) in [
        (format!("/v1/users/{b_user_id}"), "/v1/users/"),
        (format!("/v1/groups/{b_group_id}"), "/v1/groups/"),
        (format!("/v1/environments/{b_env_id}"), "/v1/environments/"),
        (
            format!("/v1/service-principals/{b_sp}"),
            "/v1/service-principals/",
        ),
        (format!("/v1/tenants/{b_tenant}"), "/v1/tenants/"),
    ] {
        let theirs = a.get(&existing).await;
        let nothing = a.get(&format!("{path}{never}")).await;
        assert_eq!(theirs.status, nothing.status, "{existing}");
        assert_eq!(theirs.body["detail"], nothing.body["detail"], "{existing}");
        assert_eq!(theirs.status, 404, "{existing}");
    }
    // Changing, deleting or linking to B's objects fails the same way and changes nothing.
    a.patch(
        &format!("/v1/users/{b_user_id}"),
        json!({"display_name": "pwned"}),
    )
    .await
    .problem(404);
    a.delete(&format!("/v1/users/{b_user_id}"))
        .await
        .problem(404);
    a.delete(&format!("/v1/groups/{b_group_id}"))
        .await
        .problem(404);
    a.post(
        &format!("/v1/groups/{b_group_id}/members"),
        json!({"kind": "user", "id": b_user_id}),
    )
    .await
    .problem(404);
    let a_group = a
        .post("/v1/groups", json!({"name": "mine"}))
        .await
        .expect(201);
    let problem = a
        .post(
            &format!("/v1/groups/{}/members", a_group["id"].as_str().unwrap()),
            json!({"kind": "user", "id": b_user_id}),
        )
        .await
        .problem(422);
    assert!(problem["detail"].as_str().unwrap().contains("no such user"));
    a.post(
        "/v1/role-assignments",
        json!({"principal": {"kind": "user", "id": b_user_id}, "role": "auditor"}),
    )
    .await
    .problem(422);
    a.post("/v1/role-assignments", json!({"principal": {"kind": "service_principal", "id": b_sp}, "role": "auditor", "scope": format!("environment/{b_env_id}")}))
        .await
        .problem(422);
    a.post(
        &format!("/v1/service-principals/{b_sp}/api-keys"),
        json!({}),
    )
    .await
    .problem(404);

    // Listings show only one's own tenant.
    let a_users = a.get("/v1/users").await.expect(200);
    assert!(a_users["items"].as_array().unwrap().is_empty());
    let a_audit = a.get("/v1/audit?limit=500").await.expect(200);
    assert!(
        !a_audit.to_string().contains(b_user_id),
        "A's audit trail shows nothing of B"
    );
    a.get("/v1/tenants").await.problem(403);

    let unchanged = b.get(&format!("/v1/users/{b_user_id}")).await.expect(200);
    assert_eq!(unchanged["display_name"], serde_json::Value::Null);
    assert_eq!(unchanged["state"], "active");
}

#[tokio::test]
async fn only_the_operator_manages_tenants() {
    let server = TestServer::start().await;
    let operator = server.admin();
    let (a_tenant, a_key) = operator.create_tenant("initech").await;
    let a = server.client(&a_key);
    a.post("/v1/tenants", json!({"name": "rogue"}))
        .await
        .problem(403);
    a.patch(
        &format!("/v1/tenants/{a_tenant}"),
        json!({"state": "disabled"}),
    )
    .await
    .problem(403);
    // A tenant administrator may rename its own tenant.
    let renamed = a
        .patch(
            &format!("/v1/tenants/{a_tenant}"),
            json!({"display_name": "Initech Corp"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["display_name"], "Initech Corp");
    operator
        .post("/v1/tenants", json!({"name": "initech"}))
        .await
        .problem(409);
    let listed = operator.get("/v1/tenants").await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    // The operator sees the tenant, but none of its users.
    operator
        .get(&format!("/v1/tenants/{a_tenant}"))
        .await
        .expect(200);
    let operator_me = operator.get("/v1/me").await.expect(200);
    operator
        .patch(
            &format!(
                "/v1/tenants/{}",
                operator_me["tenant"]["id"].as_str().unwrap()
            ),
            json!({"state": "disabled"}),
        )
        .await
        .problem(409);
}

#[tokio::test]
async fn a_disabled_tenant_is_locked_out_at_once_and_can_be_reenabled() {
    let server = TestServer::start().await;
    let operator = server.admin();
    let (tenant, key) = operator.create_tenant("umbrella").await;
    let client = server.client(&key);
    client.get("/v1/me").await.expect(200);
    operator
        .patch(
            &format!("/v1/tenants/{tenant}"),
            json!({"state": "disabled"}),
        )
        .await
        .expect(200);
    client.get("/v1/me").await.problem(401);
    operator
        .patch(&format!("/v1/tenants/{tenant}"), json!({"state": "active"}))
        .await
        .expect(200);
    client.get("/v1/me").await.expect(200);
    // The tenant's own chain shows what the operator did to it.
    let events = client.audit("tenant.update").await;
    assert_eq!(events.len(), 2, "{events:?}");
}
