//! Defences that no other test would notice missing: session fixation with a live, valid
//! session planted by the attacker, and the storage claims of docs/security.md checked in the
//! database itself — no server-generated secret, nor any plain encoding or unkeyed hash of it,
//! anywhere in any table.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::authorize::{
    REDIRECT, VERIFIER, app, challenge, code_for, exchange, push, signed_in, token,
};
use crate::harness::TestServer;
use crate::mfa::{between, code, enrolled};
use crate::passkeys::{origin, post_answer, sign_in_answer, user_with_passkey};
use crate::signin::{Browser, PASSWORD, user_with_password};
use crate::soft_passkey::SoftPasskey;

const SESSION: &str = "portcullis_session";

async fn session_count(server: &TestServer, user: &str) -> usize {
    server
        .admin()
        .get(&format!("/v1/users/{user}/sessions"))
        .await
        .expect(200)["items"]
        .take()
        .as_array()
        .map_or(0, Vec::len)
}

/// After `victim_name` signed in from a browser the attacker had planted `planted` in: the
/// browser holds a new token of the victim's, and the planted token is still only the
/// attacker's.
async fn assert_not_adopted(
    victim: &mut Browser,
    victim_name: &str,
    planted: &str,
    attacker: &mut Browser,
) {
    let token = victim
        .cookies
        .get(SESSION)
        .expect("a session cookie")
        .clone();
    assert_ne!(token, planted, "the sign-in sets a fresh token");
    let mine = victim.get("/t/operator/account").await;
    assert!(
        mine.body.contains(&format!("Signed in as {victim_name}")),
        "{}",
        mine.body
    );
    // The attacker's copy opens the attacker's own session, or none — never the victim's.
    let theirs = attacker.get("/t/operator/account").await;
    match theirs.status.as_u16() {
        200 => assert!(
            theirs.body.contains("Signed in as mallory")
                && !theirs.body.contains(&format!("Signed in as {victim_name}")),
            "{}",
            theirs.body
        ),
        303 => assert_eq!(theirs.location(), "/t/operator/sign-in"),
        other => panic!("the planted token answered {other}: {}", theirs.body),
    }
    assert_eq!(
        attacker.cookies.get(SESSION).map(String::as_str),
        Some(planted)
    );
}

#[tokio::test]
async fn a_planted_live_session_is_never_taken_over_by_the_victims_sign_in() {
    let server = TestServer::start().await;
    let mallory = user_with_password(&server, "mallory", false).await;
    let ada = user_with_password(&server, "ada", false).await;
    let (totp_key, _) = enrolled(&server, "grace").await;
    let mut passkey = SoftPasskey::new();
    user_with_passkey(&server, "hopper", &mut passkey).await;

    // The attacker signs in as themselves: a real, live session token.
    let mut attacker = Browser::new(&server);
    assert_eq!(
        attacker
            .sign_in("operator", "mallory", PASSWORD)
            .await
            .status,
        303
    );
    let planted = attacker.cookies[SESSION].clone();
    let plant = || {
        let mut browser = Browser::new(&server);
        browser.cookies.insert(SESSION.into(), planted.clone());
        browser
    };

    // With a password.
    let mut victim = plant();
    assert!(
        victim
            .get("/t/operator/account")
            .await
            .body
            .contains("Signed in as mallory"),
        "the planted token is live"
    );
    let done = victim.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_not_adopted(&mut victim, "ada", &planted, &mut attacker).await;
    assert_eq!(session_count(&server, &ada).await, 1);

    // With a password and an authenticator code.
    let mut victim = plant();
    assert_eq!(
        victim
            .sign_in("operator", "grace", PASSWORD)
            .await
            .location(),
        "/t/operator/sign-in/code"
    );
    let csrf = victim.get("/t/operator/sign-in/code").await.csrf();
    let done = victim
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &csrf), ("code", &code(&totp_key, 1))],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_not_adopted(&mut victim, "grace", &planted, &mut attacker).await;

    // With a passkey.
    let mut victim = plant();
    let form = sign_in_answer(&mut victim, "operator", &mut passkey, &origin(&server)).await;
    let done = post_answer(&mut victim, "operator", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_not_adopted(&mut victim, "hopper", &planted, &mut attacker).await;

    // The attacker holds what they held before: one session of their own.
    assert_eq!(session_count(&server, &mallory).await, 1);
}

