//! The OAuth 2.0 token endpoint and its metadata: client credentials for service principals,
//! RFC 9068 JWT access tokens checked against the published JWKS, and the RFC 6749 §5.2 errors
//! for every way a request can be wrong.

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestServer;

/// A service principal set up as a client-credentials OAuth client; its id and secret.
pub(crate) async fn client(server: &TestServer, name: &str) -> (String, String) {
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": name}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap().to_owned();
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{id}/oauth-client"),
            Some(json!({
                "grant_types": ["client_credentials"],
                "scopes": ["orders:read", "orders:write"],
                "resources": ["https://api.example.com", "https://billing.example.com"],
                "access_token_seconds": 600,
            })),
            &[],
        )
        .await
        .expect(200);
    let key = admin
        .post(&format!("/v1/service-principals/{id}/api-keys"), json!({}))
        .await
        .expect(201);
    (id, key["secret"].as_str().unwrap().to_owned())
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub(crate) async fn token_request(
    server: &TestServer,
    tenant: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(server.url(&format!("/t/{tenant}/oauth/token")))
        .form(form);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

pub(crate) async fn jwks(server: &TestServer, tenant: &str) -> JwkSet {
    reqwest::get(server.url(&format!("/t/{tenant}/jwks")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_names_the_tenants_issuer_and_endpoints() {
    let server = TestServer::start().await;
    let metadata: Value = reqwest::get(server.url("/t/operator/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = format!("http://localhost:{}/t/operator", server.addr.port());
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    // Every algorithm a client may choose for its tokens, RS256 among them (OpenID Connect
    // Discovery 1.0, section 3).
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256", "EdDSA"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let rfc8414: Value =
        reqwest::get(server.url("/.well-known/oauth-authorization-server/t/operator"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(rfc8414, metadata, "RFC 8414 and OIDC discovery agree");
    let keys = jwks(&server, "operator").await;
    assert_eq!(keys.keys.len(), 1);
    let key = serde_json::to_value(&keys.keys[0]).unwrap();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert!(key.get("d").is_none(), "no private part is published");
    assert_eq!(
        reqwest::get(server.url("/t/nobody/jwks"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_client_gets_a_jwt_access_token_that_verifies_against_the_jwks() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    let (status, headers, body) = token_request(
        &server,
        "operator",
        Some(&basic(&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
            ("resource", "https://billing.example.com"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "orders:read");
    let token = body["access_token"].as_str().unwrap();

    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let keys = jwks(&server, "operator").await;
    let jwk = keys
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let issuer = format!("http://localhost:{}/t/operator", server.addr.port());
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://billing.example.com"]);
    validation.set_issuer(&[&issuer]);
    let claims = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);

    // client_secret_post works too; without `scope` the client gets every allowed scope, and
    // without `resource` the first allowed resource is the audience.
    let (status, _, body) = token_request(
        &server,
        "operator",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "orders:read orders:write");
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(body["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["aud"], "https://api.example.com");
}

/// A request (Authorization header and form) and the status and `error` it must get.
type Case<'a> = (Option<String>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);

#[tokio::test]
async fn bad_token_requests_get_the_rfc_6749_error_codes() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    let (other_id, other_secret) = client(&server, "billing-sync").await;
    let good = basic(&id, &secret);
    let grant = ("grant_type", "client_credentials");
    let cases: Vec<Case> = vec![
        (
            Some(good.clone()),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some(good.clone()),
            vec![("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some(good.clone()),
            vec![grant, ("scope", "orders:read admin")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some(good.clone()),
            vec![grant, ("resource", "https://evil.example")],
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            Some(good.clone()),
            vec![grant, ("scope", "orders:read"), ("scope", "orders:write")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some(good.clone()),
            vec![grant, ("client_id", &id), ("client_secret", &secret)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            None,
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(basic(&id, "pcs_wrong")),
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        // Another client's valid secret under this client's id: token substitution between clients.
        (
            Some(basic(&id, &other_secret)),
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(basic("not-a-uuid", &secret)),
            vec![grant],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    for (authorization, form, status, error) in cases {
        let (got, headers, body) =
            token_request(&server, "operator", authorization.as_deref(), &form).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{form:?}: {body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic")
            );
        }
    }
    assert_eq!(other_id.len(), 36);

    // A service principal that is not an OAuth client.
    let (plain, plain_secret) = server
        .admin()
        .principal_with_role("plain", "security_reader", "tenant")
        .await;
    let (status, _, body) = token_request(
        &server,
        "operator",
        Some(&basic(&plain, &plain_secret)),
        &[grant],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );

    // JSON instead of a form.
    let response = reqwest::Client::new()
        .post(server.url("/t/operator/oauth/token"))
        .header("authorization", &good)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_clients_secret_works_only_at_its_own_tenant_and_only_while_valid() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    server.admin().create_tenant("beta").await;
    let grant = ("grant_type", "client_credentials");
    let (status, _, body) =
        token_request(&server, "beta", Some(&basic(&id, &secret)), &[grant]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    let keys = server
        .admin()
        .get(&format!("/v1/service-principals/{id}/api-keys"))
        .await
        .expect(200)["items"]
        .take();
    let key_id = keys["items"][0]["id"]
        .as_str()
        .or(keys[0]["id"].as_str())
        .unwrap()
        .to_owned();
    server
        .admin()
        .delete(&format!("/v1/service-principals/{id}/api-keys/{key_id}"))
        .await;
    let (status, _, _) =
        token_request(&server, "operator", Some(&basic(&id, &secret)), &[grant]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked secret gets no token"
    );
    let failures = server.admin().audit("authn.api_key").await;
    assert!(failures.iter().any(|e| e["reason"] == "API key revoked"));
}

#[tokio::test]
async fn client_settings_are_validated() {
    let server = TestServer::start().await;
    let sp = server
        .admin()
        .post("/v1/service-principals", json!({"name": "x"}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap();
    let path = format!("/v1/service-principals/{id}/oauth-client");
    assert_eq!(server.admin().get(&path).await.status, 404);
    let bad = json!({"grant_types": ["client_credentials"], "scopes": ["a b"], "resources": ["https://api.example.com"]});
    let reply = server
        .admin()
        .send(reqwest::Method::PUT, &path, Some(bad), &[])
        .await;
    assert_eq!(reply.problem(422)["field"], "scopes");
    let unknown = json!({"grant_types": ["implicit"], "scopes": [], "resources": ["https://api.example.com"]});
    let reply = server
        .admin()
        .send(reqwest::Method::PUT, &path, Some(unknown), &[])
        .await;
    assert!(reply.status.is_client_error());
    let good = json!({"grant_types": ["client_credentials"], "scopes": [], "resources": ["https://api.example.com"]});
    server
        .admin()
        .send(reqwest::Method::PUT, &path, Some(good), &[])
        .await
        .expect(200);
    assert_eq!(
        server.admin().get(&path).await.expect(200)["access_token_seconds"],
        300
    );
}

/// A client that authenticates with `private_key_jwt`; its id and the key it signs with.
pub(crate) async fn key_client(server: &TestServer) -> (String, portcullis_core::jose::SigningKey) {
    let generated = portcullis_core::jose::generate_es256().unwrap();
    let key =
        portcullis_core::jose::SigningKey::es256(generated.kid.clone(), &generated.private_pkcs8)
            .unwrap();
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "signed"}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap().to_owned();
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{id}/oauth-client"),
            Some(json!({
                "grant_types": ["client_credentials"],
                "scopes": ["orders:read"],
                "resources": ["https://api.example.com"],
                "jwks": [generated.public_jwk],
            })),
            &[],
        )
        .await
        .expect(200);
    (id, key)
}

pub(crate) fn client_assertion(
    server: &TestServer,
    key: &portcullis_core::jose::SigningKey,
    id: &str,
    jti: &str,
) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let aud = format!(
        "http://localhost:{}/t/operator/oauth/token",
        server.addr.port()
    );
    key.sign(
        "JWT",
        &json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 60, "jti": jti}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_client_authenticates_with_a_signed_assertion_once() {
    let server = TestServer::start().await;
    let (id, key) = key_client(&server).await;
    let assertion = client_assertion(&server, &key, &id, "first");
    let form = |assertion: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(server, "operator", None, &pairs).await
        }
    };
    let (status, _, body) = post(form(&assertion)).await;
    assert_eq!(status, 200, "{body}");
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(body["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["client_id"], id);

    // The same assertion again is a replay.
    let (status, _, body) = post(form(&assertion)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("replayed")
    );

    // Signed by a key the client never registered, or naming another audience.
    let stranger = portcullis_core::jose::generate_es256().unwrap();
    let stranger =
        portcullis_core::jose::SigningKey::es256(key.kid().to_owned(), &stranger.private_pkcs8)
            .unwrap();
    let (status, _, _) = post(form(&client_assertion(&server, &stranger, &id, "second"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let elsewhere = key
        .sign(
            "JWT",
            &json!({"iss": id, "sub": id, "aud": "https://other.example/token", "exp": now + 60, "jti": "third"}),
        )
        .unwrap();
    let (status, _, _) = post(form(&elsewhere)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // One authentication method only.
    let mut both = form(&client_assertion(&server, &key, &id, "fourth"));
    both.push(("client_secret", "pcs_x".to_owned()));
    let (status, _, body) = post(both).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let failures = server.admin().audit("authn.client_assertion").await;
    assert!(failures.len() >= 3, "{failures:?}");
}

#[tokio::test]
async fn changes_to_a_client_take_effect_at_once() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    let grant = ("grant_type", "client_credentials");
    let auth = basic(&id, &secret);
    let (status, _, _) = token_request(&server, "operator", Some(&auth), &[grant]).await;
    assert_eq!(status, 200);
    // Narrower settings apply to the very next request, though the client was just used.
    server
        .admin()
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{id}/oauth-client"),
            Some(
                json!({"grant_types": ["client_credentials"], "scopes": ["orders:read"],
                "resources": ["https://api.example.com"]}),
            ),
            &[],
        )
        .await
        .expect(200);
    let (status, _, body) = token_request(
        &server,
        "operator",
        Some(&auth),
        &[grant, ("scope", "orders:write")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // Disabling the principal stops its secret at once.
    server
        .admin()
        .patch(
            &format!("/v1/service-principals/{id}"),
            json!({"state": "disabled"}),
        )
        .await
        .expect(200);
    let (status, _, _) = token_request(&server, "operator", Some(&auth), &[grant]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_busy_client_still_sees_a_revocation_made_on_another_node() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    let auth = basic(&id, &secret);
    let grant = ("grant_type", "client_credentials");
    assert_eq!(
        token_request(&server, "operator", Some(&auth), &[grant])
            .await
            .0,
        200
    );
    // Another node revokes the secret: this node hears of it only through the database.
    let revoked = server
        .db
        .execute(&format!(
            "UPDATE api_keys SET revoked_at = 1 WHERE service_principal_id = '{id}'"
        ))
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    // The client keeps asking without pause; its remembered record must still run out. A bound
    // on attempts, not on time: without the fix this loop never sees a refusal.
    let mut refused = false;
    for _ in 0..400 {
        let (status, _, _) = token_request(&server, "operator", Some(&auth), &[grant]).await;
        if status == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the revocation reached the token endpoint");
}

#[tokio::test]
async fn a_burst_of_first_requests_makes_one_signing_key() {
    let server = TestServer::start().await;
    let url = server.url("/t/operator/jwks");
    let fetches: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { reqwest::get(url).await.unwrap().status() })
        })
        .collect();
    for fetch in fetches {
        assert_eq!(fetch.await.unwrap(), 200);
    }
    assert_eq!(jwks(&server, "operator").await.keys.len(), 1);
    assert_eq!(server.admin().audit("signing_key.create").await.len(), 1);
}
