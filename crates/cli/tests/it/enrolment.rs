//! Enrolment links: an administrator hands a new user a single-use, expiring link; the user
//! chooses their own password on it, is signed in and sent on to add a passkey. Links are
//! used once (also under simultaneous use), expire, are replaced by newer ones, and work only
//! for active users.

use serde_json::{Value, json};

use crate::concurrency::all_at_once;
use crate::harness::{TestServer, cli};
use crate::signin::{Browser, PASSWORD};

/// The path (with the token) of a new enrolment link for `user`.
async fn invite(server: &TestServer, user: &str, body: Value) -> (String, Value) {
    let link = server
        .admin()
        .post(&format!("/v1/users/{user}/enrolment-link"), body)
        .await
        .expect(201);
    let url = link["url"].as_str().unwrap();
    let path = public_path(url).to_owned();
    assert!(path.starts_with("/t/operator/enrol?token="), "{path}");
    (path, link)
}

/// The path of a URL on the server's public URL (`http://localhost:port`).
fn public_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://localhost:")
        .expect("the link is on the server's public URL");
    &rest[rest.find('/').unwrap()..]
}

fn token_of(path: &str) -> &str {
    path.split_once("token=").unwrap().1
}

/// Submits the link's form in `browser` with `password` typed twice (or `confirm`).
async fn choose(
    browser: &mut Browser,
    path: &str,
    password: &str,
    confirm: &str,
) -> crate::signin::Page {
    let form = browser.get(path).await;
    let csrf = if form.status == 200 {
        form.csrf()
    } else {
        browser.get("/t/operator/sign-in").await.csrf()
    };
    browser
        .post(
            "/t/operator/enrol",
            &[
                ("csrf", &csrf),
                ("token", token_of(path)),
                ("new_password", password),
                ("confirm_password", confirm),
            ],
        )
        .await
}

#[tokio::test]
async fn a_link_lets_a_new_user_choose_their_own_password_once_and_signs_them_in() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let erin = admin.create_user("erin").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (path, link) = invite(&server, &erin, json!({})).await;
    assert_eq!(link["replaced"], 0);
    let expires = time::OffsetDateTime::parse(
        link["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::hours(71) && left <= time::Duration::hours(72));

    let mut browser = Browser::new(&server);
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Welcome, erin"), "{}", page.body);

    // Mistakes leave the link usable.
    let differ = choose(&mut browser, &path, PASSWORD, "something else entirely").await;
    assert_eq!(differ.status, 422);
    assert!(differ.body.contains("differ"), "{}", differ.body);
    let weak = choose(&mut browser, &path, "erin", "erin").await;
    assert_eq!(weak.status, 422, "{}", weak.body);
    let forged = browser
        .post(
            "/t/operator/enrol",
            &[
                ("csrf", &"x".repeat(43)),
                ("token", token_of(&path)),
                ("new_password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        forged.status, 403,
        "a form without this browser's CSRF token"
    );

    let done = choose(&mut browser, &path, PASSWORD, PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/t/operator/account/passkeys?welcome=1");
    let passkeys = browser.get(done.location()).await;
    assert_eq!(passkeys.status, 200);
    assert!(
        passkeys.body.contains("Your password is set"),
        "{}",
        passkeys.body
    );
    let status = admin
        .get(&format!("/v1/users/{erin}/password"))
        .await
        .expect(200);
    assert_eq!(status["has_password"], true);
    assert_eq!(status["must_change"], false);

    // Used once: the same link again, in any browser, is refused and changes nothing.
    let mut other = Browser::new(&server);
    let again = other.get(&path).await;
    assert_eq!(again.status, 410);
    assert!(again.body.contains("already been used"), "{}", again.body);
    let replay = choose(
        &mut other,
        &path,
        "a different passphrase here",
        "a different passphrase here",
    )
    .await;
    assert_eq!(replay.status, 410, "{}", replay.body);
    assert_eq!(
        Browser::new(&server)
            .sign_in("operator", "erin", PASSWORD)
            .await
            .status,
        303,
        "the password erin chose works"
    );

    // Who did what: the administrator made the link, erin used it.
    let made = admin.audit("user.enrolment_link.create").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["target"]["id"], erin);
    let used = admin.audit("user.enrolment_link.redeem").await;
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["actor"]["id"], erin);
    assert_eq!(used[0]["details"]["password_set"], true);
    let text = serde_json::to_string(&[made, used]).unwrap();
    assert!(
        !text.contains(token_of(&path)),
        "the link is never in the trail"
    );

    // A new link for someone who is signed in ends their sessions once it is used.
    let (second, _) = invite(&server, &erin, json!({"expires_in_hours": 1})).await;
    assert_eq!(
        choose(
            &mut other,
            &second,
            "fresh start quartz meadow",
            "fresh start quartz meadow"
        )
        .await
        .status,
        303
    );
    let ended = browser.get("/t/operator/account").await;
    assert_eq!(ended.status, 303, "erin's earlier session ended");
}

#[tokio::test]
async fn links_expire_are_replaced_and_work_only_for_active_users() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let frank = admin.create_user("frank").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (body, status, field) in [
        (
            json!({"expires_in_hours": 0}),
            422,
            Some("expires_in_hours"),
        ),
        (
            json!({"expires_in_hours": 721}),
            422,
            Some("expires_in_hours"),
        ),
        (json!({"expires_in_hours": "soon"}), 400, None),
        (json!({"expires": 3}), 400, None),
    ] {
        let problem = admin
            .post(&format!("/v1/users/{frank}/enrolment-link"), body)
            .await
            .problem(status);
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{problem}");
        }
    }
    assert!(admin.audit("user.enrolment_link.create").await.is_empty());

    // A newer link replaces the older one.
    let (first, _) = invite(&server, &frank, json!({})).await;
    let (second, link) = invite(&server, &frank, json!({"expires_in_hours": 2})).await;
    assert_eq!(link["replaced"], 1);
    let mut browser = Browser::new(&server);
    assert_eq!(browser.get(&first).await.status, 404);
    assert_eq!(browser.get(&second).await.status, 200);

    // Made-up and mangled links name nothing.
    for path in [
        format!("/t/operator/enrol?token={}", "A".repeat(43)),
        "/t/operator/enrol?token=%00%27".to_owned(),
        "/t/operator/enrol".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(!page.body.contains("frank"));
    }

    // Expired after its hours.
    server.advance(time::Duration::hours(3));
    let late = browser.get(&second).await;
    assert_eq!(late.status, 410);
    assert!(late.body.contains("expired"), "{}", late.body);

    // A disabled user gets no link, and one made before the user was disabled stops working.
    let (third, _) = invite(&server, &frank, json!({})).await;
    admin
        .patch(&format!("/v1/users/{frank}"), json!({"state": "disabled"}))
        .await
        .expect(200);
    assert_eq!(browser.get(&third).await.status, 403);
    assert_eq!(
        choose(&mut browser, &third, PASSWORD, PASSWORD)
            .await
            .status,
        403
    );
    admin
        .post(&format!("/v1/users/{frank}/enrolment-link"), json!({}))
        .await
        .problem(409);

    // Handing out links is resetting a credential: a reader may not.
    let (_, reader) = admin
        .principal_with_role("reader", "security_reader", "tenant")
        .await;
    server
        .client(&reader)
        .post(&format!("/v1/users/{frank}/enrolment-link"), json!({}))
        .await
        .problem(403);
}

