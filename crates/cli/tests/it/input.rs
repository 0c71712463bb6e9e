//! Bad input is refused with the right status and a problem document naming the fault, and
//! changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

async fn user_count(server: &TestServer) -> usize {
    server.admin().get("/v1/users?limit=500").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn oversized_body_is_413_and_changes_nothing() {
    let server = TestServer::start_with(|mut s| {
        s.max_body_bytes = Some(4096);
        s
    })
    .await;
    let huge = "x".repeat(10_000);
    let problem = server
        .admin()
        .post("/v1/users", json!({"user_name": huge}))
        .await
        .problem(413);
    assert!(
        problem["detail"].as_str().unwrap().contains("4096"),
        "{problem}"
    );
    assert_eq!(user_count(&server).await, 0);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let server = TestServer::start().await;
    let client = server.admin();
    let response = client
        .http
        .post(server.url("/v1/users"))
        .bearer_auth(&server.admin_key)
        .header("content-type", "text/plain")
        .body(r#"{"user_name":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = client
        .http
        .post(server.url("/v1/users"))
        .bearer_auth(&server.admin_key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        415,
        "a body without a content type is refused"
    );
    assert_eq!(user_count(&server).await, 0);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start().await;
    for body in [
        r#"{"user_name": "a""#,
        r#"{"user_name": "a"} {"#,
        "",
        "null",
    ] {
        let response = server
            .admin()
            .http
            .post(server.url("/v1/users"))
            .bearer_auth(&server.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(user_count(&server).await, 0);
}

#[tokio::test]
async fn unknown_and_mistyped_fields_are_refused_with_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let problem = admin
        .post("/v1/users", json!({"user_name": "a", "is_admin": true}))
        .await
        .problem(400);
    assert_eq!(problem["field"], "is_admin");
    let problem = admin
        .post("/v1/users", json!({"user_name": 7}))
        .await
        .problem(400);
    assert_eq!(problem["field"], "user_name");
    let problem = admin
        .post("/v1/users", json!({"user_name": "a", "kind": "superuser"}))
        .await
        .problem(400);
    assert_eq!(problem["field"], "kind");
    let problem = admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": "nope"}, "role": "auditor"}),
        )
        .await
        .problem(400);
    assert_eq!(problem["field"], "principal.id");
    assert_eq!(user_count(&server).await, 0);
}

#[tokio::test]
async fn invalid_values_are_422_with_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for (body, field) in [
        (json!({"user_name": "   "}), "user_name"),
        (json!({"user_name": "a\u{7}b"}), "user_name"),
        (
            json!({"user_name": "ok", "email": "not-an-address"}),
            "email",
        ),
        (json!({"user_name": "ok", "kind": "guest"}), "sponsor_id"),
        (
            json!({"user_name": "ok", "business_unit_id": "0190f1c2-7a1b-7c3d-8e4f-0123456789ab"}),
            "business_unit_id",
        ),
    ] {
        let problem = admin.post("/v1/users", body.clone()).await.problem(422);
        assert_eq!(problem["field"], field, "{body}");
    }
    let problem = admin
        .post("/v1/environments", json!({"name": "Prod Env"}))
        .await
        .problem(422);
    assert_eq!(problem["field"], "name");
    assert_eq!(user_count(&server).await, 0);
}

#[tokio::test]
async fn bad_query_strings_and_paths_are_400() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin.get("/v1/users?limit=0").await.problem(422);
    admin.get("/v1/users?limit=abc").await.problem(400);
    admin.get("/v1/users?state=sleeping").await.problem(400);
    admin.get("/v1/users?cursor=garbage").await.problem(422);
    admin.get("/v1/users?surprise=1").await.problem(400);
    admin.get("/v1/users/not-a-uuid").await.problem(400);
    admin.get("/v1/audit?from=yesterday").await.problem(400);
}

#[tokio::test]
async fn missing_objects_are_404() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let nobody = "0190f1c2-7a1b-7c3d-8e4f-0123456789ab";
    for path in [
        "users",
        "groups",
        "service-principals",
        "environments",
        "business-units",
        "role-assignments",
        "tenants",
    ] {
        admin
            .get(&format!("/v1/{path}/{nobody}"))
            .await
            .problem(404);
    }
    admin
        .patch(&format!("/v1/users/{nobody}"), json!({"display_name": "x"}))
        .await
        .problem(404);
    admin
        .delete(&format!("/v1/groups/{nobody}"))
        .await
        .problem(404);
}

#[tokio::test]
async fn names_are_unique_case_insensitively_after_normalization() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin
        .post(
            "/v1/users",
            json!({"user_name": "Zoë", "email": "Zoe@Example.com"}),
        )
        .await
        .expect(201);
    // Decomposed ë, full-width letters and other cases are the same name.
    for clash in ["zoe\u{308}", "ＺＯË", "ZOË"] {
        let problem = admin
            .post("/v1/users", json!({"user_name": clash}))
            .await
            .problem(409);
        assert_eq!(problem["field"], "user_name", "{clash}");
    }
    let problem = admin
        .post(
            "/v1/users",
            json!({"user_name": "other", "email": "zoe@EXAMPLE.COM"}),
        )
        .await
        .problem(409);
    assert_eq!(problem["field"], "email");
    admin
        .post("/v1/groups", json!({"name": "Ops"}))
        .await
        .expect(201);
    admin
        .post("/v1/groups", json!({"name": "OPS"}))
        .await
        .problem(409);
    assert_eq!(user_count(&server).await, 1);
}

