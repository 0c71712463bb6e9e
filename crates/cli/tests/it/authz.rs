//! Deny by default, least privilege, and the privilege-escalation paths that must stay closed.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::TestServer;

#[tokio::test]
async fn a_principal_without_roles_can_do_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "nobody"}))
        .await
        .expect(201);
    let key = admin
        .post(
            &format!(
                "/v1/service-principals/{}/api-keys",
                sp["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(201);
    let nobody = server.client(key["secret"].as_str().unwrap());
    // It may ask who it is, and nothing else.
    assert!(
        nobody.get("/v1/me").await.expect(200)["grants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for path in [
        "/v1/users",
        "/v1/groups",
        "/v1/service-principals",
        "/v1/role-assignments",
        "/v1/audit",
        "/v1/environments",
        "/v1/business-units",
        "/v1/roles",
    ] {
        nobody.get(path).await.problem(403);
    }
    nobody
        .post("/v1/users", json!({"user_name": "x"}))
        .await
        .problem(403);
    let denied = admin.audit("user.create").await;
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["reason"], "denied: no role held has this action");
    assert_eq!(denied[0]["details"]["decision"]["kind"], "no_role");
    assert_eq!(denied[0]["actor"]["id"], sp["id"]);
}

#[tokio::test]
async fn each_builtin_role_allows_what_it_says_and_no_more() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, auditor) = admin
        .principal_with_role("auditor", "auditor", "tenant")
        .await;
    let (_, reader) = admin
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    let (_, users) = admin
        .principal_with_role("useradmin", "user_administrator", "tenant")
        .await;
    let (_, pra) = admin
        .principal_with_role("pra", "privileged_role_administrator", "tenant")
        .await;
    let (auditor, reader, users, pra) = (
        server.client(&auditor),
        server.client(&reader),
        server.client(&users),
        server.client(&pra),
    );

    auditor.get("/v1/audit").await.expect(200);
    auditor.get("/v1/users").await.problem(403);
    reader.get("/v1/users").await.expect(200);
    reader.get("/v1/audit").await.expect(200);
    reader
        .post("/v1/users", json!({"user_name": "r"}))
        .await
        .problem(403);
    let created = users
        .post("/v1/users", json!({"user_name": "made-by-user-admin"}))
        .await
        .expect(201);
    users
        .post("/v1/groups", json!({"name": "made-by-user-admin"}))
        .await
        .expect(201);
    users
        .post("/v1/service-principals", json!({"name": "sp"}))
        .await
        .problem(403);
    users.get("/v1/audit").await.problem(403);
    users
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": created["id"]}, "role": "auditor"}),
        )
        .await
        .problem(403);
    pra.post(
        "/v1/role-assignments",
        json!({"principal": {"kind": "user", "id": created["id"]}, "role": "auditor"}),
    )
    .await
    .expect(201);
    pra.post("/v1/users", json!({"user_name": "pra-user"}))
        .await
        .problem(403);
    let roles = reader.get("/v1/roles").await.expect(200)["items"].take();
    assert_eq!(roles.as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn a_user_administrator_cannot_escalate_through_privileged_principals() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, user_admin_key) = admin
        .principal_with_role("ua", "user_administrator", "tenant")
        .await;
    let user_admin = server.client(&user_admin_key);
    let me = user_admin.get("/v1/me").await.expect(200);
    let my_id = me["principal"]["id"].as_str().unwrap().to_owned();

    // A group that holds tenant administrator.
    let admins = admin
        .post("/v1/groups", json!({"name": "admins"}))
        .await
        .expect(201);
    let admins_id = admins["id"].as_str().unwrap();
    admin
        .post("/v1/role-assignments", json!({"principal": {"kind": "group", "id": admins_id}, "role": "tenant_administrator"}))
        .await
        .expect(201);
    // ...and a group nested inside it, which therefore holds it too.
    let inner = admin
        .post("/v1/groups", json!({"name": "inner"}))
        .await
        .expect(201);
    let inner_id = inner["id"].as_str().unwrap();
    admin
        .post(
            &format!("/v1/groups/{admins_id}/members"),
            json!({"kind": "group", "id": inner_id}),
        )
        .await
        .expect(201);

    for group in [admins_id, inner_id] {
        let problem = user_admin
            .post(
                &format!("/v1/groups/{group}/members"),
                json!({"kind": "service_principal", "id": my_id}),
            )
            .await
            .problem(403);
        assert!(
            problem["detail"].as_str().unwrap().contains("no role"),
            "{problem}"
        );
        user_admin
            .delete(&format!("/v1/groups/{group}"))
            .await
            .problem(403);
    }
    // A group whose role only starts later is guarded the same way: joining it now would be
    // the same escalation, delayed.
    let later = admin
        .post("/v1/groups", json!({"name": "admins-from-tomorrow"}))
        .await
        .expect(201);
    let later_id = later["id"].as_str().unwrap();
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": later_id}, "role": "tenant_administrator", "starts_at": tomorrow}),
        )
        .await
        .expect(201);
    user_admin
        .post(
            &format!("/v1/groups/{later_id}/members"),
            json!({"kind": "service_principal", "id": my_id}),
        )
        .await
        .problem(403);
    // An administrator user (holding a role) cannot be edited by the user administrator either.
    let boss = admin.create_user("boss").await;
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": boss["id"]}, "role": "auditor"}),
        )
        .await
        .expect(201);
    user_admin
        .patch(
            &format!("/v1/users/{}", boss["id"].as_str().unwrap()),
            json!({"state": "disabled"}),
        )
        .await
        .problem(403);
    user_admin
        .delete(&format!("/v1/users/{}", boss["id"].as_str().unwrap()))
        .await
        .problem(403);
    // Ordinary users and groups are theirs to manage.
    let plain = admin.create_user("plain").await;
    user_admin
        .patch(
            &format!("/v1/users/{}", plain["id"].as_str().unwrap()),
            json!({"state": "disabled"}),
        )
        .await
        .expect(200);
    // The tenant administrator, holding role.assign, may do all of it.
    admin
        .post(
            &format!("/v1/groups/{inner_id}/members"),
            json!({"kind": "user", "id": plain["id"]}),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn roles_through_nested_groups_apply_and_stop_when_membership_ends() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let outer = admin
        .post("/v1/groups", json!({"name": "readers"}))
        .await
        .expect(201);
    let inner = admin
        .post("/v1/groups", json!({"name": "team"}))
        .await
        .expect(201);
    admin
        .post(
            &format!("/v1/groups/{}/members", outer["id"].as_str().unwrap()),
            json!({"kind": "group", "id": inner["id"]}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "group", "id": outer["id"]}, "role": "security_reader"}),
        )
        .await
        .expect(201);
    let sp = admin
        .post("/v1/service-principals", json!({"name": "bot"}))
        .await
        .expect(201);
    let key = admin
        .post(
            &format!(
                "/v1/service-principals/{}/api-keys",
                sp["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(201);
    let bot = server.client(key["secret"].as_str().unwrap());
    bot.get("/v1/users").await.problem(403);
    admin
        .post(
            &format!("/v1/groups/{}/members", inner["id"].as_str().unwrap()),
            json!({"kind": "service_principal", "id": sp["id"]}),
        )
        .await
        .expect(201);
    bot.get("/v1/users").await.expect(200);
    let me = bot.get("/v1/me").await.expect(200);
    assert_eq!(me["grants"][0]["via_group"], outer["id"]);
    admin
        .delete(&format!(
            "/v1/groups/{}/members/service_principal/{}",
            inner["id"].as_str().unwrap(),
            sp["id"].as_str().unwrap()
        ))
        .await
        .expect(204);
    bot.get("/v1/users").await.problem(403);
}

#[tokio::test]
async fn time_bound_assignments_grant_only_inside_their_window() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "temp"}))
        .await
        .expect(201);
    let key = admin
        .post(
            &format!(
                "/v1/service-principals/{}/api-keys",
                sp["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .expect(201);
    let temp = server.client(key["secret"].as_str().unwrap());
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let principal = json!({"kind": "service_principal", "id": sp["id"]});
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": principal, "role": "auditor", "starts_at": later}),
        )
        .await
        .expect(201);
    temp.get("/v1/audit").await.problem(403);
    let past = (OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": principal, "role": "security_reader", "ends_at": past}),
        )
        .await
        .problem(422);
    let soon = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": principal, "role": "security_reader", "ends_at": soon}),
        )
        .await
        .expect(201);
    temp.get("/v1/users").await.expect(200);
    server.advance(time::Duration::minutes(61));
    temp.get("/v1/users").await.problem(403);
}

#[tokio::test]
async fn duplicate_and_dangling_assignments_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin.create_user("dup").await;
    let body = json!({"principal": {"kind": "user", "id": user["id"]}, "role": "auditor"});
    let assignment = admin
        .post("/v1/role-assignments", body.clone())
        .await
        .expect(201);
    admin.post("/v1/role-assignments", body).await.problem(409);
    admin
        .post("/v1/role-assignments", json!({"principal": {"kind": "user", "id": user["id"]}, "role": "auditor", "scope": "environment/0190f1c2-7a1b-7c3d-8e4f-0123456789ab"}))
        .await
        .problem(422);
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": user["id"]}, "role": "overlord"}),
        )
        .await
        .problem(400);
    let path = format!(
        "/v1/role-assignments/{}",
        assignment["id"].as_str().unwrap()
    );
    admin.get(&path).await.expect(200);
    admin.delete(&path).await.expect(204);
    admin.get(&path).await.problem(404);
}
