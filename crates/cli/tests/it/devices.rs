//! Registered devices end to end: a person registers a device's public key, the device proves
//! itself at sign-in with a proof bound to that browser's sign-in, an administrator (or an
//! MDM) marks it compliant, and a policy that demands a compliant device lets only it in.
//! Proofs for another browser, for someone else's device, or forged, prove nothing.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::concurrency::all_at_once;
use crate::conditional::last_sign_in;
use crate::harness::{Client, TestServer};
use crate::signin::{Browser, PASSWORD};

/// A device's key pair: the public JWK to register, and the key that signs its proofs.
struct Device {
    public: Value,
    key: EncodingKey,
}

impl Device {
    fn new() -> Self {
        let generated = portcullis_core::jose::generate_es256().unwrap();
        Self {
            key: EncodingKey::from_ec_der(&generated.private_pkcs8),
            public: generated.public_jwk,
        }
    }

    /// A proof for `issuer`, bound to the sign-in form's anti-forgery token.
    fn proof(&self, issuer: &str, csrf: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("device-proof+jwt".into());
        header.jwk = serde_json::from_value(self.public.clone()).ok();
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        encode(
            &header,
            &json!({"aud": issuer, "iat": iat, "bind": csrf}),
            &self.key,
        )
        .unwrap()
    }
}

