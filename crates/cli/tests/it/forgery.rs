//! Forged tokens sent to the server itself: a real access token rewritten with `alg: none`,
//! re-signed with HMAC keyed by the published public key (algorithm confusion), re-signed by an
//! attacker's own key under the issuer's key id, or with its claims altered under the original
//! signature. Introspection must call each inactive, userinfo must refuse it as
//! `invalid_token`, and the admin API must not take it. Client assertions (`private_key_jwt`)
//! are held to an allow-list of asymmetric algorithms, and say so when they refuse.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authorize::{app, code_for, exchange, post_form, signed_in};
use crate::harness::TestServer;
use crate::oauth::{basic, client, key_client, token_request};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS's header and claims, decoded without any check.
fn open(token: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token");
    let part = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    (part(parts[0]), part(parts[1]), parts[2].to_owned())
}

fn compact(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// HS256 over `claims` with `secret`, the header otherwise as the real token's (`typ`, `kid`).
fn hmac_signed(real_header: &Value, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = real_header["typ"].as_str().map(str::to_owned);
    header.kid = real_header["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret).expect("an HMAC key"),
    )
    .expect("signs")
}

/// The ways a verifier confused about algorithms might read a P-256 public JWK as an HMAC
/// secret: the JWK's JSON as published, the SEC1 point, the SubjectPublicKeyInfo DER and PEM.
fn public_key_as_secrets(jwk: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("an EC public key"))
            .expect("base64url coordinate")
    };
    let mut point = vec![0x04];
    point.extend(coordinate("x"));
    point.extend(coordinate("y"));
    // SubjectPublicKeyInfo for id-ecPublicKey on prime256v1, then the point.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend(&point);
    let body = STANDARD.encode(&der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    vec![
        ("the JWK's JSON", jwk.to_string().into_bytes()),
        ("the SEC1 point", point),
        ("the SPKI DER", der),
        ("the SPKI PEM", pem.into_bytes()),
    ]
}

