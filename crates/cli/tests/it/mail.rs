//! E-mail, delivered to a real SMTP server (aiosmtpd, started by each test) and read back:
//! forgotten passwords, invitations, address verification and notices, the links in the
//! received messages followed as a person would. Skipped, saying so, unless
//! `PORTCULLIS_TEST_SMTP_PYTHON` names a Python with aiosmtpd (`.ci/run` sets it up).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::concurrency::all_at_once;
use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD, user_with_password};

/// An SMTP server that keeps what it receives; stops when dropped.
pub(crate) struct Sink {
    _child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// A message the sink received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The image sent inline as `cid:logo`: its type and bytes.
    pub logo: Option<(String, Vec<u8>)>,
}

impl Received {
    /// The path (with its query) of the first link in the message to the server's public URL.
    pub fn link(&self) -> String {
        let start = self
            .text
            .find("http://localhost:")
            .unwrap_or_else(|| panic!("no link in {}", self.text));
        let url: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let rest = &url["http://localhost:".len()..];
        rest[rest.find('/').unwrap()..].to_owned()
    }
}

fn sink_python() -> Option<String> {
    let python = std::env::var("PORTCULLIS_TEST_SMTP_PYTHON").ok();
    if python.is_none() {
        eprintln!("PORTCULLIS_TEST_SMTP_PYTHON is not set (a Python with aiosmtpd): skipped");
    }
    python
}

