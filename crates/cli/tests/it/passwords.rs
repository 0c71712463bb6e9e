//! Users' passwords as administrators manage them: policy, hashing at rest, resets that force a
//! change, and the same guard against escalation as every other change to a privileged user.

use serde_json::json;

use crate::harness::TestServer;

const GOOD: &str = "violet tugboat parsley orbit";

#[tokio::test]
async fn an_administrator_sets_a_password_that_is_stored_only_as_a_hash() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin.create_user("grace").await;
    let id = user["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}/password");
    let before = admin.get(&path).await.expect(200);
    assert_eq!(before["has_password"], false);

    admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(json!({"password": GOOD})),
            &[],
        )
        .await
        .expect(204);
    let status = admin.get(&path).await.expect(200);
    assert_eq!(status["has_password"], true);
    assert_eq!(
        status["must_change"], true,
        "a reset forces a change by default"
    );
    assert!(status.get("hash").is_none());

    let stored = server
        .db
        .execute(&format!(
            "UPDATE user_passwords SET hash = hash WHERE user_id = '{id}' AND hash LIKE '$argon2id$v=19$%'"
        ))
        .await
        .unwrap();
    assert_eq!(stored, 1, "an Argon2id PHC string is stored");
    let leaked = server
        .db
        .execute(&format!(
            "UPDATE user_passwords SET hash = hash WHERE hash LIKE '%{GOOD}%'"
        ))
        .await
        .unwrap();
    assert_eq!(leaked, 0, "the password itself is nowhere");

    let event = &admin.audit("user.password.set").await[0];
    assert_eq!(event["target"]["id"], id);
    assert_eq!(
        event["details"],
        json!({"must_change": true, "sessions_ended": 0})
    );
    assert!(!event.to_string().contains(GOOD) && !event.to_string().contains("argon2"));

    admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(json!({"password": "another fine passphrase 2026", "must_change": false})),
            &[],
        )
        .await
        .expect(204);
    assert_eq!(admin.get(&path).await.expect(200)["must_change"], false);

    admin.delete(&path).await.expect(204);
    assert_eq!(admin.get(&path).await.expect(200)["has_password"], false);
    admin.delete(&path).await.problem(404);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_reason_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "alanturing", "email": "alan@example.com"}),
        )
        .await
        .expect(201);
    let path = format!("/v1/users/{}/password", user["id"].as_str().unwrap());
    for (password, why) in [
        ("short", "at least 12 characters"),
        ("password1234", "too easy to guess"),
        ("alanturing1912", "too easy to guess"),
        ("qwertyuiopasdfgh", "too easy to guess"),
    ] {
        let problem = admin
            .send(
                reqwest::Method::PUT,
                &path,
                Some(json!({"password": password})),
                &[],
            )
            .await
            .problem(422);
        assert_eq!(problem["field"], "password");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{password}: {problem}"
        );
    }
    admin
        .send(
            reqwest::Method::PUT,
            &path,
            Some(json!({"password": GOOD, "admin": true})),
            &[],
        )
        .await
        .problem(400);
    assert_eq!(admin.get(&path).await.expect(200)["has_password"], false);
    assert!(admin.audit("user.password.set").await.is_empty());
}

#[tokio::test]
async fn resetting_a_privileged_users_password_is_itself_privileged() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, user_admin_key) = admin
        .principal_with_role("helpdesk", "user_administrator", "tenant")
        .await;
    let helpdesk = server.client(&user_admin_key);
    let plain = admin.create_user("plain").await;
    let boss = admin.create_user("boss").await;
    admin
        .post(
            "/v1/role-assignments",
            json!({"principal": {"kind": "user", "id": boss["id"]}, "role": "tenant_administrator"}),
        )
        .await
        .expect(201);
    let body = json!({"password": GOOD});
    helpdesk
        .send(
            reqwest::Method::PUT,
            &format!("/v1/users/{}/password", plain["id"].as_str().unwrap()),
            Some(body.clone()),
            &[],
        )
        .await
        .expect(204);
    // Taking over an administrator's account by resetting its password is refused.
    let boss_path = format!("/v1/users/{}/password", boss["id"].as_str().unwrap());
    helpdesk
        .send(reqwest::Method::PUT, &boss_path, Some(body.clone()), &[])
        .await
        .problem(403);
    helpdesk.delete(&boss_path).await.problem(403);
    assert_eq!(
        admin.get(&boss_path).await.expect(200)["has_password"],
        false
    );
    // A reader may see the status, not set it.
    let (_, reader_key) = admin
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    let reader = server.client(&reader_key);
    reader.get(&boss_path).await.expect(200);
    reader
        .send(reqwest::Method::PUT, &boss_path, Some(body), &[])
        .await
        .problem(403);
}

#[tokio::test]
async fn other_tenants_and_deleted_users_cannot_get_passwords() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, other_key) = admin.create_tenant("elsewhere").await;
    let other = server.client(&other_key);
    let theirs = other.create_user("theirs").await;
    let their_path = format!("/v1/users/{}/password", theirs["id"].as_str().unwrap());
    admin.get(&their_path).await.problem(404);
    admin
        .send(
            reqwest::Method::PUT,
            &their_path,
            Some(json!({"password": GOOD})),
            &[],
        )
        .await
        .problem(404);
    assert_eq!(
        other.get(&their_path).await.expect(200)["has_password"],
        false
    );

    let gone = admin.create_user("gone").await;
    let id = gone["id"].as_str().unwrap();
    admin.delete(&format!("/v1/users/{id}")).await.expect(200);
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(json!({"password": GOOD})),
            &[],
        )
        .await
        .problem(409);
}

#[tokio::test]
async fn the_cli_reads_the_password_from_standard_input() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let user = server.admin().create_user("piped").await;
    let id = user["id"].as_str().unwrap();
    let mut child = tokio::process::Command::new(crate::harness::BIN)
        .args(["user", "set-password", id, "--no-must-change"])
        .env("PORTCULLIS_URL", server.url(""))
        .env("PORTCULLIS_API_KEY", &server.admin_key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{GOOD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = server
        .admin()
        .get(&format!("/v1/users/{id}/password"))
        .await
        .expect(200);
    assert_eq!(status["has_password"], true);
    assert_eq!(status["must_change"], false);
}
