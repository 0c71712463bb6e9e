//! The audit trail: every change and denial is recorded, queries filter and page, and the hash
//! chain exposes any alteration — checked by the `portcullis` binary, independently of the server.

use serde_json::json;

use crate::harness::{TestServer, cli};

#[tokio::test]
async fn every_change_is_recorded_with_who_where_and_what() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let user = admin
        .send(
            reqwest::Method::POST,
            "/v1/users",
            Some(json!({"user_name": "traced"})),
            &[
                ("user-agent", "audit-test/1.0"),
                ("x-request-id", "req-123"),
            ],
        )
        .await
        .expect(201);
    let event = &admin.audit("user.create").await[0];
    assert_eq!(event["target"]["id"], user["id"]);
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["actor"]["kind"], "service_principal");
    assert!(
        event["actor"]["display"].as_str().unwrap().contains("pcs_"),
        "the key's public prefix names the credential"
    );
    assert_eq!(event["origin"]["user_agent"], "audit-test/1.0");
    assert_eq!(event["origin"]["request_id"], "req-123");
    assert_eq!(event["origin"]["source_ip"], "127.0.0.1");
    admin
        .patch(
            &format!("/v1/users/{}", user["id"].as_str().unwrap()),
            json!({"display_name": "Traced"}),
        )
        .await
        .expect(200);
    let update = &admin.audit("user.update").await[0];
    assert_eq!(update["details"]["display_name"]["to"], "Traced");
    assert_eq!(
        update["details"]["display_name"]["from"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn queries_filter_and_page_newest_first() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..7 {
        admin.create_user(&format!("u{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = admin
            .get(&format!("/v1/audit?action=user.create&limit=3{cursor}"))
            .await
            .expect(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    let failures = admin.get("/v1/audit?outcome=failure").await.expect(200);
    assert!(failures["items"].as_array().unwrap().is_empty());
    let future = admin
        .get("/v1/audit?from=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert!(future["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn verify_reports_intact_then_names_the_tampered_record() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..5 {
        admin.create_user(&format!("t{i}")).await;
    }
    let (code, stdout, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("intact:"), "{stdout}");

    // The database refuses to change the log...
    let refused = server
        .db
        .execute("UPDATE audit_events SET reason = 'x' WHERE seq = 3")
        .await;
    assert!(refused.is_err(), "the append-only trigger refuses updates");
    if server.db.is_postgres() {
        let truncate = server.db.execute("TRUNCATE audit_events").await;
        assert!(truncate.is_err(), "TRUNCATE is refused too");
    } else {
        let everything = server.db.execute("DELETE FROM audit_events").await;
        assert!(everything.is_err(), "a DELETE without WHERE is refused too");
    }
    assert!(
        server
            .db
            .execute("DELETE FROM audit_events WHERE seq = 3")
            .await
            .is_err()
    );
    // ...but an attacker with database access can drop the guard. The chain still tells.
    if server.db.is_postgres() {
        server
            .db
            .execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change")
            .await
            .unwrap();
    } else {
        server
            .db
            .execute("DROP TRIGGER audit_events_no_update")
            .await
            .unwrap();
    }
    let changed = server
        .db
        .execute("UPDATE audit_events SET actor_display = 'someone else' WHERE seq = 9 AND action = 'user.create'")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let (code, stdout, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("record 9"),
        "the broken record is named: {stderr}"
    );
}

#[tokio::test]
async fn a_deleted_record_is_a_gap() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..3 {
        admin.create_user(&format!("g{i}")).await;
    }
    if server.db.is_postgres() {
        server
            .db
            .execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change")
            .await
            .unwrap();
    } else {
        server
            .db
            .execute("DROP TRIGGER audit_events_no_delete")
            .await
            .unwrap();
    }
    server
        .db
        .execute("DELETE FROM audit_events WHERE seq = 4")
        .await
        .unwrap();
    let (code, _, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("record 5") && stderr.contains("missing"),
        "{stderr}"
    );
}

#[tokio::test]
async fn records_cut_from_the_end_are_reported() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..3 {
        admin.create_user(&format!("cut{i}")).await;
    }
    let head = admin.get("/v1/audit/chain?limit=1").await.expect(200)["head_seq"]
        .as_i64()
        .unwrap();
    if server.db.is_postgres() {
        server
            .db
            .execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change")
            .await
            .unwrap();
    } else {
        server
            .db
            .execute("DROP TRIGGER audit_events_no_delete")
            .await
            .unwrap();
    }
    server
        .db
        .execute(&format!(
            "DELETE FROM audit_events WHERE seq > {}",
            head - 2
        ))
        .await
        .unwrap();
    let (code, _, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("ends at record {}", head - 2))
            && stderr.contains("removed from the end"),
        "{stderr}"
    );
}

#[tokio::test]
async fn export_writes_json_lines_that_verify_offline() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..4 {
        admin.create_user(&format!("e{i}")).await;
    }
    let file = server.data_dir().join("audit.jsonl");
    let (code, _, stderr) = cli(
        &server,
        &server.admin_key,
        &["audit", "export", "--file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let events = admin.get("/v1/audit?limit=500").await.expect(200);
    assert_eq!(
        lines.len(),
        events["items"].as_array().unwrap().len(),
        "the export holds every event of the tenant"
    );
    for (i, line) in lines.iter().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["seq"].as_i64().unwrap(), i as i64 + 1);
    }
    let (code, stdout, _) = cli(
        &server,
        &server.admin_key,
        &["audit", "verify", "--file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("{} records verified", lines.len())),
        "{stdout}"
    );
    // Editing the export is detected too.
    std::fs::write(&file, text.replacen("\"e2\"", "\"e9\"", 1)).unwrap();
    let (code, _, stderr) = cli(
        &server,
        &server.admin_key,
        &["audit", "verify", "--file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn concurrent_writes_keep_one_unbroken_chain() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let writes = (0..40).map(|i| {
        let admin = admin.clone();
        tokio::spawn(async move { admin.create_user(&format!("c{i}")).await })
    });
    for write in writes {
        write.await.unwrap();
    }
    let (code, stdout, stderr) = cli(&server, &server.admin_key, &["audit", "verify"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(admin.audit("user.create").await.len(), 40);
}
