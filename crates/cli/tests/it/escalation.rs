//! Privilege escalation through the admin API, table-driven: every endpoint that acts on a
//! principal is tried against one that holds a role, by an administrator whose own role does not
//! include `role.assign`; each refusal is followed by reading everything back, so "403" is not
//! enough on its own — nothing may have changed either.

use reqwest::Method;
use serde_json::{Value, json};

use crate::authorize::{app, approve};
use crate::harness::{Client, TestServer};
use crate::passkeys::user_with_passkey;
use crate::signin::{Browser, PASSWORD};
use crate::soft_passkey::SoftPasskey;

/// Every role assignment of the tenant, in a comparable form.
async fn assignments(admin: &Client) -> Vec<String> {
    let page = admin
        .get("/v1/role-assignments?limit=500")
        .await
        .expect(200);
    let mut all: Vec<String> = page["items"]
        .as_array()
        .expect("a page of assignments")
        .iter()
        .map(Value::to_string)
        .collect();
    all.sort();
    all
}

/// Everything about a user an administrator can read: the user, their groups, password status
/// and stored hash, sessions, passkeys, consents — and every role assignment of the tenant.
async fn everything_about(server: &TestServer, user: &str) -> Vec<String> {
    let admin = server.admin();
    let mut seen = Vec::new();
    for path in [
        format!("/v1/users/{user}"),
        format!("/v1/users/{user}/groups"),
        format!("/v1/users/{user}/password"),
        format!("/v1/users/{user}/sessions"),
        format!("/v1/users/{user}/passkeys"),
        format!("/v1/users/{user}/consents"),
    ] {
        let body = admin.get(&path).await.expect(200);
        seen.push(format!("{path}: {body}"));
    }
    seen.extend(
        server
            .db
            .texts(&format!(
                "SELECT hash FROM user_passwords WHERE user_id = '{user}'"
            ))
            .await,
    );
    seen.extend(assignments(&admin).await);
    seen
}