/// Forgeries of `genuine`, named; `other_sub` is a subject the forger would like to be.
async fn forgeries(server: &TestServer, genuine: &str, other_sub: &str) -> Vec<(String, String)> {
    let (header, claims, signature) = open(genuine);
    let jwks: Value = reqwest::get(server.url("/t/operator/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header["kid"].as_str().expect("the token names its key");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the token's key is published")
        .clone();
    let mut someone_else = claims.clone();
    someone_else["sub"] = json!(other_sub);
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let mut unsigned = header.clone();
    unsigned["alg"] = json!("none");

    let mut forged = vec![
        ("alg none".to_owned(), compact(&unsigned, &claims, "")),
        (
            "alg none, another subject".to_owned(),
            compact(&unsigned, &someone_else, ""),
        ),
        (
            "alg none keeping the signature".to_owned(),
            compact(&unsigned, &claims, &signature),
        ),
        (
            "another subject under the real signature".to_owned(),
            compact(&header, &someone_else, &signature),
        ),
        (
            "a later exp under the real signature".to_owned(),
            compact(&header, &longer, &signature),
        ),
        (
            "signature stripped".to_owned(),
            compact(&header, &claims, ""),
        ),
    ];
    for (what, secret) in public_key_as_secrets(&jwk) {
        forged.push((
            format!("HS256 keyed with {what}"),
            hmac_signed(&header, &someone_else, &secret),
        ));
    }
    // The attacker's own P-256 key, presented under the issuer's key id, with and without
    // its public key embedded in the header for a verifier that would trust it.
    let stranger = portcullis_core::jose::generate_es256().unwrap();
    let signer =
        portcullis_core::jose::SigningKey::es256(kid.to_owned(), &stranger.private_pkcs8).unwrap();
    let typ = header["typ"].as_str().unwrap();
    forged.push((
        "the attacker's key under the issuer's kid".to_owned(),
        signer.sign(typ, &someone_else).unwrap(),
    ));
    let mut embedded = Header::new(Algorithm::ES256);
    embedded.typ = Some(typ.to_owned());
    embedded.kid = Some(kid.to_owned());
    embedded.jwk = Some(serde_json::from_value(stranger.public_jwk.clone()).unwrap());
    let signed_by_stranger = signer.sign(typ, &someone_else).unwrap();
    let (_, _, stranger_signature) = open(&signed_by_stranger);
    let embedded: Value = serde_json::to_value(&embedded).unwrap();
    forged.push((
        "the attacker's key embedded in the header".to_owned(),
        compact(&embedded, &someone_else, &stranger_signature),
    ));
    forged
}

async fn userinfo(server: &TestServer, token: &str) -> (StatusCode, String, Value) {
    let response = reqwest::Client::new()
        .get(server.url("/t/operator/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Sends each forgery to introspection (as the token's own client), userinfo and the admin API.
async fn all_refused(server: &TestServer, client: &str, secret: &str, forged: &[(String, String)]) {
    for (what, token) in forged {
        let (status, body) = post_form(
            server,
            "/t/operator/oauth/introspect",
            client,
            Some(secret),
            &[("token", token)],
        )
        .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body, json!({"active": false}), "{what}: introspection");
        let (status, challenge, body) = userinfo(server, token).await;
        assert_eq!(status, 401, "{what}: userinfo answered {body}");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        server.client(token).get("/v1/me").await.problem(401);
    }
}

#[tokio::test]
async fn forged_client_credentials_tokens_are_refused_by_the_server() {
    let server = TestServer::start().await;
    let (id, secret) = client(&server, "orders-sync").await;
    let (other, _) = client(&server, "billing").await;
    let (status, _, body) = token_request(
        &server,
        "operator",
        Some(&basic(&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let genuine = body["access_token"].as_str().unwrap();

    // The genuine token is accepted where forgeries are checked: active at introspection, and
    // past verification at userinfo (refused there only for being a client's, not a user's).
    let (_, active) = post_form(
        &server,
        "/t/operator/oauth/introspect",
        &id,
        Some(&secret),
        &[("token", genuine)],
    )
    .await;
    assert_eq!(active["active"], true, "{active}");
    let (status, challenge, _) = userinfo(&server, genuine).await;
    assert_eq!(status, 403);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // The admin API takes API keys only, a genuine access token included.
    server.client(genuine).get("/v1/me").await.problem(401);

    let forged = forgeries(&server, genuine, &other).await;
    all_refused(&server, &id, &secret, &forged).await;
}

#[tokio::test]
async fn forged_user_access_tokens_are_refused_by_the_server() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, ada) = signed_in(&server, "ada").await;
    let (_, bob) = signed_in(&server, "bob").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (status, tokens) = exchange(&server, &client, Some(&secret), &code).await;
    assert_eq!(status, 200, "{tokens}");
    let genuine = tokens["access_token"].as_str().unwrap();
    let (status, _, profile) = userinfo(&server, genuine).await;
    assert_eq!(
        (status.as_u16(), profile["sub"].as_str()),
        (200, Some(ada.as_str()))
    );

    // Bob's profile, asked for with Ada's token rewritten: never.
    let forged = forgeries(&server, genuine, &bob).await;
    all_refused(&server, &client, &secret, &forged).await;
    // The ID token is a signed JWT too, but not an access token: refused as one.
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    all_refused(
        &server,
        &client,
        &secret,
        &[("the ID token".to_owned(), id_token)],
    )
    .await;
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ALGORITHM_RULE: &str = "must be signed with ES256, ES384, RS256, PS256 or EdDSA";

/// A `private_key_jwt` client, a genuine assertion of it, and forgeries of that assertion:
/// `alg: none`, and HS256 keyed with each reading of the client's registered public key.
struct Assertions {
    id: String,
    genuine: String,
    none: String,
    hmac: Vec<(String, String)>,
}

async fn assertions(server: &TestServer) -> Assertions {
    let (id, key) = key_client(server).await;
    let registered = server
        .admin()
        .get(&format!("/v1/service-principals/{id}/oauth-client"))
        .await
        .expect(200)["jwks"][0]
        .clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let audience = format!(
        "http://localhost:{}/t/operator/oauth/token",
        server.addr.port()
    );
    let claims = |jti: &str| json!({"iss": id, "sub": id, "aud": audience, "iat": now, "exp": now + 60, "jti": jti});
    let genuine = key.sign("JWT", &claims("genuine")).unwrap();
    let (header, ..) = open(&genuine);
    let mut unsigned = header.clone();
    unsigned["alg"] = json!("none");
    let none = compact(&unsigned, &claims("none"), "");
    let hmac = public_key_as_secrets(&registered)
        .into_iter()
        .map(|(what, secret)| {
            (
                format!("HS256 keyed with {what}"),
                hmac_signed(&header, &claims(what), &secret),
            )
        })
        .collect();
    Assertions {
        id,
        genuine,
        none,
        hmac,
    }
}

/// Asks for a token with `assertion`, naming the client in the form or not; the answer.
async fn present(
    server: &TestServer,
    assertion: &str,
    client_id: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let (status, _, body) = token_request(server, "operator", None, &form).await;
    (status, body)
}

#[tokio::test]
async fn client_assertions_must_use_an_asymmetric_algorithm_and_say_so() {
    let server = TestServer::start().await;
    let forged = assertions(&server).await;
    let admin = server.admin();
    // HMAC keyed with the client's own public key (algorithm confusion): refused by the
    // allow-list, which the answer and the audit trail name.
    for (what, assertion) in &forged.hmac {
        for client_id in [Some(forged.id.as_str()), None] {
            let before = admin.audit("authn.client_assertion").await.len();
            let (status, body) = present(&server, assertion, client_id).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{what}: {body}"
            );
            let description = body["error_description"].as_str().unwrap_or_default();
            assert!(
                description.contains(ALGORITHM_RULE),
                "{what} (client_id {client_id:?}): {description}"
            );
            let audited = admin.audit("authn.client_assertion").await;
            assert_eq!(audited.len(), before + 1, "{what}: audited once");
            assert_eq!(audited[0]["outcome"], "failure");
            assert!(
                audited[0]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(ALGORITHM_RULE)),
                "{what}: {}",
                audited[0]
            );
        }
    }
    // `alg: none`: see the test below.

    // None of that spent anything: the genuine assertion still works.
    let (status, body) = present(&server, &forged.genuine, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unsigned_client_assertion_is_refused_as_an_algorithm_and_audited() {
    let server = TestServer::start().await;
    let forged = assertions(&server).await;
    let admin = server.admin();
    for client_id in [Some(forged.id.as_str()), None] {
        let before = admin.audit("authn.client_assertion").await.len();
        let (status, body) = present(&server, &forged.none, client_id).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains(ALGORITHM_RULE),
            "alg none (client_id {client_id:?}) is named as an algorithm refusal: {description}"
        );
        let audited = admin.audit("authn.client_assertion").await;
        assert_eq!(
            audited.len(),
            before + 1,
            "alg none (client_id {client_id:?}) is a failed authentication, audited like the others"
        );
    }
}
