//! API keys: shown once, stored only as a hash, rotated with overlap, revoked at once, expiring,
//! and guessing throttled.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use portcullis_server::Settings;

use crate::harness::{Client, TestServer};

#[tokio::test]
async fn rotation_with_overlap_then_revocation() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (sp, old_key) = admin
        .principal_with_role("deployer", "security_reader", "tenant")
        .await;
    let keys_path = format!("/v1/service-principals/{sp}/api-keys");
    // Issue the next key while the old one still works: both are valid during the overlap.
    let next = admin
        .post(&keys_path, json!({"name": "next"}))
        .await
        .expect(201);
    let new_key = next["secret"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with(next["api_key"]["prefix"].as_str().unwrap()));
    server.client(&old_key).get("/v1/me").await.expect(200);
    server.client(&new_key).get("/v1/me").await.expect(200);
    // The secret is never shown again: listings carry only prefixes and metadata.
    let listed = admin.get(&keys_path).await.expect(200)["items"].take();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let listing = listed.to_string();
    assert!(
        !listing.contains(&new_key) && !listing.contains(&old_key),
        "no secret in listings"
    );
    assert!(!listing.contains("secret"), "{listing}");
    // Revoke the old key: it stops at once; the new one keeps working.
    let old_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] != "next")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = admin
        .delete(&format!("{keys_path}/{old_id}"))
        .await
        .expect(200);
    assert!(revoked["revoked_at"].is_string());
    server.client(&old_key).get("/v1/me").await.problem(401);
    server.client(&new_key).get("/v1/me").await.expect(200);
    // Revoking again changes nothing.
    let again = admin
        .delete(&format!("{keys_path}/{old_id}"))
        .await
        .expect(200);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let failures = admin.audit("authn.api_key").await;
    assert_eq!(failures[0]["reason"], "API key revoked");
    assert_eq!(failures[0]["outcome"], "failure");
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (sp, key) = admin
        .principal_with_role("hashed", "auditor", "tenant")
        .await;
    // `pcs_<prefix>_<secret>`: the secret's own alphabet has `_` in it, so split from the left.
    let secret_part = key.splitn(3, '_').nth(2).unwrap().to_owned();
    assert_eq!(secret_part.len(), 43);
    let dump = if server.db.is_postgres() {
        let pool = sqlx::PgPool::connect(&server.db.url).await.unwrap();
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT prefix, secret_hash FROM api_keys")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(&server.db.url).await.unwrap();
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT prefix, secret_hash FROM api_keys")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    };
    assert_eq!(dump.len(), 2, "the bootstrap key and {sp}'s key");
    for (prefix, hash) in &dump {
        assert_eq!(hash.len(), 32, "an HMAC-SHA-256 tag");
        assert!(!String::from_utf8_lossy(hash).contains(&secret_part));
        assert!(!prefix.contains(&secret_part));
    }
}

#[tokio::test]
async fn expired_keys_stop_working_and_bad_expiries_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "short-lived"}))
        .await
        .expect(201);
    let path = format!(
        "/v1/service-principals/{}/api-keys",
        sp["id"].as_str().unwrap()
    );
    let past = (OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .format(&Rfc3339)
        .unwrap();
    admin
        .post(&path, json!({"expires_at": past}))
        .await
        .problem(422);
    let far = (OffsetDateTime::now_utc() + time::Duration::days(1000))
        .format(&Rfc3339)
        .unwrap();
    admin
        .post(&path, json!({"expires_at": far}))
        .await
        .problem(422);
    let soon = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let key = admin
        .post(&path, json!({"expires_at": soon}))
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    server.client(&key).get("/v1/me").await.expect(200);
    server.advance(time::Duration::minutes(61));
    server.client(&key).get("/v1/me").await.problem(401);
    assert_eq!(
        admin.audit("authn.api_key").await[0]["reason"],
        "API key expired"
    );
}

#[tokio::test]
async fn disabling_or_deleting_a_principal_stops_its_keys() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "worker"}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap();
    let key = admin
        .post(&format!("/v1/service-principals/{id}/api-keys"), json!({}))
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let worker = server.client(&key);
    worker.get("/v1/me").await.expect(200);
    admin
        .patch(
            &format!("/v1/service-principals/{id}"),
            json!({"state": "disabled"}),
        )
        .await
        .expect(200);
    worker.get("/v1/me").await.problem(401);
    admin
        .patch(
            &format!("/v1/service-principals/{id}"),
            json!({"state": "active"}),
        )
        .await
        .expect(200);
    worker.get("/v1/me").await.expect(200);
    admin
        .delete(&format!("/v1/service-principals/{id}"))
        .await
        .expect(204);
    worker.get("/v1/me").await.problem(401);
}

#[tokio::test]
async fn the_number_of_keys_in_use_is_bounded() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": "many"}))
        .await
        .expect(201);
    let path = format!(
        "/v1/service-principals/{}/api-keys",
        sp["id"].as_str().unwrap()
    );
    for _ in 0..portcullis_store::MAX_ACTIVE_KEYS {
        admin.post(&path, json!({})).await.expect(201);
    }
    admin.post(&path, json!({})).await.problem(409);
}

#[tokio::test]
async fn forged_and_malformed_keys_are_refused_alike_and_guessing_is_throttled() {
    let server = TestServer::start_with(|mut s| {
        s.auth_failures_per_minute = Some(5);
        s
    })
    .await;
    let real = server.admin_key.clone();
    // Right prefix, wrong secret; a malformed key; another scheme; no header at all.
    let forged = format!(
        "{}{}",
        &real[..real.len() - 4],
        if real.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    let mut details = Vec::new();
    for key in [forged.as_str(), "pcs_nothing", "Basic abc"] {
        let reply = server.client(key).get("/v1/users").await;
        details.push(reply.problem(401)["detail"].clone());
    }
    details.push(server.anonymous().get("/v1/users").await.problem(401)["detail"].clone());
    assert!(
        details.windows(2).all(|w| w[0] == w[1]),
        "failures are indistinguishable: {details:?}"
    );
    // One more failure reaches the limit; after that even the right key is throttled from here.
    server.client(&forged).get("/v1/users").await.problem(401);
    let throttled = server.client(&real).get("/v1/users").await;
    assert!(throttled.headers.get("retry-after").is_some());
    throttled.problem(429);
}

#[tokio::test]
async fn guessing_at_a_known_key_from_elsewhere_does_not_lock_its_owner_out() {
    let server = TestServer::start_with(|s| Settings {
        auth_failures_per_minute: Some(5),
        ..s
    })
    .await;
    let real = server.admin_key.clone();
    // The prefix is public; the attacker pairs it with guesses from another address.
    let guessed = format!("{}{}", &real[..real.len() - 43], "A".repeat(43));
    let attacker = Client {
        base: format!("http://{}", server.addr),
        key: Some(guessed),
        http: reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap(),
    };
    for _ in 0..5 {
        attacker.get("/v1/users").await.problem(401);
    }
    attacker.get("/v1/users").await.problem(429);
    // The key's owner, elsewhere, is unaffected.
    server.client(&real).get("/v1/users").await.expect(200);
    let failures = server.admin().audit("authn.api_key").await;
    assert_eq!(failures.len(), 5, "each guess was recorded against the key");
    assert!(
        failures
            .iter()
            .all(|e| e["origin"]["source_ip"] == "127.0.0.2")
    );
}