fn repository(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

impl Sink {
    /// Starts the sink with extra arguments (see tests/smtp/sink.py); `None` when skipped.
    pub async fn start(extra: &[&str]) -> Option<Self> {
        let python = sink_python()?;
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let messages = dir.path().join("messages");
        std::fs::create_dir(&messages).unwrap();
        let child = Command::new(python)
            .arg(repository("tests/smtp/sink.py"))
            .arg("--dir")
            .arg(&messages)
            .arg("--port-file")
            .arg(&port_file)
            .args(extra)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts");
        for _ in 0..300 {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                return Some(Self {
                    _child: child,
                    dir,
                    port: port.trim().parse().unwrap(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the SMTP sink did not start");
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("messages"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Waits until `n` messages have arrived (the sender works in the background).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..600 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let messages = self.messages();
        assert!(
            messages.len() >= n,
            "{} of {n} messages arrived",
            messages.len()
        );
        messages
    }

    /// Server settings that send through this sink in the clear.
    pub fn settings(
        &self,
    ) -> impl FnOnce(portcullis_server::config::Settings) -> portcullis_server::config::Settings + use<>
    {
        let port = self.port;
        move |mut s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}?tls=none"));
            s.mail_from = Some("Sign-in <no-reply@example.com>".into());
            s
        }
    }
}

fn parse(raw: &[u8]) -> Received {
    let mail = mailparse::parse_mail(raw).expect("a MIME message");
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    // Parts at any depth: the HTML sits beside its inline images in a multipart/related.
    let part = |mime: &str| {
        mail.parts()
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().unwrap())
            .unwrap_or_default()
    };
    let logo = mail
        .parts()
        .find(|p| {
            p.headers.iter().any(|h| {
                h.get_key().eq_ignore_ascii_case("Content-ID") && h.get_value() == "<logo>"
            })
        })
        .map(|p| (p.ctype.mimetype.clone(), p.get_body_raw().unwrap()));
    Received {
        to: header("X-Envelope-To"),
        subject: header("Subject"),
        text: part("text/plain"),
        html: part("text/html"),
        logo,
    }
}

/// A user with a password and an address; their id.
async fn person(server: &TestServer, name: &str) -> String {
    let id = user_with_password(server, name, false).await;
    server
        .admin()
        .patch(
            &format!("/v1/users/{id}"),
            json!({"email": format!("{name}@example.com")}),
        )
        .await
        .expect(200);
    id
}

async fn forgot(browser: &mut Browser, account: &str) -> crate::signin::Page {
    let csrf = browser.get("/t/operator/forgot").await.csrf();
    browser
        .post(
            "/t/operator/forgot",
            &[("csrf", &csrf), ("account", account)],
        )
        .await
}

async fn choose_password(browser: &mut Browser, link: &str, password: &str) -> crate::signin::Page {
    let page = browser.get(link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = link.split_once("token=").unwrap().1;
    let action = link.split_once('?').unwrap().0;
    browser
        .post(
            action,
            &[
                ("csrf", &page.csrf()),
                ("token", token),
                ("new_password", password),
                ("confirm_password", password),
            ],
        )
        .await
}

const NEW_PASSWORD: &str = "lantern pebble cactus harbour";

#[tokio::test]
async fn a_forgotten_password_is_reset_with_a_mailed_link_once_and_every_session_ends() {
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    let id = person(&server, "nora").await;
    let mut signed_in = Browser::new(&server);
    assert_eq!(
        signed_in.sign_in("operator", "nora", PASSWORD).await.status,
        303
    );
    let mut browser = Browser::new(&server);
    let sign_in = browser.get("/t/operator/sign-in").await;
    assert!(
        sign_in.body.contains("/t/operator/forgot"),
        "the sign-in page offers a reset"
    );

    let asked = forgot(&mut browser, "NORA@example.com").await;
    assert_eq!(asked.status, 200);
    assert!(
        asked
            .body
            .contains("If an account with that name or address")
    );
    let message = sink.wait_for(1).await.remove(0);
    assert_eq!(message.to, "nora@example.com");
    assert!(
        message.subject.contains("Reset your"),
        "{}",
        message.subject
    );
    assert!(message.html.contains("Choose a new password"));
    let link = message.link();
    assert!(link.starts_with("/t/operator/reset?token="), "{link}");
    // Another tenant's reset page knows nothing of it.
    server.admin().create_tenant("elsewhere").await;
    let elsewhere = browser
        .get(&link.replace("/t/operator/", "/t/elsewhere/"))
        .await;
    assert!(
        elsewhere.body.contains("This link is not valid"),
        "{}",
        elsewhere.body
    );
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.body);

    let done = choose_password(&mut browser, &link, NEW_PASSWORD).await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), "/t/operator/sign-in?done=password-reset");
    let notice = browser.get(done.location()).await;
    assert!(notice.body.contains("Your password was changed"));
    // The session that was open before is gone; the old password no longer works.
    assert_ne!(signed_in.get("/t/operator/account").await.status, 200);
    assert_ne!(
        Browser::new(&server)
            .sign_in("operator", "nora", PASSWORD)
            .await
            .status,
        303
    );
    assert_eq!(
        Browser::new(&server)
            .sign_in("operator", "nora", NEW_PASSWORD)
            .await
            .status,
        303
    );
    // The link is used up.
    let again = browser.get(&link).await;
    assert_eq!(again.status, 410);
    // The mailbox is proven, and its owner is told the password changed.
    let user = server
        .admin()
        .get(&format!("/v1/users/{id}"))
        .await
        .expect(200);
    assert_eq!(user["email_verified"], true);
    let notice = sink.wait_for(2).await.remove(1);
    assert!(
        notice.subject.contains("password was changed"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains("by you"), "{}", notice.text);
    let events = server.admin().audit("user.password.reset").await;
    assert_eq!(events.len(), 1);
    let sent = server
        .admin()
        .audit_once("mail.send", |events| events.len() >= 2)
        .await;
    assert!(sent.iter().all(|e| e["outcome"] == "success"));
    // Delivered messages keep no link.
    let links = server
        .db
        .texts("SELECT COALESCE(sealed_link, '') FROM mail_outbox")
        .await;
    assert!(links.iter().all(String::is_empty), "{links:?}");
}

#[tokio::test]
async fn a_reset_request_answers_the_same_for_any_name_and_an_account_gets_few_messages() {
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    person(&server, "otto").await;
    let mut browser = Browser::new(&server);
    let known = forgot(&mut browser, "otto").await;
    let unknown = forgot(&mut browser, "nobody-here").await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body, "the answer tells nothing");
    let oversized = forgot(&mut browser, &"a".repeat(257)).await;
    assert_eq!(oversized.status, 422, "{}", oversized.body);
    // A guest past their expiry is refused inside the write, like a disabled user.
    let guest = person(&server, "gone").await;
    server
        .db
        .execute(&format!(
            "UPDATE users SET expires_at = 1 WHERE id = '{guest}'"
        ))
        .await
        .unwrap();
    forgot(&mut browser, "gone").await;

    // Twenty requests at once for one account: the limit is checked inside the write.
    let csrf = browser.get("/t/operator/forgot").await.csrf();
    let statuses = all_at_once(20, |_| {
        browser.post_detached(
            "/t/operator/forgot",
            &[("csrf", &csrf), ("account", "otto")],
        )
    })
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let admin = server.admin();
    let requests = admin
        .audit_once("user.password_reset.request", |events| events.len() >= 23)
        .await;
    assert_eq!(requests.len(), 23, "every request is audited");
    let granted = requests
        .iter()
        .filter(|e| e["outcome"] == "success")
        .count();
    assert_eq!(granted, 3, "three messages an hour");
    let reasons: Vec<&str> = requests
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"no such account"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("past their expiry")),
        "{reasons:?}"
    );
    let messages = sink.wait_for(3).await;
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.to == "otto@example.com"));
    // Only the newest link works: each request replaced the one before.
    let older = messages[0].link();
    let newest = messages[2].link();
    assert_eq!(browser.get(&older).await.status, 404);
    assert_eq!(browser.get(&newest).await.status, 200);
}