#[tokio::test]
async fn stale_etag_is_412_and_changes_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let created = admin.post("/v1/users", json!({"user_name": "etag"})).await;
    let first_tag = created.etag();
    assert_eq!(first_tag, "\"1\"");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/users/{id}");
    let updated = admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"display_name": "One"})),
            &[("if-match", &first_tag)],
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.etag(), "\"2\"");
    // A writer still holding the first version is refused.
    let stale = admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Two"})),
            &[("if-match", &first_tag)],
        )
        .await;
    let problem = stale.problem(412);
    assert!(problem["detail"].as_str().unwrap().contains("\"2\""));
    let stale_delete = admin
        .send(Method::DELETE, &path, None, &[("if-match", &first_tag)])
        .await;
    stale_delete.problem(412);
    let user = admin.get(&path).await.expect(200);
    assert_eq!(user["display_name"], "One");
    assert_eq!(user["state"], "active");
    // `*` only requires existence; weak tags never match.
    admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Three"})),
            &[("if-match", "*")],
        )
        .await
        .expect(200);
    admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Four"})),
            &[("if-match", "W/\"3\"")],
        )
        .await
        .problem(412);
}

#[tokio::test]
async fn patch_null_clears_and_absent_keeps() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "p", "email": "p@example.com", "display_name": "P"}),
        )
        .await
        .expect(201);
    let path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    let after = admin.patch(&path, json!({"email": null})).await.expect(200);
    assert_eq!(after["email"], serde_json::Value::Null);
    assert_eq!(after["display_name"], "P");
}

/// The framework's own refusals (a body over the limit, a path that does not decode) answer in
/// the form of the surface they hit: RFC 6749 JSON at the token endpoint, a page on the sign-in
/// pages, a problem document on the API; never plain text.
#[tokio::test]
async fn framework_rejections_answer_in_each_surfaces_own_form() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let huge = "x".repeat(100 * 1024);
    let content_type = |r: &reqwest::Response| {
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };

    for (path, status) in [
        ("/t/operator/oauth/token", 413),
        ("/t/%FF/oauth/token", 400),
        ("/t/operator/oauth/introspect", 413),
    ] {
        let body = if status == 413 {
            huge.as_str()
        } else {
            "grant_type=x"
        };
        let response = http
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("a={body}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            content_type(&response).starts_with("application/json"),
            "{path}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{path}: {error}");
        assert!(
            !error["error_description"].as_str().unwrap_or("").is_empty(),
            "{error}"
        );
    }

    for (path, status) in [("/t/operator/sign-in", 413), ("/t/%FF/sign-in", 400)] {
        let body = if status == 413 { huge.as_str() } else { "x" };
        let response = http
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={body}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(content_type(&response).starts_with("text/html"), "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Cannot continue"), "{page}");
    }

    let response = http
        .post(server.url("/v1/users"))
        .bearer_auth(&server.admin_key)
        .header("content-type", "application/json")
        .body(format!("{{\"user_name\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(content_type(&response), "application/problem+json");
}

/// Names that look alike are one name: a Cyrillic or Greek letter in place of its Latin twin
/// clashes (409), and characters that cannot be seen or that turn the text around are refused
/// (422), so no user, group or service principal can pose as another in a list.
#[tokio::test]
async fn look_alike_and_invisible_names_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin.create_user("paypal").await;
    admin
        .post("/v1/groups", json!({"name": "admins"}))
        .await
        .expect(201);
    for twin in ["p\u{430}yp\u{430}l", "\u{440}aypal", "PAYPA\u{217C}"] {
        let problem = admin
            .post("/v1/users", json!({"user_name": twin}))
            .await
            .problem(409);
        assert_eq!(problem["field"], "user_name", "{twin:?}");
    }
    admin
        .post("/v1/groups", json!({"name": "\u{430}dmins"}))
        .await
        .problem(409);
    for hidden in [
        "pay\u{200B}pal",
        "pay\u{00AD}pal",
        "pay\u{2060}pal",
        "\u{FEFF}paypal",
        "pay\u{202E}lap",
        "\u{200B}",
    ] {
        let problem = admin
            .post("/v1/users", json!({"user_name": hidden}))
            .await
            .problem(422);
        assert_eq!(problem["field"], "user_name", "{hidden:?}");
        admin
            .post("/v1/service-principals", json!({"name": hidden}))
            .await
            .problem(422);
    }
    let users = admin.get("/v1/users?limit=500").await.expect(200);
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        1,
        "paypal and no look-alike: {users}"
    );
}

/// Keys stored before they were skeletons are recomputed once at start, so names made then are
/// protected from look-alikes too.
#[tokio::test]
async fn name_keys_made_by_an_older_server_are_upgraded_at_start() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin.create_user("mary").await;
    // As an older server stored it: folded, but not reduced to its skeleton.
    server
        .db
        .execute("UPDATE users SET user_name_key = 'mary' WHERE user_name = 'mary'")
        .await
        .unwrap();
    server
        .db
        .execute("DELETE FROM data_upgrades")
        .await
        .unwrap();
    let node = server.another_node(|s| s).await;
    let stored = server
        .db
        .texts("SELECT user_name_key FROM users WHERE user_name = 'mary'")
        .await;
    assert_eq!(stored, [portcullis_core::names::name_key("mary")]);
    assert_ne!(stored, ["mary"], "the key is a skeleton now");
    node.client(&server.admin_key)
        .post("/v1/users", json!({"user_name": "rnary"}))
        .await
        .problem(409);
}
