//! Behind reverse proxies: the client's address comes from `Forwarded` / `X-Forwarded-For`
//! only when a configured trusted proxy sent them, and from nobody else, wherever an address is
//! used (the audit trail, the sign-in log, the throttles).

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

/// The source address the audit trail gave the creation of `user_name`.
async fn recorded_address(
    server: &TestServer,
    user_name: &str,
    headers: &[(&str, &str)],
) -> String {
    let user = server
        .admin()
        .send(
            Method::POST,
            "/v1/users",
            Some(json!({"user_name": user_name})),
            headers,
        )
        .await
        .expect(201);
    let events = server.admin().audit("user.create").await;
    let event = events
        .iter()
        .find(|e| e["target"]["id"] == user["id"])
        .unwrap_or_else(|| panic!("no audit event for {user_name}: {events:?}"));
    event["origin"]["source_ip"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarding_headers_are_ignored_unless_a_trusted_proxy_sent_them() {
    let direct = TestServer::start().await;
    let spoofed = [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
    ];
    assert_eq!(
        recorded_address(&direct, "ada", &spoofed).await,
        "127.0.0.1"
    );

    let proxied = TestServer::start_with(|mut s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".into(), "10.0.0.0/8".into()]);
        s
    })
    .await;
    // The client wrote 198.51.100.1 itself; the edge proxy saw 203.0.113.9; an inner proxy
    // (trusted) forwarded it to us.
    let chain = [("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.7")];
    assert_eq!(
        recorded_address(&proxied, "bob", &chain).await,
        "203.0.113.9"
    );
    // RFC 7239 wins over the older header when a proxy sends both.
    let both = [
        ("forwarded", "for=\"[2001:db8::17]:4711\""),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    assert_eq!(
        recorded_address(&proxied, "cy", &both).await,
        "2001:db8::17"
    );
    // A proxy that forwards nothing leaves its own address.
    assert_eq!(recorded_address(&proxied, "di", &[]).await, "127.0.0.1");
}

#[tokio::test]
async fn a_client_cannot_escape_the_throttle_by_inventing_addresses() {
    let server = TestServer::start_with(|mut s| {
        s.auth_failures_per_minute = Some(5);
        s
    })
    .await;
    let guesser = server.client("pcs_0123456789abcdef_wrongwrongwrongwrongwrongwrongwrongwrongwro");
    let mut statuses = Vec::new();
    for i in 0..8 {
        let invented = format!("198.51.100.{i}");
        statuses.push(
            guesser
                .send(
                    Method::GET,
                    "/v1/users",
                    None,
                    &[("x-forwarded-for", &invented)],
                )
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_throttle() {
    let server = TestServer::start_with(|mut s| {
        s.auth_failures_per_minute = Some(5);
        s.trusted_proxies = Some(vec!["127.0.0.1".into()]);
        s
    })
    .await;
    let guesser = server.client("pcs_0123456789abcdef_wrongwrongwrongwrongwrongwrongwrongwrongwro");
    let from = |address: &'static str| [("x-forwarded-for", address)];
    for _ in 0..5 {
        guesser
            .send(Method::GET, "/v1/users", None, &from("203.0.113.66"))
            .await
            .problem(401);
    }
    guesser
        .send(Method::GET, "/v1/users", None, &from("203.0.113.66"))
        .await
        .problem(429);
    // Another person behind the same proxy is not locked out by the guesser.
    server
        .admin()
        .send(Method::GET, "/v1/users", None, &from("203.0.113.77"))
        .await
        .expect(200);
}