#[tokio::test]
async fn an_invitation_is_mailed_and_proves_the_address_when_used() {
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    let admin = server.admin();
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "ivy", "email": "ivy@example.com"}),
        )
        .await
        .expect(201);
    let id = user["id"].as_str().unwrap();
    assert_eq!(user["email_verified"], false);
    let sent = admin
        .post(
            &format!("/v1/users/{id}/enrolment-link"),
            json!({"send": true}),
        )
        .await
        .expect(201);
    assert_eq!(sent["sent_to"], "ivy@example.com");
    assert!(
        sent.get("url").is_none(),
        "a mailed link is not shown: {sent}"
    );
    let message = sink.wait_for(1).await.remove(0);
    assert!(
        message.subject.contains("account is ready"),
        "{}",
        message.subject
    );
    assert!(message.text.contains("ivy"));
    let mut browser = Browser::new(&server);
    let done = choose_password(&mut browser, &message.link(), NEW_PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let user = admin.get(&format!("/v1/users/{id}")).await.expect(200);
    assert_eq!(user["email_verified"], true);
    // Choosing a first password earns no notice.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
    // A user without an address cannot be sent one.
    let bare = admin.create_user("bare").await;
    let refused = admin
        .post(
            &format!("/v1/users/{}/enrolment-link", bare["id"].as_str().unwrap()),
            json!({"send": true}),
        )
        .await
        .problem(409);
    assert_eq!(refused["field"], "email", "{refused}");
}

#[tokio::test]
async fn a_verification_link_proves_the_address_only_when_confirmed_and_only_while_it_is_the_same()
{
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    let id = person(&server, "vera").await;
    let admin = server.admin();
    let sent = admin
        .post(&format!("/v1/users/{id}/email-verification"), json!({}))
        .await
        .expect(202);
    assert_eq!(sent["sent_to"], "vera@example.com");
    let link = sink.wait_for(1).await.remove(0).link();
    assert!(
        link.starts_with("/t/operator/verify-email?token="),
        "{link}"
    );
    let mut browser = Browser::new(&server);
    // Opening the link (as a mail scanner would) confirms nothing.
    let page = browser.get(&link).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("vera@example.com"));
    let user = admin.get(&format!("/v1/users/{id}")).await.expect(200);
    assert_eq!(user["email_verified"], false);
    let token = link.split_once("token=").unwrap().1;
    let confirmed = browser
        .post(
            "/t/operator/verify-email",
            &[("csrf", &page.csrf()), ("token", token)],
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(confirmed.body.contains("is confirmed"));
    let user = admin.get(&format!("/v1/users/{id}")).await.expect(200);
    assert_eq!(user["email_verified"], true);

    // A new address is unproven; a verification link for the old one no longer proves anything.
    let again = admin
        .post(&format!("/v1/users/{id}/email-verification"), json!({}))
        .await
        .expect(202);
    assert_eq!(again["sent_to"], "vera@example.com");
    let stale = sink.wait_for(2).await.remove(1).link();
    let changed = admin
        .patch(
            &format!("/v1/users/{id}"),
            json!({"email": "vera@example.org"}),
        )
        .await
        .expect(200);
    assert_eq!(changed["email_verified"], false);
    let page = browser.get(&stale).await;
    let token = stale.split_once("token=").unwrap().1;
    let refused = browser
        .post(
            "/t/operator/verify-email",
            &[("csrf", &page.csrf()), ("token", token)],
        )
        .await;
    assert_eq!(refused.status, 410, "{}", refused.body);
    let user = admin.get(&format!("/v1/users/{id}")).await.expect(200);
    assert_eq!(user["email_verified"], false);
    // An administrator may vouch for it.
    let vouched = admin
        .patch(&format!("/v1/users/{id}"), json!({"email_verified": true}))
        .await
        .expect(200);
    assert_eq!(vouched["email_verified"], true);
    let none = admin.create_user("no-address").await;
    let invalid = admin
        .patch(
            &format!("/v1/users/{}", none["id"].as_str().unwrap()),
            json!({"email_verified": true}),
        )
        .await
        .problem(422);
    assert_eq!(invalid["field"], "email_verified");
}

