//! The operational surface and anonymous access.

use serde_json::json;

use portcullis_server::Settings;

use crate::harness::TestServer;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_answer_anonymously() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    assert_eq!(anon.get("/healthz").await.expect(200)["status"], "ok");
    assert_eq!(anon.get("/readyz").await.expect(200)["status"], "ready");
    let doc = anon.get("/v1/openapi.json").await.expect(200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    // Drive one request so the metrics have a series for its route.
    server.admin().get("/v1/users").await.expect(200);
    let metrics = server.metrics().await;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/v1/users\""),
        "routes are labelled by template: {metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds"),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_documented_admin_operation_refuses_anonymous_callers() {
    // Every refused call counts against the source address; allow this test's many probes.
    let server = TestServer::start_with(|s| Settings {
        auth_failures_per_minute: Some(10_000),
        ..s
    })
    .await;
    let doc = server.anonymous().get("/v1/openapi.json").await.expect(200);
    let public = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/t/{tenant}/.well-known/authzen-configuration",
        "/.well-known/authzen-configuration/t/{tenant}",
        "/.well-known/oauth-protected-resource/v1",
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20, "the document lists the API");
    for (path, item) in paths {
        if public.contains(&path.as_str()) {
            continue;
        }
        // Fill path parameters with a well-formed id so routing succeeds.
        let concrete = path
            .split('/')
            .map(|seg| match seg {
                "{kind}" => "user",
                s if s.starts_with('{') => "0190f1c2-7a1b-7c3d-8e4f-0123456789ab",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method != reqwest::Method::GET && method != reqwest::Method::DELETE)
                .then(|| json!({}));
            let reply = server
                .anonymous()
                .send(method.clone(), &concrete, body, &[])
                .await;
            assert_eq!(
                reply.status.as_u16(),
                401,
                "{method} {concrete} must need a credential"
            );
            assert_eq!(
                reply.headers.get("www-authenticate").unwrap(),
                "Bearer realm=\"portcullis\""
            );
        }
    }
}

#[tokio::test]
async fn openapi_documents_every_route_the_server_serves() {
    let server = TestServer::start().await;
    let doc = server.anonymous().get("/v1/openapi.json").await.expect(200);
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/v1/me",
        "/v1/tenants",
        "/v1/tenants/{id}",
        "/v1/environments",
        "/v1/business-units/{id}",
        "/v1/users/{id}/restore",
        "/v1/groups/{id}/members",
        "/v1/service-principals/{id}/api-keys/{key_id}",
        "/v1/role-assignments",
        "/v1/audit",
        "/v1/audit/chain",
    ] {
        assert!(paths.contains_key(expected), "{expected} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn responses_carry_request_ids_and_safe_headers() {
    let server = TestServer::start().await;
    let reply = server.admin().get("/v1/me").await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("x-request-id").is_some());
    assert_eq!(reply.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(
        reply.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
    // A request id sent by the client is kept, so logs can be correlated across services.
    let reply = server
        .admin()
        .send(
            reqwest::Method::GET,
            "/v1/me",
            None,
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    assert_eq!(reply.headers.get("x-request-id").unwrap(), "trace-me-42");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let server = TestServer::start().await;
    server.admin().get("/v1/nothing-here").await.problem(404);
    server
        .admin()
        .send(reqwest::Method::PUT, "/v1/users", Some(json!({})), &[])
        .await
        .problem(405);
}