async fn issuer(server: &TestServer) -> String {
    let discovery = reqwest::get(server.url("/t/operator/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    discovery["issuer"].as_str().unwrap().to_owned()
}

/// A person's admin API client: their own access token, through the code flow.
async fn as_person(server: &TestServer, name: &str) -> (Client, String) {
    let (console, secret) = crate::admin_tokens::console(server).await;
    let (mut browser, id) = crate::authorize::signed_in(server, name).await;
    let token = crate::admin_tokens::person_token(server, &mut browser, &console, &secret).await;
    (server.client(&token), id)
}

/// Signs in with a device proof made by `device` for the form this browser is shown (or, with
/// `bind_to`, for another value).
async fn sign_in_with(
    browser: &mut Browser,
    issuer: &str,
    device: &Device,
    bind_to: Option<&str>,
) -> crate::signin::Page {
    let form = browser.get("/t/operator/sign-in").await;
    let csrf = form.csrf();
    let proof = device.proof(issuer, bind_to.unwrap_or(&csrf));
    browser
        .post_with(
            "/t/operator/sign-in",
            &[
                ("csrf", &csrf),
                ("user_name", "ada"),
                ("password", PASSWORD),
            ],
            &[("portcullis-device-proof", &proof)],
        )
        .await
}

#[tokio::test]
async fn only_a_compliant_registered_device_that_proves_itself_gets_in() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let issuer = issuer(&server).await;
    let (as_ada, ada) = as_person(&server, "ada").await;
    let laptop = Device::new();
    let registered = as_ada
        .post(
            "/v1/me/devices",
            json!({"name": "Ada's laptop", "platform": "macos", "public_key": laptop.public}),
        )
        .await
        .expect(201);
    assert_eq!(registered["user_id"], ada.as_str());
    assert_eq!(registered["compliant"], false);
    let device = registered["id"].as_str().unwrap().to_owned();
    // The same key twice, a private key, a workload: refused with a reason, nothing stored.
    let again = as_ada
        .post(
            "/v1/me/devices",
            json!({"name": "again", "platform": "macos", "public_key": laptop.public}),
        )
        .await
        .problem(409);
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("registered already"),
        "{again}"
    );
    let mut private = Device::new().public;
    private["d"] = json!("c2VjcmV0");
    as_ada
        .post(
            "/v1/me/devices",
            json!({"name": "leaky", "platform": "linux", "public_key": private}),
        )
        .await
        .problem(422);
    admin
        .post(
            "/v1/me/devices",
            json!({"name": "robot", "platform": "linux", "public_key": Device::new().public}),
        )
        .await
        .problem(403);
    let listed = admin
        .get(&format!("/v1/devices?user_id={ada}"))
        .await
        .expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    crate::conditional::emergency_account(&server).await;
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Managed devices only", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": ["account"]},
                   "grant": {"kind": "require", "controls": ["compliant_device"]}}),
        )
        .await
        .expect(201);

    // Registered but not yet compliant: the proof is accepted, the policy still says no.
    let mut browser = Browser::new(&server);
    let refused = sign_in_with(&mut browser, &issuer, &laptop, None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("a device your organisation manages"));
    let event = last_sign_in(&admin, &ada, "failure").await;
    assert_eq!(event["details"]["device"], "registered", "{event}");
    assert_eq!(event["details"]["platform"], "macos", "{event}");

    // Another tenant's administrator can neither see nor mark it.
    let (_, other_key) = admin.create_tenant("acme").await;
    let other = server.client(&other_key);
    other
        .get(&format!("/v1/devices/{device}"))
        .await
        .problem(404);
    other
        .send(
            Method::PUT,
            &format!("/v1/devices/{device}/compliance"),
            Some(json!({"compliant": true})),
            &[],
        )
        .await
        .problem(404);
    let theirs = other.get("/v1/devices").await.expect(200);
    assert_eq!(theirs["items"], json!([]), "{theirs}");

    // The MDM marks it compliant; now the laptop gets in, and only the laptop.
    let marked = admin
        .send(
            Method::PUT,
            &format!("/v1/devices/{device}/compliance"),
            Some(json!({"compliant": true, "note": "FileVault on, OS current"})),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(marked["compliant"], true);
    let mut browser = Browser::new(&server);
    let opened = sign_in_with(&mut browser, &issuer, &laptop, None).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let event = last_sign_in(&admin, &ada, "success").await;
    assert_eq!(event["details"]["device"], "compliant", "{event}");
    let seen = admin
        .get(&format!("/v1/devices/{device}"))
        .await
        .expect(200);
    assert!(seen["last_seen_at"].is_string(), "{seen}");

    // Without a proof, with a proof made for another browser's sign-in, or with a key that is
    // not Ada's: an unregistered device, refused.
    let mut bare = Browser::new(&server);
    assert_eq!(bare.sign_in("operator", "ada", PASSWORD).await.status, 403);
    let mut replayed = Browser::new(&server);
    let elsewhere = sign_in_with(&mut replayed, &issuer, &laptop, Some("another-browser")).await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
    let stranger = Device::new();
    let mut other = Browser::new(&server);
    let unknown = sign_in_with(&mut other, &issuer, &stranger, None).await;
    assert_eq!(unknown.status, 403, "{}", unknown.body);

    // Removed, the laptop proves nothing any more.
    admin
        .delete(&format!("/v1/devices/{device}"))
        .await
        .expect(204);
    let mut after = Browser::new(&server);
    let gone = sign_in_with(&mut after, &issuer, &laptop, None).await;
    assert_eq!(gone.status, 403, "{}", gone.body);
    let audited = admin.audit("device.compliance").await;
    assert_eq!(audited[0]["target"]["id"], device.as_str());
}

/// Simultaneous registrations of many devices for one person stop at the cap: the count and
/// the insert are one write under the tenant's lock, on both stores.
#[tokio::test]
async fn racing_registrations_stop_at_the_cap() {
    let server = TestServer::start().await;
    let (as_ada, ada) = as_person(&server, "ada").await;
    let statuses = all_at_once(16, |n| {
        let client = as_ada.clone();
        let public = Device::new().public;
        async move {
            client
                .post(
                    "/v1/me/devices",
                    json!({"name": format!("device {n}"), "platform": "linux", "public_key": public}),
                )
                .await
                .status
                .as_u16()
        }
    })
    .await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 10, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        6,
        "{statuses:?}"
    );
    let listed = server
        .admin()
        .get(&format!("/v1/devices?user_id={ada}"))
        .await
        .expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 10);
}