#[tokio::test]
async fn a_user_is_told_of_changes_to_how_they_sign_in_whoever_made_them() {
    let Some(sink) = Sink::start(&[]).await else {
        return;
    };
    let server = TestServer::start_with(sink.settings()).await;
    let id = person(&server, "tess").await;
    server
        .admin()
        .send(
            reqwest::Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(json!({"password": NEW_PASSWORD, "must_change": true})),
            &[],
        )
        .await
        .expect(204);
    // `person` set the first password before the address: that earned no message.
    let message = sink.wait_for(1).await.remove(0);
    assert!(
        message.subject.contains("password was changed"),
        "{}",
        message.subject
    );
    assert!(
        message.text.contains("by an administrator"),
        "{}",
        message.text
    );
    server
        .admin()
        .delete(&format!("/v1/users/{id}/password"))
        .await
        .expect(204);
    let removed = sink.wait_for(2).await.remove(1);
    assert!(
        removed.subject.contains("was removed"),
        "{}",
        removed.subject
    );
    assert!(
        removed.text.contains("Your password was removed"),
        "{}",
        removed.text
    );
}

#[tokio::test]
async fn mail_goes_over_starttls_with_a_password_and_is_retried_when_the_server_defers() {
    let Some(python) = sink_python() else {
        return;
    };
    drop(python);
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let Some(sink) = Sink::start(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--defer",
        "1",
        "--user",
        "mailer",
        "--password",
        "s3cret-for-smtp",
    ])
    .await
    else {
        return;
    };
    let password_file = certs.path().join("smtp-password");
    std::fs::write(&password_file, "s3cret-for-smtp\n").unwrap();
    let port = sink.port;
    let server = TestServer::start_with(move |mut s| {
        s.smtp_url = Some(format!("smtp://localhost:{port}"));
        s.smtp_ca_file = Some(ca.clone());
        s.smtp_user = Some("mailer".into());
        s.smtp_password_file = Some(password_file.clone());
        s.mail_from = Some("no-reply@example.com".into());
        s
    })
    .await;
    let admin = server.admin();
    let user = admin
        .post(
            "/v1/users",
            json!({"user_name": "sam", "email": "sam@example.com"}),
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
    // The first attempt is deferred (451); the next comes a minute later.
    let mut deferred = false;
    for _ in 0..300 {
        if server.metrics().await.contains("result=\"deferred\"") {
            deferred = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(deferred, "the first attempt was deferred");
    assert!(sink.messages().is_empty());
    server.advance(time::Duration::seconds(61));
    let message = sink.wait_for(1).await.remove(0);
    assert_eq!(message.to, "sam@example.com");
    let row = server
        .db
        .texts("SELECT CAST(attempts AS TEXT) FROM mail_outbox")
        .await;
    assert_eq!(row, ["2"]);
}

/// A certificate authority and a certificate for `localhost` it signed: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test SMTP CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "smtp.key",
        "-out",
        "smtp.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "smtp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "smtp.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    )
}

#[tokio::test]
async fn without_smtp_links_are_shown_and_nobody_is_offered_a_reset_by_mail() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let sign_in = browser.get("/t/operator/sign-in").await;
    assert!(!sign_in.body.contains("/t/operator/forgot"));
    let page = browser.get("/t/operator/forgot").await;
    assert!(
        page.body.contains("Ask your administrator"),
        "{}",
        page.body
    );
    let user = server.admin().create_user("shown").await;
    let path = format!("/v1/users/{}/enrolment-link", user["id"].as_str().unwrap());
    let refused = server
        .admin()
        .post(&path, json!({"send": true}))
        .await
        .problem(409);
    assert!(
        refused["detail"].as_str().unwrap().contains("smtp_url"),
        "{refused}"
    );
    let shown: Value = server.admin().post(&path, json!({})).await.expect(201);
    assert!(
        shown["url"]
            .as_str()
            .unwrap()
            .contains("/t/operator/enrol?token=")
    );
    // Nothing is posted for delivery when nothing delivers it.
    let queued = server.db.texts("SELECT id FROM mail_outbox").await;
    assert!(queued.is_empty(), "{queued:?}");
}