/// Every row of every table, each as its columns' bytes joined, named by table.
async fn whole_database(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    let mut rows = Vec::new();
    for table in server.db.tables().await {
        let found = server
            .db
            .raw_rows(&format!("SELECT * FROM \"{table}\""))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        for row in found {
            let mut bytes = Vec::new();
            for column in row.into_iter().flatten() {
                bytes.extend(column);
                bytes.push(0);
            }
            rows.push((table.clone(), bytes));
        }
    }
    rows
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The forms a careless store might keep `secret` in: as typed, its unkeyed SHA-256 (raw and
/// hex), and — for random values in base64url — the random bytes themselves, raw, hex and
/// standard base64.
fn forms(secret: &str) -> Vec<(String, Vec<u8>)> {
    let digest = Sha256::digest(secret.as_bytes());
    let mut found = vec![
        ("as given".to_owned(), secret.as_bytes().to_vec()),
        ("SHA-256".to_owned(), digest.to_vec()),
        ("SHA-256 hex".to_owned(), hex(&digest).into_bytes()),
    ];
    if let Ok(raw) = URL_SAFE_NO_PAD.decode(secret)
        && raw.len() >= 16
    {
        found.push(("decoded".to_owned(), raw.clone()));
        found.push(("decoded, hex".to_owned(), hex(&raw).into_bytes()));
        found.push((
            "decoded, base64".to_owned(),
            STANDARD.encode(&raw).into_bytes(),
        ));
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn server_generated_secrets_are_stored_only_as_keyed_hashes_or_sealed() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (client, client_secret) = app(&server, "shop", json!({})).await;
    let client_secret = client_secret.unwrap();
    let (_, api_key) = admin
        .principal_with_role("robot", "auditor", "tenant")
        .await;

    // Ada: a session, an authenticator app with its recovery codes, and an application's code,
    // refresh tokens and a pushed request.
    let (mut browser, ada) = signed_in(&server, "ada").await;
    let session = browser.cookies[SESSION].clone();
    let setup = browser.get("/t/operator/account/mfa").await;
    let totp_key = crate::mfa::manual_key(&setup.body);
    let done = browser
        .post(
            "/t/operator/account/mfa",
            &[("csrf", &setup.csrf()), ("code", &code(&totp_key, 0))],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let recovery: Vec<String> = between(&done.body, "<li><code>", "</code>")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(recovery.len(), 10);
    let code_value = code_for(&mut browser, &client, &[]).await;
    // The code as stored before it is redeemed.
    let unredeemed = whole_database(&server).await;
    let (status, tokens) = exchange(&server, &client, Some(&client_secret), &code_value).await;
    assert_eq!(status, 200, "{tokens}");
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = token(
        &server,
        &client,
        Some(&client_secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let pkce = challenge(VERIFIER);
    let (status, pushed) = push(
        &server,
        &client,
        Some(&client_secret),
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", &pkce),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{pushed}");
    let handle = pushed["request_uri"]
        .as_str()
        .unwrap()
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .unwrap()
        .to_owned();

    // The rows exist, so their absence of secrets means something.
    let db = &server.db;
    let count = async |sql: &str| -> usize { db.texts(sql).await[0].parse().unwrap() };
    for (sql, at_least) in [
        (
            format!("SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE user_id = '{ada}'"),
            1,
        ),
        (
            format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM user_totp WHERE user_id = '{ada}' AND confirmed_at IS NOT NULL"
            ),
            1,
        ),
        (
            format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM user_recovery_codes WHERE user_id = '{ada}'"
            ),
            10,
        ),
        (
            format!("SELECT CAST(COUNT(*) AS TEXT) FROM oauth_grants WHERE user_id = '{ada}'"),
            1,
        ),
        (
            "SELECT CAST(COUNT(*) AS TEXT) FROM refresh_tokens".to_owned(),
            2,
        ),
        (
            "SELECT CAST(COUNT(*) AS TEXT) FROM authorization_requests".to_owned(),
            1,
        ),
        ("SELECT CAST(COUNT(*) AS TEXT) FROM api_keys".to_owned(), 3),
    ] {
        assert!(count(&sql).await >= at_least, "{sql}");
    }

    // What must not be found, in any form, anywhere.
    let key_secret = |key: &str| key[key.len() - 43..].to_owned();
    let mut secrets: Vec<(String, String)> = vec![
        ("the session token".into(), session),
        ("the authorization code".into(), code_value.clone()),
        ("the first refresh token".into(), first_refresh),
        ("the rotated refresh token".into(), second_refresh),
        ("the pushed request's handle".into(), handle),
        ("an API key".into(), api_key.clone()),
        ("an API key's secret part".into(), key_secret(&api_key)),
        ("the bootstrap key".into(), server.admin_key.clone()),
        ("the client secret".into(), client_secret.clone()),
        (
            "the client secret's secret part".into(),
            key_secret(&client_secret),
        ),
        ("the authenticator app's key".into(), totp_key.clone()),
    ];
    for (i, code) in recovery.iter().enumerate() {
        secrets.push((format!("recovery code {i}"), code.clone()));
        secrets.push((
            format!("recovery code {i} without its dash"),
            code.replace('-', ""),
        ));
    }
    let mut needles: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .flat_map(|(what, secret)| {
            forms(secret)
                .into_iter()
                .map(move |(form, bytes)| (format!("{what} ({form})"), bytes))
        })
        .collect();
    // The authenticator's secret is random bytes in base32: those bytes, in any encoding.
    let totp_raw = totp_rs::Secret::try_from_base32(&totp_key)
        .expect("base32")
        .as_bytes()
        .to_vec();
    assert!(totp_raw.len() >= 16);
    needles.push(("the TOTP secret's bytes".into(), totp_raw.clone()));
    needles.push((
        "the TOTP secret's bytes, hex".into(),
        hex(&totp_raw).into_bytes(),
    ));
    needles.push((
        "the TOTP secret's bytes, base64".into(),
        STANDARD.encode(&totp_raw).into_bytes(),
    ));
    needles.push((
        "the TOTP secret's bytes, base64url".into(),
        URL_SAFE_NO_PAD.encode(&totp_raw).into_bytes(),
    ));
    needles.push((
        "the TOTP key in lower case".into(),
        totp_key.to_lowercase().into_bytes(),
    ));

    let stored = whole_database(&server).await;
    // The scan reads every backend's bytes: public values are found where they belong.
    let prefix = &api_key[4..20];
    assert!(
        stored
            .iter()
            .any(|(t, row)| t == "api_keys" && contains(row, prefix.as_bytes())),
        "the key's public prefix is stored and the scan sees it"
    );
    assert!(
        stored
            .iter()
            .any(|(t, row)| t == "users" && contains(row, ada.as_bytes())),
        "the scan sees the users table"
    );
    for (what, needle) in &needles {
        for (table, row) in stored.iter().chain(unredeemed.iter()) {
            assert!(!contains(row, needle), "{what} is stored in table {table}");
        }
    }
}