#[tokio::test]
async fn a_user_administrator_cannot_touch_a_tenant_administrator_through_any_user_endpoint() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (helpdesk_id, helpdesk_key) = admin
        .principal_with_role("helpdesk", "user_administrator", "tenant")
        .await;
    let helpdesk = server.client(&helpdesk_key);

    // The boss holds tenant_administrator, and has a password, a passkey, a live session and
    // an approved application, so that "changed nothing" means something for each endpoint.
    let mut key = SoftPasskey::new();
    let boss = user_with_passkey(&server, "boss", &mut key).await;
    let granted = admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": boss}, "role": "tenant_administrator"}),
        )
        .await
        .expect(201);
    let (partner, _) = app(&server, "Partner App", json!({"require_consent": true})).await;
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.sign_in("operator", "boss", PASSWORD).await.status,
        303
    );
    assert!(approve(&mut browser, &partner).await.contains_key("code"));
    let passkey = admin
        .get(&format!("/v1/users/{boss}/passkeys"))
        .await
        .expect(200)["items"]
        .take()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Groups: one that holds a role with the boss in it, one that holds a role without them.
    let group = async |name: &str, role: &str| {
        let id = admin
            .post("/v1/groups", json!({"name": name}))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        admin
            .post(
                "/v1/role-assignments",
                json!({"principal": {"kind": "group", "id": id}, "role": role}),
            )
            .await
            .expect(201);
        id
    };
    let auditors = group("auditors", "auditor").await;
    let readers = group("readers", "security_reader").await;
    admin
        .post(
            &format!("/v1/groups/{auditors}/members"),
            json!({"kind": "user", "id": boss}),
        )
        .await
        .expect(201);

    let strong = "lantern quarry velvet compass";
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PATCH,
            format!("/v1/users/{boss}"),
            Some(json!({"email": "boss@attacker.example"})),
        ),
        (
            Method::PATCH,
            format!("/v1/users/{boss}"),
            Some(json!({"state": "disabled"})),
        ),
        (
            Method::PATCH,
            format!("/v1/users/{boss}"),
            Some(json!({"user_name": "former-boss"})),
        ),
        (Method::DELETE, format!("/v1/users/{boss}"), None),
        (Method::POST, format!("/v1/users/{boss}/restore"), None),
        (Method::POST, format!("/v1/users/{boss}/purge"), None),
        (
            Method::PUT,
            format!("/v1/users/{boss}/password"),
            Some(json!({"password": strong, "must_change": false})),
        ),
        (Method::DELETE, format!("/v1/users/{boss}/password"), None),
        (Method::DELETE, format!("/v1/users/{boss}/sessions"), None),
        (
            Method::DELETE,
            format!("/v1/users/{boss}/passkeys/{passkey}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/users/{boss}/consents/{partner}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/groups/{readers}/members"),
            Some(json!({"kind": "user", "id": boss})),
        ),
        (
            Method::DELETE,
            format!("/v1/groups/{auditors}/members/user/{boss}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/role-assignments/{}", granted["id"].as_str().unwrap()),
            None,
        ),
        (
            Method::POST,
            "/v1/role-assignments".to_owned(),
            Some(
                json!({"principal": {"kind": "service_principal", "id": helpdesk_id}, "role": "tenant_administrator"}),
            ),
        ),
    ];

    let before = everything_about(&server, &boss).await;
    assert!(
        before.iter().any(|s| s.contains("Partner App"))
            && before.iter().any(|s| s.contains("Laptop")),
        "the boss has a consent and a passkey to lose: {before:#?}"
    );
    for (method, path, body) in &cases {
        let reply = helpdesk.send(method.clone(), path, body.clone(), &[]).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        reply.problem(403);
        assert_eq!(
            everything_about(&server, &boss).await,
            before,
            "{method} {path} was refused but changed something"
        );
    }
    // The boss is still signed in, and their passkey and application still work for them.
    assert_eq!(browser.get("/t/operator/account").await.status, 200);

    // The same user administrator manages ordinary users with the same endpoints.
    let plain = admin.create_user("plain").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    helpdesk
        .send(
            Method::PUT,
            &format!("/v1/users/{plain}/password"),
            Some(json!({"password": strong})),
            &[],
        )
        .await
        .expect(204);
    helpdesk
        .delete(&format!("/v1/users/{plain}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn an_environment_administrator_cannot_assign_roles_tenant_wide() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let dev = admin
        .post("/v1/environments", json!({"name": "dev"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dev_scope = format!("environment/{dev}");
    let (env_admin_id, env_admin_key) = admin
        .principal_with_role("dev-admin", "environment_admin", &dev_scope)
        .await;
    let env_admin = server.client(&env_admin_key);
    let bystander = admin
        .post("/v1/service-principals", json!({"name": "bystander"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let before = assignments(&admin).await;
    for (principal, role, scope) in [
        (&env_admin_id, "tenant_administrator", Some("tenant")),
        (&env_admin_id, "tenant_administrator", None),
        (
            &env_admin_id,
            "privileged_role_administrator",
            Some("tenant"),
        ),
        (&env_admin_id, "environment_admin", Some("tenant")),
        (&bystander, "user_administrator", Some("tenant")),
        (&bystander, "environment_admin", None),
    ] {
        let mut body =
            json!({"principal": {"kind": "service_principal", "id": principal}, "role": role});
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        env_admin
            .post("/v1/role-assignments", body.clone())
            .await
            .problem(403);
        assert_eq!(
            assignments(&admin).await,
            before,
            "refused but assigned: {body}"
        );
    }
    // What the role is for still works: assigning roles inside its own environment.
    env_admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "service_principal", "id": bystander}, "role": "environment_maker", "scope": dev_scope}),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn a_security_administrator_mints_keys_only_for_principals_without_roles() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, security_key) = admin
        .principal_with_role("secadm", "security_administrator", "tenant")
        .await;
    let security = server.client(&security_key);
    // A principal holding a role (with a key of its own already), and one holding none.
    let (privileged, _) = admin
        .principal_with_role("deployer", "user_administrator", "tenant")
        .await;
    let ordinary = admin
        .post("/v1/service-principals", json!({"name": "batch"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = async |id: &str| -> Value {
        admin
            .get(&format!("/v1/service-principals/{id}/api-keys"))
            .await
            .expect(200)["items"]
            .take()
    };
    let existing = keys(&privileged).await;
    let existing_key = existing[0]["id"].as_str().unwrap().to_owned();
    let before = (existing.clone(), assignments(&admin).await);

    security
        .post(
            &format!("/v1/service-principals/{privileged}/api-keys"),
            json!({}),
        )
        .await
        .problem(403);
    assert_eq!((keys(&privileged).await, assignments(&admin).await), before);
    // Revoking its key, or making it an OAuth client whose secret the caller would choose, is
    // refused the same way.
    security
        .delete(&format!(
            "/v1/service-principals/{privileged}/api-keys/{existing_key}"
        ))
        .await
        .problem(403);
    security
        .send(
            Method::PUT,
            &format!("/v1/service-principals/{privileged}/oauth-client"),
            Some(json!({"grant_types": ["client_credentials"], "scopes": ["orders:read"]})),
            &[],
        )
        .await
        .problem(403);
    assert_eq!((keys(&privileged).await, assignments(&admin).await), before);
    admin
        .get(&format!("/v1/service-principals/{privileged}/oauth-client"))
        .await
        .problem(404);

    // A principal that holds no role is the security administrator's to equip.
    let issued = security
        .post(
            &format!("/v1/service-principals/{ordinary}/api-keys"),
            json!({}),
        )
        .await
        .expect(201);
    assert!(issued["secret"].as_str().unwrap().starts_with("pcs_"));
    assert_eq!(keys(&ordinary).await.as_array().unwrap().len(), 1);
}

/// A guardrail on a group: its members may not delete users. A user administrator in that group
/// must not be able to leave it (the group holds no role, so leaving looks harmless) and then
/// do what the guardrail forbids; nor join a group the guardrail exempts.
#[tokio::test]
async fn a_user_administrator_cannot_step_around_a_deny_assignment_through_groups() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (helpdesk_id, helpdesk_key) = admin
        .principal_with_role("helpdesk", "user_administrator", "tenant")
        .await;
    let helpdesk = server.client(&helpdesk_key);
    let me = json!({"kind": "service_principal", "id": helpdesk_id});
    let group = async |name: &str| {
        admin
            .post("/v1/groups", json!({"name": name}))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let contractors = group("contractors").await;
    let break_glass = group("break-glass").await;
    admin
        .post(&format!("/v1/groups/{contractors}/members"), me.clone())
        .await
        .expect(201);
    admin
        .post(
            "/v1/deny-assignments",
            json!({"name": "contractors delete no one",
                   "principals": [{"kind": "group", "id": contractors}],
                   "excluded": [{"kind": "group", "id": break_glass}],
                   "actions": ["user.delete"]}),
        )
        .await
        .expect(201);
    let victim = admin.create_user("victim").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    helpdesk
        .delete(&format!("/v1/users/{victim}"))
        .await
        .problem(403);

    // Leaving the denied group lifts the guardrail…
    let left = helpdesk
        .delete(&format!(
            "/v1/groups/{contractors}/members/service_principal/{helpdesk_id}"
        ))
        .await
        .status
        .as_u16();
    let deleted_after_leaving = helpdesk
        .delete(&format!("/v1/users/{victim}"))
        .await
        .status
        .as_u16();
    // …and so, with the administrator back in it, does joining the exempt group.
    if left != 403 {
        admin
            .post(&format!("/v1/groups/{contractors}/members"), me.clone())
            .await
            .expect(201);
    }
    let second = admin.create_user("second-victim").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let joined = helpdesk
        .post(&format!("/v1/groups/{break_glass}/members"), me.clone())
        .await
        .status
        .as_u16();
    let deleted_after_joining = helpdesk
        .delete(&format!("/v1/users/{second}"))
        .await
        .status
        .as_u16();
    assert_eq!(
        (left, deleted_after_leaving, joined, deleted_after_joining),
        (403, 403, 403, 403),
        "(leave the denied group, then delete; join the exempt group, then delete)"
    );
    for user in [&victim, &second] {
        assert_eq!(
            admin.get(&format!("/v1/users/{user}")).await.expect(200)["state"],
            "active"
        );
    }
}
