//! Users, guests, groups, environments and business units through their lifecycles.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::TestServer;

fn in_days(days: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn user_lifecycle_disable_delete_restore_purge() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin.create_user("dana").await;
    let id = user["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}");
    assert_eq!(
        admin
            .patch(&path, json!({"state": "disabled"}))
            .await
            .expect(200)["state"],
        "disabled"
    );
    let deleted = admin.delete(&path).await.expect(200);
    assert_eq!(deleted["state"], "deleted");
    assert!(deleted["deleted_at"].is_string());
    // A deleted user keeps its name reserved and cannot be changed until restored.
    admin
        .post("/v1/users", json!({"user_name": "DANA"}))
        .await
        .problem(409);
    admin
        .patch(&path, json!({"display_name": "x"}))
        .await
        .problem(409);
    let listed = admin.get("/v1/users?state=deleted").await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let restored = admin
        .post(&format!("{path}/restore"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        restored["state"], "disabled",
        "restored to the state it had before deletion"
    );
    admin
        .post(&format!("{path}/purge"), json!({}))
        .await
        .problem(409);
    admin.delete(&path).await.expect(200);
    admin
        .post(&format!("{path}/purge"), json!({}))
        .await
        .expect(204);
    admin.get(&path).await.problem(404);
    admin
        .post(&format!("{path}/restore"), json!({}))
        .await
        .problem(404);
    // The name is free again after the purge.
    admin.create_user("dana").await;
    let actions: Vec<String> = admin
        .get(&format!("/v1/audit?target_id={id}"))
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "user.purge",
            "user.delete",
            "user.restore",
            "user.delete",
            "user.disable",
            "user.create"
        ]
    );
}

#[tokio::test]
async fn guests_need_a_sponsor_and_an_expiry() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sponsor = admin.create_user("sponsor").await;
    let sponsor_id = sponsor["id"].as_str().unwrap();
    let guest = admin
        .post("/v1/users", json!({"user_name": "visitor", "kind": "guest", "sponsor_id": sponsor_id, "expires_at": in_days(30)}))
        .await
        .expect(201);
    assert_eq!(guest["kind"], "guest");
    assert_eq!(guest["sponsor_id"], sponsor_id);
    let problem = admin
        .post(
            "/v1/users",
            json!({"user_name": "v2", "kind": "guest", "sponsor_id": sponsor_id}),
        )
        .await
        .problem(422);
    assert_eq!(problem["field"], "expires_at");
    let problem = admin
        .post("/v1/users", json!({"user_name": "v3", "kind": "guest", "sponsor_id": sponsor_id, "expires_at": in_days(-1)}))
        .await
        .problem(422);
    assert_eq!(problem["field"], "expires_at");
    let problem = admin
        .post("/v1/users", json!({"user_name": "v4", "kind": "guest", "sponsor_id": guest["id"], "expires_at": in_days(3)}))
        .await
        .problem(422);
    assert_eq!(
        problem["field"], "sponsor_id",
        "a guest cannot sponsor a guest"
    );
    let problem = admin
        .post("/v1/users", json!({"user_name": "v5", "kind": "guest", "sponsor_id": sponsor_id, "expires_at": in_days(400)}))
        .await
        .problem(422);
    assert_eq!(problem["field"], "expires_at");
}

#[tokio::test]
async fn the_sweeper_disables_expired_users_and_purges_old_deletions() {
    let server = TestServer::start_with(|mut s| {
        s.sweep_interval_seconds = Some(1);
        s.deleted_retention_days = Some(0);
        s
    })
    .await;
    let admin = server.admin();
    let soon = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let contractor = admin
        .post(
            "/v1/users",
            json!({"user_name": "contractor", "expires_at": soon}),
        )
        .await
        .expect(201);
    let leaver = admin.create_user("leaver").await;
    admin
        .delete(&format!("/v1/users/{}", leaver["id"].as_str().unwrap()))
        .await
        .expect(200);
    server.advance(time::Duration::minutes(61));
    // The sweeper runs every second; poll its visible effects rather than timing it.
    let mut swept = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let state = admin
            .get(&format!("/v1/users/{}", contractor["id"].as_str().unwrap()))
            .await
            .body["state"]
            .clone();
        let purged = admin
            .get(&format!("/v1/users/{}", leaver["id"].as_str().unwrap()))
            .await
            .status
            == 404;
        if state == "disabled" && purged {
            swept = true;
            break;
        }
    }
    assert!(swept, "expired user disabled and old deletion purged");
    let expire = admin.audit("user.expire").await;
    assert_eq!(expire[0]["actor"]["kind"], "system");
    assert_eq!(admin.audit("user.purge").await.len(), 1);
}

