//! A tenant's branding: checked on the way in, shown on its pages and in its messages.

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

use crate::harness::{Client, Reply, TestServer};
use crate::mail::Sink;

/// A real 160×48 PNG.
pub(crate) const TINY_PNG: &[u8] = include_bytes!("logo.png");

fn data_url(media_type: &str, bytes: &[u8]) -> String {
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

async fn put(client: &Client, body: serde_json::Value) -> Reply {
    client
        .send(Method::PUT, "/v1/branding", Some(body), &[])
        .await
}

async fn fetch(server: &TestServer, path: &str) -> reqwest::Response {
    reqwest::get(server.url(path)).await.unwrap()
}

#[tokio::test]
async fn branding_is_checked_and_what_is_refused_changes_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let none = admin.get("/v1/branding").await.expect(200);
    assert_eq!(none, json!({}));

    // Too light for white text, not a colour, an SVG (script), a type the bytes belie, too
    // large: each refused with what to do, and nothing saved.
    let pale = put(&admin, json!({"colour": "#ffe082"})).await.problem(422);
    assert!(
        pale["detail"].as_str().unwrap().contains("darker"),
        "{pale}"
    );
    put(&admin, json!({"colour": "purple"})).await.problem(422);
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>";
    let script = put(&admin, json!({"logo": data_url("image/png", svg)}))
        .await
        .problem(422);
    assert!(
        script["detail"].as_str().unwrap().contains("SVG"),
        "{script}"
    );
    put(&admin, json!({"logo": data_url("image/jpeg", TINY_PNG)}))
        .await
        .problem(422);
    let mut big = TINY_PNG.to_vec();
    big.resize(101 * 1024, 0);
    let large = put(&admin, json!({"logo": data_url("image/png", &big)}))
        .await
        .problem(422);
    assert!(
        large["detail"].as_str().unwrap().contains("100 KiB"),
        "{large}"
    );
    big.resize(200 * 1024, 0);
    put(&admin, json!({"logo": data_url("image/png", &big)}))
        .await
        .problem(413);
    assert_eq!(admin.get("/v1/branding").await.expect(200), json!({}));
    assert!(
        server
            .admin()
            .audit("tenant.branding.update")
            .await
            .is_empty()
    );

    // Someone who may read the tenant but not change it is refused.
    let (_, reader) = admin
        .principal_with_role("brand-reader", "security_reader", "tenant")
        .await;
    put(&server.client(&reader), json!({"colour": "#7b1fa2"}))
        .await
        .problem(403);
}

#[tokio::test]
async fn the_sign_in_pages_wear_the_tenants_name_colour_and_logo() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let me = admin.get("/v1/me").await.expect(200);
    let tenant_id = me["tenant"]["id"].as_str().unwrap().to_owned();
    admin
        .patch(
            &format!("/v1/tenants/{tenant_id}"),
            json!({"display_name": "Acme Operations"}),
        )
        .await
        .expect(200);
    let set = put(
        &admin,
        json!({"colour": "#7B1FA2", "logo": data_url("image/png", TINY_PNG)}),
    )
    .await
    .expect(200);
    assert_eq!(set["colour"], "#7b1fa2");
    let logo_url = set["logo"]["url"].as_str().unwrap().to_owned();
    assert!(
        logo_url.starts_with("/t/operator/branding/logo?v="),
        "{set}"
    );

    let page = fetch(&server, "/t/operator/sign-in")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in to Acme Operations"), "{page}");
    assert!(
        page.contains("<title>Sign in · Acme Operations</title>"),
        "{page}"
    );
    assert!(
        page.contains("<link rel=\"stylesheet\" href=\"/t/operator/branding.css\">"),
        "{page}"
    );
    let css = fetch(&server, "/t/operator/branding.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["cache-control"], "no-cache");
    let tag = css.headers()["etag"].to_str().unwrap().to_owned();
    let css = css.text().await.unwrap();
    // Asked again with its tag, it answers "not modified" in a few bytes.
    let again = reqwest::Client::new()
        .get(server.url("/t/operator/branding.css"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(css.contains("--primary: #7b1fa2;"), "{css}");
    assert!(css.contains(&logo_url), "{css}");

    // The logo is served as what its bytes are, in a sandbox, kept long under its digest.
    let logo = fetch(&server, &logo_url).await;
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        logo.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert!(
        logo.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(logo.bytes().await.unwrap().as_ref(), TINY_PNG);
    let stale = fetch(&server, "/t/operator/branding/logo?v=old").await;
    assert_eq!(stale.headers()["cache-control"], "public, max-age=60");

    // The change is audited with the image's digest, not its bytes.
    let events = admin.audit("tenant.branding.update").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let details = &events[0]["details"];
    assert_eq!(details["colour"], "#7b1fa2", "{details}");
    assert_eq!(details["logo"]["type"], "image/png", "{details}");
    assert!(details.to_string().len() < 400, "{details}");

    // Removing the logo keeps the colour; the logo is then gone.
    let removed = put(&admin, json!({"logo": null, "colour": "#7b1fa2"}))
        .await
        .expect(200);
    assert!(removed.get("logo").is_none(), "{removed}");
    assert_eq!(fetch(&server, &logo_url).await.status(), 404);
    let css = fetch(&server, "/t/operator/branding.css")
        .await
        .text()
        .await
        .unwrap();
    assert!(css.contains("#7b1fa2") && !css.contains("logo"), "{css}");
    let changed = reqwest::Client::new()
        .get(server.url("/t/operator/branding.css"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "a new branding is sent whole");

    // Another tenant is not touched, and an unknown one has no branding to show.
    let (_, other) = admin.create_tenant("globex").await;
    let theirs = server.client(&other).get("/v1/branding").await.expect(200);
    assert_eq!(theirs, json!({}));
    assert_eq!(
        fetch(&server, "/t/nobody-here/branding.css").await.status(),
        404
    );
}

#[tokio::test]
async fn messages_carry_the_tenants_colour_and_logo() {
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    let admin = server.admin();
    put(
        &admin,
        json!({"colour": "#7b1fa2", "logo": data_url("image/png", TINY_PNG)}),
    )
    .await
    .expect(200);
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "ivy", "email": "ivy@example.com"}),
        )
        .await
        .expect(201);
    admin
        .post(
            &format!("/v1/users/{}/enrolment-link", user["id"].as_str().unwrap()),
            json!({"send": true}),
        )
        .await
        .expect(201);
    let message = sink.wait_for(1).await.remove(0);
    assert!(
        message.html.contains("background:#7b1fa2"),
        "{}",
        message.html
    );
    assert!(
        message.html.contains("src=\"cid:logo\""),
        "{}",
        message.html
    );
    let (kind, bytes) = message.logo.expect("the logo goes inline with the message");
    assert_eq!((kind.as_str(), bytes.as_slice()), ("image/png", TINY_PNG));
}
