//! A tenant cannot lock itself out: whatever would leave no active user or service principal
//! able to assign roles tenant-wide — deleting, disabling or expiring the last one, taking its
//! role, its group or its group's role, weakening its custom role, or a deny assignment — is
//! refused with 409 and changes nothing, also when such changes race on both stores.

use reqwest::Method;
use serde_json::{Value, json};

use crate::administrators::device_token;
use crate::concurrency::all_at_once;
use crate::device::command_line;
use crate::harness::{BIN, Client, Reply, TestServer};
use crate::signin::{Browser, PASSWORD, user_with_password};

#[track_caller]
fn locked_out(reply: Reply) {
    let problem = reply.problem(409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nobody in the tenant able to assign roles"),
        "{problem}"
    );
}

async fn assignment_of(admin: &Client, kind: &str, id: &str) -> Vec<String> {
    admin
        .get(&format!(
            "/v1/role-assignments?principal_kind={kind}&principal_id={id}"
        ))
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Deletes the service principal `admin` acts as (the bootstrap administrator).
async fn delete_the_bootstrap_administrator(admin: &Client) {
    let boot = admin.get("/v1/me").await.expect(200)["principal"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .send(
            Method::DELETE,
            &format!("/v1/service-principals/{boot}"),
            None,
            &[],
        )
        .await
        .expect(204);
}

async fn assign(admin: &Client, principal: Value, role: &str) -> String {
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": principal, "role": role}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_last_who_can_assign_roles_cannot_remove_themselves_in_any_way() {
    let server = TestServer::start().await;
    let admin = server.admin();
    // For the end: a person who will be the last, signing in with a password only.
    let client = command_line(&server).await;
    let alice = user_with_password(&server, "alice", false).await;
    admin
        .send(
            Method::PUT,
            "/v1/administrator-policy",
            Some(json!({"mfa": "none", "recent_actions": []})),
            &[],
        )
        .await
        .expect(200);
    let me = admin.get("/v1/me").await.expect(200);
    let boot = me["principal"]["id"].as_str().unwrap().to_owned();
    let boot_ref = json!({"kind": "service_principal", "id": boot});
    let direct = assignment_of(&admin, "service_principal", &boot).await;
    assert_eq!(direct.len(), 1);

    // The bootstrap administrator is the only one: none of these may take its power.
    let path = format!("/v1/service-principals/{boot}");
    locked_out(admin.send(Method::DELETE, &path, None, &[]).await);
    locked_out(
        admin
            .send(
                Method::PATCH,
                &path,
                Some(json!({"state": "disabled"})),
                &[],
            )
            .await,
    );
    locked_out(
        admin
            .send(
                Method::DELETE,
                &format!("/v1/role-assignments/{}", direct[0]),
                None,
                &[],
            )
            .await,
    );
    locked_out(
        admin
            .post(
                "/v1/deny-assignments",
                json!({"name": "freeze", "principals": [boot_ref], "actions": ["portcullis:role.assign"]}),
            )
            .await,
    );
    // Nothing changed, and the refusals are not half done.
    assert_eq!(
        admin.get("/v1/me").await.expect(200)["grants"],
        me["grants"]
    );
    assert!(
        admin.get("/v1/deny-assignments").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Held through a group instead: the membership, the group and its assignment are guarded.
    let admins = admin
        .post("/v1/groups", json!({"name": "admins"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_assignment = assign(
        &admin,
        json!({"kind": "group", "id": admins}),
        "tenant_administrator",
    )
    .await;
    admin
        .post(&format!("/v1/groups/{admins}/members"), boot_ref.clone())
        .await
        .expect(201);
    admin
        .send(
            Method::DELETE,
            &format!("/v1/role-assignments/{}", direct[0]),
            None,
            &[],
        )
        .await
        .expect(204);
    locked_out(
        admin
            .send(
                Method::DELETE,
                &format!("/v1/groups/{admins}/members/service_principal/{boot}"),
                None,
                &[],
            )
            .await,
    );
    locked_out(
        admin
            .send(Method::DELETE, &format!("/v1/groups/{admins}"), None, &[])
            .await,
    );
    locked_out(
        admin
            .send(
                Method::DELETE,
                &format!("/v1/role-assignments/{group_assignment}"),
                None,
                &[],
            )
            .await,
    );

    // Held through a custom role: weakening the role is guarded too.
    let keyholder = admin
        .post(
            "/v1/custom-roles",
            json!({"name": "Keyholder", "permissions": [
                {"action": "portcullis:role.assign"}, {"action": "portcullis:role.write"},
                {"action": "portcullis:role.read"}
            ]}),
        )
        .await
        .expect(201);
    let keyholder_id = keyholder["id"].as_str().unwrap().to_owned();
    let keyholder_assignment = assign(&admin, boot_ref.clone(), &keyholder_id).await;
    admin
        .send(
            Method::DELETE,
            &format!("/v1/role-assignments/{group_assignment}"),
            None,
            &[],
        )
        .await
        .expect(204);
    let role_path = format!("/v1/custom-roles/{keyholder_id}");
    locked_out(
        admin
            .send(
                Method::PUT,
                &role_path,
                Some(json!({"name": "Keyholder", "permissions": [
                    {"action": "portcullis:role.write"}, {"action": "portcullis:role.read"}
                ]})),
                &[],
            )
            .await,
    );
    locked_out(
        admin
            .send(
                Method::DELETE,
                &format!("/v1/role-assignments/{keyholder_assignment}"),
                None,
                &[],
            )
            .await,
    );

    // A person becomes the last one. She may not disable, expire or delete herself either.
    assign(
        &admin,
        json!({"kind": "user", "id": alice}),
        "tenant_administrator",
    )
    .await;
    admin
        .send(
            Method::DELETE,
            &format!("/v1/role-assignments/{keyholder_assignment}"),
            None,
            &[],
        )
        .await
        .expect(204);
    let mut browser = Browser::new(&server);
    browser.sign_in("operator", "alice", PASSWORD).await;
    let token = device_token(&server, &client, &mut browser, &[], None).await;
    let as_alice = server.client(&token);
    let herself = format!("/v1/users/{alice}");
    locked_out(
        as_alice
            .send(
                Method::PATCH,
                &herself,
                Some(json!({"state": "disabled"})),
                &[],
            )
            .await,
    );
    locked_out(
        as_alice
            .send(
                Method::PATCH,
                &herself,
                Some(json!({"expires_at": "2099-01-01T00:00:00Z"})),
                &[],
            )
            .await,
    );
    locked_out(as_alice.send(Method::DELETE, &herself, None, &[]).await);
    // She may still remove the bootstrap administrator, who holds nothing now.
    as_alice
        .send(Method::DELETE, &path, None, &[])
        .await
        .expect(204);
    let user = as_alice.get(&herself).await.expect(200);
    assert_eq!(user["state"], "active");
    assert!(user["expires_at"].is_null());
}

#[tokio::test]
async fn two_administrators_removing_each_other_at_once_leave_one() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (a, a_key) = admin
        .principal_with_role("ops-a", "tenant_administrator", "tenant")
        .await;
    let (b, b_key) = admin
        .principal_with_role("ops-b", "tenant_administrator", "tenant")
        .await;
    delete_the_bootstrap_administrator(&admin).await;

    // Each deletes and disables the other, eight requests at once.
    let clients = [(server.client(&a_key), b), (server.client(&b_key), a)];
    let results = all_at_once(8, |i| {
        let (caller, other) = clients[i % 2].clone();
        let path = format!("/v1/service-principals/{other}");
        async move {
            if i < 4 {
                caller.send(Method::DELETE, &path, None, &[]).await.status
            } else {
                caller
                    .send(
                        Method::PATCH,
                        &path,
                        Some(json!({"state": "disabled"})),
                        &[],
                    )
                    .await
                    .status
            }
        }
    })
    .await;
    // Refused as the last (409), already out (401, or 403 once its grants are gone), or done
    // (204, 200, 404 when gone).
    the_one_standing(&clients, &results, &[200, 204, 401, 403, 404, 409]).await;
}

/// Administrators through one group taking each other out of it, while other changes commit
/// in between: each removal is checked against the tenant as its write finds it (the engine
/// its request decided with, moved forward by the changes since), so exactly one stays.
#[tokio::test]
async fn two_group_administrators_removing_each_other_amid_other_changes_leave_one() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let group = admin
        .post("/v1/groups", json!({"name": "admins"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assign(
        &admin,
        json!({"kind": "group", "id": group}),
        "tenant_administrator",
    )
    .await;
    let mut members = Vec::new();
    for name in ["ops-a", "ops-b"] {
        let (id, key) = admin
            .principal_with_role(name, "tenant_administrator", "tenant")
            .await;
        admin
            .post(
                &format!("/v1/groups/{group}/members"),
                json!({"kind": "service_principal", "id": id}),
            )
            .await
            .expect(201);
        for assignment in assignment_of(&admin, "service_principal", &id).await {
            admin
                .send(
                    Method::DELETE,
                    &format!("/v1/role-assignments/{assignment}"),
                    None,
                    &[],
                )
                .await
                .expect(204);
        }
        members.push((id, key));
    }
    delete_the_bootstrap_administrator(&admin).await;

    let clients = [
        (server.client(&members[0].1), members[1].0.clone()),
        (server.client(&members[1].1), members[0].0.clone()),
    ];
    let results = all_at_once(12, |i| {
        let (caller, other) = clients[i % 2].clone();
        let group = group.clone();
        async move {
            if i < 4 {
                caller
                    .send(
                        Method::DELETE,
                        &format!("/v1/groups/{group}/members/service_principal/{other}"),
                        None,
                        &[],
                    )
                    .await
                    .status
            } else {
                // Unrelated changes, so most removals find the tenant moved on.
                caller
                    .post("/v1/users", json!({"user_name": format!("bystander-{i}")}))
                    .await
                    .status
            }
        }
    })
    .await;
    let one = the_one_standing(&clients, &results, &[201, 204, 401, 403, 404, 409]).await;
    let members = clients[one]
        .0
        .get(&format!("/v1/groups/{group}/members"))
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(members, 1, "one member stays in the group: {results:?}");
}

/// Checks that every answer in `results` is one of `expected` and that exactly one of the
/// callers can still act (its key works and it may read role assignments); returns which.
async fn the_one_standing(
    clients: &[(Client, String); 2],
    results: &[reqwest::StatusCode],
    expected: &[u16],
) -> usize {
    assert!(
        results.iter().all(|s| expected.contains(&s.as_u16())),
        "{results:?}"
    );
    let mut standing = Vec::new();
    for (n, (client, _)) in clients.iter().enumerate() {
        if client.get("/v1/role-assignments").await.status == 200 {
            standing.push(n);
        }
    }
    assert_eq!(
        standing.len(),
        1,
        "exactly one of them can still administer: {results:?}"
    );
    standing[0]
}

#[tokio::test]
async fn a_tenant_locked_out_anyway_is_recovered_on_the_server_itself() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let boot = admin.get("/v1/me").await.expect(200)["principal"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The last administrator revokes its own last key: still there, but nobody can act as it.
    let keys = admin
        .get(&format!("/v1/service-principals/{boot}/api-keys"))
        .await
        .expect(200)["items"]
        .take();
    let key_id = keys[0]["id"].as_str().unwrap();
    admin
        .send(
            Method::DELETE,
            &format!("/v1/service-principals/{boot}/api-keys/{key_id}"),
            None,
            &[],
        )
        .await
        .expect(200);
    admin.get("/v1/me").await.problem(401);

    let recover = |tenant: &str| {
        tokio::process::Command::new(BIN)
            .args(["recover", "--tenant", tenant])
            .env("PORTCULLIS_DATA_DIR", server.data_dir())
            .env("PORTCULLIS_DATABASE_URL", &server.db.url)
            .env("PORTCULLIS_KEK", server.kek())
            .env_remove("PORTCULLIS_CONFIG")
            .output()
    };
    let unknown = recover("nosuch").await.unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no tenant named"),
        "{unknown:?}"
    );

    let output = recover("operator").await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("pcs_"))
        .expect("the key is printed")
        .to_owned();
    let recovered = server.client(&key);
    let me = recovered.get("/v1/me").await.expect(200);
    assert_eq!(me["grants"][0]["role"], "tenant_administrator");
    assert!(
        me["display"]
            .as_str()
            .unwrap()
            .starts_with("recovery-admin-")
    );
    let events = recovered.audit("tenant.recover").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"]["display"], "portcullis recover");
    let keys = recovered
        .get(&format!(
            "/v1/service-principals/{}/api-keys",
            me["principal"]["id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    let expires = time::OffsetDateTime::parse(
        keys["items"][0]["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left <= time::Duration::hours(24) && left > time::Duration::hours(23));
}

#[tokio::test]
async fn the_first_key_expires_once_a_person_with_a_second_factor_has_taken_over() {
    let server = TestServer::start_with(|mut s| {
        s.sweep_interval_seconds = Some(1);
        s.bootstrap_key_days = Some(3);
        s
    })
    .await;
    let admin = server.admin();
    let boot = admin.get("/v1/me").await.expect(200)["principal"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys_path = format!("/v1/service-principals/{boot}/api-keys");
    let expiry = |keys: Value| keys["items"][0]["expires_at"].clone();
    assert!(expiry(admin.get(&keys_path).await.expect(200)).is_null());

    // A person with a second factor but no power to assign roles is not a takeover, nor is an
    // administrator without one.
    let (_, _) = crate::mfa::enrolled(&server, "mallory").await;
    let alice = user_with_password(&server, "alice", false).await;
    assign(
        &admin,
        json!({"kind": "user", "id": alice}),
        "tenant_administrator",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(expiry(admin.get(&keys_path).await.expect(200)).is_null());

    // Mallory is made an administrator: from now on the key has three days left.
    let mallory = admin.get("/v1/users?prefix=mallory").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assign(
        &admin,
        json!({"kind": "user", "id": mallory}),
        "privileged_role_administrator",
    )
    .await;
    let events = admin
        .audit_once("api_key.first_key_expiry", |e| !e.is_empty())
        .await;
    assert_eq!(events.len(), 1, "set once");
    let at = time::OffsetDateTime::parse(
        expiry(admin.get(&keys_path).await.expect(200))
            .as_str()
            .unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = at - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::days(3) - time::Duration::minutes(1)
            && left <= time::Duration::days(3)
    );
    // The key still works until then.
    admin.get("/v1/me").await.expect(200);
    server.advance(time::Duration::days(3) + time::Duration::minutes(1));
    admin.get("/v1/me").await.problem(401);
}
