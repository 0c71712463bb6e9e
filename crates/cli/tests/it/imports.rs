//! Bulk import of users from CSV: the file checked whole, lines created through the same rules
//! as one user, the report by line, and no user twice however imports overlap.

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Client, TestServer};

async fn post_csv(client: &Client, csv: &str, content_type: &str) -> crate::harness::Reply {
    client
        .send_bytes(
            Method::POST,
            "/v1/user-imports?file_name=people.csv",
            csv.as_bytes().to_vec(),
            content_type,
        )
        .await
}

/// Follows an import until it is no longer running.
pub(crate) async fn finished(client: &Client, id: &str) -> Value {
    for _ in 0..600 {
        let report = client
            .get(&format!("/v1/user-imports/{id}"))
            .await
            .expect(200);
        if report["state"] != "running" {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import did not finish");
}

fn people(count: usize) -> String {
    let mut csv = String::from("user_name,email,display_name\n");
    for i in 0..count {
        csv.push_str(&format!("person{i},person{i}@example.com,Person {i}\n"));
    }
    csv
}

async fn user_count(client: &Client) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?limit=200&cursor={c}"),
            None => "/v1/users?limit=200".into(),
        };
        let page = client.get(&path).await.expect(200);
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return count,
        }
    }
}

#[tokio::test]
async fn a_csv_file_becomes_users_with_a_report_of_each_line_that_failed() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin.create_user("taken").await;

    // Not CSV, not readable as users, or sent by someone who may not create users: refused
    // whole, nothing created.
    post_csv(&admin, "user_name\nada\n", "application/json")
        .await
        .problem(415);
    let refused = post_csv(&admin, "name,email\nada,ada@example.com\n", "text/csv")
        .await
        .problem(422);
    assert!(
        refused["detail"].as_str().unwrap().contains("\"name\""),
        "{refused}"
    );
    let (_, reader) = admin
        .principal_with_role("import-reader", "security_reader", "tenant")
        .await;
    post_csv(&server.client(&reader), &people(2), "text/csv")
        .await
        .problem(403);
    assert_eq!(user_count(&admin).await, 1);

    // 300 lines, four of them wrong in different ways.
    let mut csv = people(296);
    csv.push_str("taken,taken@example.com,Already here\n");
    csv.push_str("person5,again@example.com,Twice in the file\n");
    csv.push_str("bad-mail,not-an-address,Wrong address\n");
    csv.push_str(",nobody@example.com,No name\n");
    let started = post_csv(&admin, &csv, "text/csv; charset=utf-8")
        .await
        .expect(202);
    assert_eq!(started["total"], 300, "{started}");
    assert_eq!(started["file_name"], "people.csv");
    let report = finished(&admin, started["id"].as_str().unwrap()).await;
    assert_eq!(report["state"], "finished", "{report}");
    assert_eq!(
        (
            report["processed"].as_u64(),
            report["created"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(300), Some(296), Some(4)),
        "{report}"
    );
    let failures = report["failures"].as_array().unwrap();
    let lines: Vec<u64> = failures
        .iter()
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![298, 299, 300, 301], "{report}");
    assert!(
        failures[0]["error"].as_str().unwrap().contains("already"),
        "{report}"
    );
    assert_eq!(failures[1]["user_name"], "person5");
    assert!(
        failures[2]["error"].as_str().unwrap().starts_with("email"),
        "{report}"
    );
    assert_eq!(failures[3]["error"], "has no user_name");
    assert_eq!(user_count(&admin).await, 297);
    let found = admin.get("/v1/users?prefix=person42").await.expect(200);
    assert_eq!(found["items"][0]["display_name"], "Person 42", "{found}");

    // Audited: the import and its end, and each user as if created one by one.
    assert_eq!(admin.audit("user.import").await.len(), 1);
    let end = admin.audit("user.import.finish").await;
    assert_eq!(end[0]["details"]["created"], 296, "{end:?}");
    let created: Vec<Value> = admin
        .audit("user.create")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(
        created.len(),
        297,
        "{:?}",
        created.iter().map(|e| &e["target"]).collect::<Vec<_>>()
    );

    // The same file again creates nothing and says why for each line.
    let again = post_csv(&admin, &csv, "text/csv").await.expect(202);
    let again = finished(&admin, again["id"].as_str().unwrap()).await;
    assert_eq!(
        (again["created"].as_u64(), again["failed"].as_u64()),
        (Some(0), Some(300))
    );
    assert_eq!(user_count(&admin).await, 297);

    // Another tenant cannot read the report.
    let (_, other) = admin.create_tenant("globex").await;
    server
        .client(&other)
        .get(&format!(
            "/v1/user-imports/{}",
            started["id"].as_str().unwrap()
        ))
        .await
        .problem(404);
}

#[tokio::test]
async fn overlapping_imports_of_one_file_create_each_user_once() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let csv = people(120);
    let starts = joined((0..4).map(|_| {
        let admin = admin.clone();
        let csv = csv.clone();
        tokio::spawn(async move { post_csv(&admin, &csv, "text/csv").await.expect(202) })
    }))
    .await;
    let mut created = 0;
    for started in &starts {
        let report = finished(&admin, started["id"].as_str().unwrap()).await;
        assert_eq!(report["processed"], 120, "{report}");
        created += report["created"].as_u64().unwrap();
    }
    assert_eq!(
        created, 120,
        "every user created exactly once across the imports"
    );
    assert_eq!(user_count(&admin).await, 120);
}

async fn joined(tasks: impl Iterator<Item = tokio::task::JoinHandle<Value>>) -> Vec<Value> {
    let mut done = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        done.push(task.await.unwrap());
    }
    done
}

#[tokio::test]
async fn an_oversized_file_is_cut_off_before_it_is_read() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let huge = "user_name\n".to_owned() + &"x".repeat(9 * 1024 * 1024);
    post_csv(&admin, &huge, "text/csv").await.problem(413);
    assert_eq!(user_count(&admin).await, 0);
}