#[tokio::test]
async fn nested_groups_refuse_cycles() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(
            admin
                .post("/v1/groups", json!({"name": name}))
                .await
                .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let add = |parent: &str, child: &str| {
        let admin = admin.clone();
        let (parent, child) = (parent.to_owned(), child.to_owned());
        async move {
            admin
                .post(
                    &format!("/v1/groups/{parent}/members"),
                    json!({"kind": "group", "id": child}),
                )
                .await
        }
    };
    add(&ids[0], &ids[1]).await.expect(201);
    add(&ids[1], &ids[2]).await.expect(201);
    let problem = add(&ids[2], &ids[0]).await.problem(409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("contain itself")
    );
    add(&ids[0], &ids[0]).await.problem(409);
    add(&ids[0], &ids[1]).await.problem(409);
    let user = admin.create_user("member").await;
    admin
        .post(
            &format!("/v1/groups/{}/members", ids[2]),
            json!({"kind": "user", "id": user["id"]}),
        )
        .await
        .expect(201);
    let members = admin
        .get(&format!("/v1/groups/{}/members", ids[2]))
        .await
        .expect(200);
    assert_eq!(members["items"][0]["member"]["kind"], "user");
    let groups = admin
        .get(&format!(
            "/v1/users/{}/groups",
            user["id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(groups["items"][0]["name"], "c");
    admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            ids[2],
            user["id"].as_str().unwrap()
        ))
        .await
        .expect(204);
    admin
        .delete(&format!(
            "/v1/groups/{}/members/user/{}",
            ids[2],
            user["id"].as_str().unwrap()
        ))
        .await
        .problem(404);
    admin
        .delete(&format!("/v1/groups/{}", ids[1]))
        .await
        .expect(204);
    let members = admin
        .get(&format!("/v1/groups/{}/members", ids[0]))
        .await
        .expect(200);
    assert!(
        members["items"].as_array().unwrap().is_empty(),
        "deleting a group removes its memberships"
    );
}

#[tokio::test]
async fn business_unit_tree_moves_but_never_below_itself() {
    let server = TestServer::start().await;
    let admin = server.admin();
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
    let root_id = sales["parent_id"].as_str().unwrap().to_owned();
    let problem = admin
        .patch(
            &format!("/v1/business-units/{}", sales["id"].as_str().unwrap()),
            json!({"parent_id": emea["id"]}),
        )
        .await
        .problem(409);
    assert_eq!(problem["field"], "parent_id");
    let moved = admin
        .patch(
            &format!("/v1/business-units/{}", emea["id"].as_str().unwrap()),
            json!({"parent_id": root_id}),
        )
        .await
        .expect(200);
    assert_eq!(moved["parent_id"], root_id.as_str());
    admin
        .delete(&format!("/v1/business-units/{root_id}"))
        .await
        .problem(409);
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "seller", "business_unit_id": sales["id"]}),
        )
        .await
        .expect(201);
    admin
        .delete(&format!(
            "/v1/business-units/{}",
            sales["id"].as_str().unwrap()
        ))
        .await
        .problem(409);
    admin
        .patch(
            &format!("/v1/users/{}", user["id"].as_str().unwrap()),
            json!({"business_unit_id": root_id}),
        )
        .await
        .expect(200);
    admin
        .delete(&format!(
            "/v1/business-units/{}",
            sales["id"].as_str().unwrap()
        ))
        .await
        .expect(204);
}

#[tokio::test]
async fn environments_and_their_scoped_assignments() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let dev = admin
        .post("/v1/environments", json!({"name": "dev"}))
        .await
        .expect(201);
    let prod = admin
        .post(
            "/v1/environments",
            json!({"name": "prod", "description": "live"}),
        )
        .await
        .expect(201);
    admin
        .post("/v1/environments", json!({"name": "dev"}))
        .await
        .problem(409);
    let dev_scope = format!("environment/{}", dev["id"].as_str().unwrap());
    let (_, dev_admin_key) = admin
        .principal_with_role("dev-admin", "tenant_administrator", &dev_scope)
        .await;
    let dev_admin = server.client(&dev_admin_key);
    dev_admin
        .patch(
            &format!("/v1/environments/{}", dev["id"].as_str().unwrap()),
            json!({"description": "sandbox"}),
        )
        .await
        .expect(200);
    dev_admin
        .patch(
            &format!("/v1/environments/{}", prod["id"].as_str().unwrap()),
            json!({"description": "mine"}),
        )
        .await
        .problem(403);
    let visible = dev_admin.get("/v1/environments").await.expect(200);
    let names: Vec<&str> = visible["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["dev"],
        "an environment-scoped admin sees only its environment"
    );
    dev_admin
        .post("/v1/users", json!({"user_name": "nope"}))
        .await
        .problem(403);
    // Deleting the environment removes the assignments scoped to it.
    admin
        .delete(&format!("/v1/environments/{}", dev["id"].as_str().unwrap()))
        .await
        .expect(204);
    dev_admin.get("/v1/environments").await.problem(403);
    let left = admin
        .get(&format!("/v1/role-assignments?scope={dev_scope}"))
        .await
        .expect(200);
    assert!(left["items"].as_array().unwrap().is_empty());
}

/// Writes that also read (adding a member reads the group first) must not starve each other of
/// connections: more concurrent writes than the pool holds all succeed.
#[tokio::test]
async fn concurrent_writes_beyond_the_pool_size_all_succeed() {
    let server = TestServer::start_with(|mut s| {
        s.max_connections = Some(4);
        s
    })
    .await;
    let admin = server.admin();
    let group = admin
        .post("/v1/groups", json!({"name": "crowd"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(admin.create_user(&format!("member-{i}")).await["id"].clone());
    }
    let adds: Vec<_> = users
        .iter()
        .map(|id| {
            let (admin, group, id) = (admin.clone(), group.clone(), id.clone());
            tokio::spawn(async move {
                admin
                    .post(
                        &format!("/v1/groups/{group}/members"),
                        json!({"kind": "user", "id": id}),
                    )
                    .await
                    .expect(201)
            })
        })
        .collect();
    for add in adds {
        add.await.unwrap();
    }
    let members = admin
        .get(&format!("/v1/groups/{group}/members?limit=100"))
        .await
        .expect(200);
    assert_eq!(members["items"].as_array().unwrap().len(), 16);
}
