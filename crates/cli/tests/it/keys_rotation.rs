//! Token signing keys over their life: published before they sign, kept published after they
//! retire, rotated by the sweeper when their time is up, withdrawn at once in an emergency —
//! and RS256 or EdDSA for the clients that ask.

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

use crate::harness::TestServer;

/// A client-credentials client signing with `alg`; its id and secret.
async fn client(server: &TestServer, name: &str, alg: &str) -> (String, String) {
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
                "scopes": ["orders:read"],
                "resources": ["https://api.example.com"],
                "signing_alg": alg,
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

async fn token(server: &TestServer, id: &str, secret: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(server.url("/t/operator/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

async fn jwks(server: &TestServer) -> JwkSet {
    reqwest::get(server.url("/t/operator/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kid(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

async fn active(server: &TestServer, id: &str, secret: &str, token: &str) -> bool {
    let body: Value = reqwest::Client::new()
        .post(server.url("/t/operator/oauth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"] == true
}

async fn rotate(server: &TestServer, body: Value) -> Value {
    server
        .admin()
        .post("/v1/signing-keys/rotate", body)
        .await
        .expect(200)
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs_and_the_old_one_after() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "svc", "ES256").await;
    let first = token(&server, &id, &secret).await;

    // Scheduled: published now, signing tomorrow.
    let scheduled = rotate(&server, json!({})).await;
    assert_eq!(scheduled["status"], "scheduled");
    assert_eq!(scheduled["published"], true);
    let published = jwks(&server).await;
    assert!(published.find(scheduled["kid"].as_str().unwrap()).is_some());
    assert_eq!(published.keys.len(), 2);
    assert_eq!(
        kid(&token(&server, &id, &secret).await),
        kid(&first),
        "the old key still signs"
    );

    // A rotation that signs at once: the old key retires but stays published, so the tokens
    // it signed still verify.
    let now = rotate(&server, json!({"publish_seconds": 0})).await;
    assert_eq!(now["status"], "current");
    let second = token(&server, &id, &secret).await;
    assert_eq!(kid(&second), now["kid"].as_str().unwrap());
    assert!(jwks(&server).await.find(&kid(&first)).is_some());
    assert!(active(&server, &id, &secret, &first).await);
    let listed = server.admin().get("/v1/signing-keys").await.expect(200)["items"].take();
    let status = |k: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kid"] == k)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&kid(&first)), "retired");
    assert_eq!(status(now["kid"].as_str().unwrap()), "current");

    // Emergency: a new key signs at once and every other ES256 key is withdrawn, so their
    // tokens stop verifying anywhere that reads the JWKS.
    let fresh = rotate(&server, json!({"emergency": true})).await;
    let keys = jwks(&server).await;
    assert_eq!(keys.keys.len(), 1);
    assert!(keys.find(fresh["kid"].as_str().unwrap()).is_some());
    assert!(!active(&server, &id, &secret, &second).await);
    assert!(!active(&server, &id, &secret, &first).await);
    assert_eq!(
        kid(&token(&server, &id, &secret).await),
        fresh["kid"].as_str().unwrap()
    );
    assert_eq!(server.admin().audit("signing_key.revoke").await.len(), 1);
    // An emergency is never delayed.
    let problem = server
        .admin()
        .post(
            "/v1/signing-keys/rotate",
            json!({"emergency": true, "publish_seconds": 60}),
        )
        .await
        .problem(422);
    assert!(problem.to_string().contains("publish_seconds"));
}

#[tokio::test]
async fn clients_may_get_rs256_or_eddsa_tokens() {
    let server = TestServer::start().await;
    for (alg, checked) in [("RS256", Algorithm::RS256), ("EdDSA", Algorithm::EdDSA)] {
        let (id, secret) = client(&server, &format!("legacy-{alg}"), alg).await;
        let issued = token(&server, &id, &secret).await;
        let header = decode_header(&issued).unwrap();
        assert_eq!(header.alg, checked);
        let keys = jwks(&server).await;
        let key = keys
            .find(header.kid.as_deref().unwrap())
            .expect("published");
        let mut validation = Validation::new(checked);
        validation.set_audience(&["https://api.example.com"]);
        let claims = decode::<Value>(&issued, &DecodingKey::from_jwk(key).unwrap(), &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["client_id"], id);
        assert!(active(&server, &id, &secret, &issued).await, "{alg}");
        // The same token with its header claiming another algorithm is refused.
        let parts: Vec<&str> = issued.split('.').collect();
        let forged_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"alg": "ES256", "typ": "at+jwt", "kid": header.kid}).to_string());
        let forged = format!("{forged_header}.{}.{}", parts[1], parts[2]);
        assert!(!active(&server, &id, &secret, &forged).await);
    }
    let published: Vec<String> = jwks(&server)
        .await
        .keys
        .iter()
        .map(|k| {
            serde_json::to_value(k).unwrap()["alg"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for alg in ["ES256", "RS256", "EdDSA"] {
        assert!(published.iter().any(|a| a == alg), "{alg} in {published:?}");
    }
}

#[tokio::test]
async fn the_sweeper_schedules_a_successor_for_an_old_key() {
    let server = TestServer::start_with(|mut s| {
        s.sweep_interval_seconds = Some(1);
        s.signing_key_rotation_days = Some(30);
        s.signing_key_publish_seconds = Some(3600);
        s
    })
    .await;
    let (id, secret) = client(&server, "svc", "ES256").await;
    let old = kid(&token(&server, &id, &secret).await);
    // The key has signed for 31 days.
    let long_ago =
        (time::OffsetDateTime::now_utc() - time::Duration::days(31)).unix_timestamp() * 1_000_000;
    server
        .db
        .execute(&format!(
            "UPDATE signing_keys SET signs_from = {long_ago}, created_at = {long_ago}"
        ))
        .await
        .unwrap();
    // The sweeper runs every second; poll its visible effect rather than timing it.
    let mut rotated = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if jwks(&server).await.keys.len() == 2 {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "a successor is published");
    let listed = server.admin().get("/v1/signing-keys").await.expect(200)["items"].take();
    let scheduled: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] == "scheduled")
        .collect();
    assert_eq!(scheduled.len(), 1, "exactly one successor: {listed}");
    assert_eq!(
        kid(&token(&server, &id, &secret).await),
        old,
        "it signs only after an hour"
    );
}