#[tokio::test]
async fn of_simultaneous_uses_of_one_link_exactly_one_sets_the_password() {
    let server = TestServer::start().await;
    let gina = server.admin().create_user("gina").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (path, _) = invite(&server, &gina, json!({})).await;
    let mut browser = Browser::new(&server);
    let csrf = browser.get(&path).await.csrf();
    let token = token_of(&path).to_owned();
    let passwords: Vec<String> = (0..12)
        .map(|i| format!("racing password number {i}"))
        .collect();
    let statuses = all_at_once(passwords.len(), |i| {
        let password = passwords[i].clone();
        browser.post_detached(
            "/t/operator/enrol",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("new_password", &password),
                ("confirm_password", &password),
            ],
        )
    })
    .await;
    let won: Vec<usize> = (0..statuses.len())
        .filter(|i| statuses[*i] == 303)
        .collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 410),
        "{statuses:?}"
    );
    assert_eq!(
        server
            .admin()
            .audit("user.enrolment_link.redeem")
            .await
            .len(),
        1
    );
    let loser = (won[0] + 1) % passwords.len();
    for (i, works) in [(won[0], true), (loser, false)] {
        let status = Browser::new(&server)
            .sign_in("operator", "gina", &passwords[i])
            .await
            .status;
        assert_eq!(status == 303, works, "password {i}: {status}");
    }
}

#[tokio::test]
async fn the_command_line_prints_the_link() {
    let server = TestServer::start().await;
    let hank = server.admin().create_user("hank").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, stdout, stderr) = cli(
        &server,
        &server.admin_key,
        &["user", "invite", &hank, "--hours", "5"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let url = stdout.trim();
    let path = public_path(url);
    assert!(path.starts_with("/t/operator/enrol?token="), "{stdout}");
    assert!(stderr.contains("channel you trust"), "{stderr}");
    assert_eq!(Browser::new(&server).get(path).await.status, 200);
}
