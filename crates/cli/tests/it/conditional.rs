//! Conditional access end to end: policies saved through the admin API, enforced on the real
//! sign-in pages behind a trusted proxy (so the test can sign in "from" any address), recorded
//! in the sign-in log, explained by what-if, and guarded against locking everyone out, also
//! when conflicting changes race.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Client as Admin, TestServer};
use crate::mfa::{code, enrolled};
use crate::signin::{Browser, PASSWORD, user_with_password};

const OFFICE: &str = "203.0.113.0/24";

pub(crate) async fn behind_a_proxy() -> TestServer {
    TestServer::start_with(|mut s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
        s
    })
    .await
}

async fn office(admin: &Admin) -> Value {
    admin
        .post(
            "/v1/named-locations",
            json!({"name": "office", "trusted": true, "ranges": [OFFICE]}),
        )
        .await
        .expect(201)
}

/// An enabled policy: a second factor for everyone, except from trusted locations.
fn mfa_outside_the_office() -> Value {
    json!({
        "name": "MFA outside the office", "state": "enabled",
        "include": {"all_users": true}, "applications": {"include": ["all"]},
        "conditions": {"locations": {"include": ["any"], "exclude": ["trusted"]}},
        "grant": {"kind": "require", "controls": ["mfa"]}
    })
}

pub(crate) fn browser_from(server: &TestServer, address: &str) -> Browser {
    let mut browser = Browser::new(server);
    browser.forwarded_for = Some(address.into());
    browser
}

/// The newest sign-in event of `user` with this outcome.
pub(crate) async fn last_sign_in(admin: &Admin, user: &str, outcome: &str) -> Value {
    admin
        .audit("signin")
        .await
        .into_iter()
        .find(|e| e["target"]["id"] == user && e["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no {outcome} sign-in of {user}"))
}

#[tokio::test]
async fn a_second_factor_is_asked_outside_the_trusted_range_only() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    office(&admin).await;
    let (key, _) = enrolled(&server, "ada").await;
    let ada = admin.get("/v1/users?prefix=ada").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    user_with_password(&server, "bob", false).await;
    admin
        .post("/v1/access-policies", mfa_outside_the_office())
        .await
        .expect(201);

    // Bob has no second factor: in the office his password is enough...
    let mut inside = browser_from(&server, "203.0.113.20");
    let done = inside.sign_in("operator", "bob", PASSWORD).await;
    assert_eq!(done.location(), "/t/operator/account", "{}", done.body);
    // ...elsewhere his session is held until he sets one up.
    let mut outside = browser_from(&server, "198.51.100.7");
    let held = outside.sign_in("operator", "bob", PASSWORD).await;
    assert_eq!(held.location(), "/t/operator/account/mfa", "{}", held.body);
    assert_eq!(
        outside.get("/t/operator/account").await.location(),
        "/t/operator/account/mfa"
    );

    // Ada gives her code (she always does, having an app) and the policy is satisfied by it.
    let mut away = browser_from(&server, "198.51.100.8");
    let asked = away.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(asked.location(), "/t/operator/sign-in/code");
    let page = away.get("/t/operator/sign-in/code").await;
    let signed_in = away
        .post(
            "/t/operator/sign-in/code",
            // The current code went into enrolling; the next one is good too (one step of skew).
            &[("csrf", &page.csrf()), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(
        signed_in.location(),
        "/t/operator/account",
        "{}",
        signed_in.body
    );
    let event = last_sign_in(&admin, &ada, "success").await;
    let applied = &event["details"]["conditional_access"]["applied"];
    assert_eq!(applied[0]["name"], "MFA outside the office", "{event}");
    assert_eq!(applied[0]["result"], "success", "{event}");
    assert_eq!(event["origin"]["source_ip"], "198.51.100.8");
    assert_eq!(event["details"]["application"]["kind"], "account");
}

#[tokio::test]
async fn a_block_refuses_the_right_password_and_names_itself_in_the_sign_in_log() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let bob = user_with_password(&server, "bob", false).await;
    let elsewhere = admin
        .post(
            "/v1/named-locations",
            json!({"name": "elsewhere", "ranges": ["198.51.100.0/24", "2001:db8:bad::/48"]}),
        )
        .await
        .expect(201);
    // Report-only first: recorded, not enforced.
    let mut policy = json!({
        "name": "Block elsewhere", "state": "report_only",
        "include": {"all_users": true}, "applications": {"include": ["account"]},
        "conditions": {"locations": {"include": [elsewhere["id"]]}},
        "grant": {"kind": "block"}
    });
    let created = admin
        .post("/v1/access-policies", policy.clone())
        .await
        .expect(201);
    let mut browser = browser_from(&server, "198.51.100.9");
    let done = browser.sign_in("operator", "bob", PASSWORD).await;
    assert_eq!(done.status, 303, "report-only never blocks: {}", done.body);
    let event = last_sign_in(&admin, &bob, "success").await;
    let applied = &event["details"]["conditional_access"]["applied"][0];
    assert_eq!(applied["state"], "report_only", "{event}");
    assert_eq!(applied["result"], "failure", "{event}");

    // Enabled, a block of everyone needs an emergency account outside it.
    policy["state"] = json!("enabled");
    let path = format!("/v1/access-policies/{}", created["id"].as_str().unwrap());
    admin
        .send(Method::PUT, &path, Some(policy.clone()), &[])
        .await
        .problem(409);
    emergency_account(&server).await;
    admin
        .send(Method::PUT, &path, Some(policy), &[("if-match", "\"1\"")])
        .await
        .expect(200);
    let mut blocked = browser_from(&server, "2001:db8:bad::1");
    let refused = blocked.sign_in("operator", "bob", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Block elsewhere"), "{}", refused.body);
    assert!(!blocked.cookies.contains_key("portcullis_session"));
    let event = last_sign_in(&admin, &bob, "failure").await;
    assert_eq!(event["reason"], "blocked by conditional access", "{event}");
    assert_eq!(event["details"]["refusal"]["kind"], "blocked");
    assert_eq!(
        event["details"]["conditional_access"]["applied"][0]["name"],
        "Block elsewhere"
    );
    // From an address outside the location the same password still works.
    let mut home = browser_from(&server, "192.0.2.1");
    assert_eq!(home.sign_in("operator", "bob", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    // No trusted proxy: the header is the client's own claim, and the socket address counts.
    let server = TestServer::start().await;
    let admin = server.admin();
    user_with_password(&server, "bob", false).await;
    let here = admin
        .post(
            "/v1/named-locations",
            json!({"name": "loopback", "ranges": ["127.0.0.0/8"]}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Block loopback", "state": "enabled",
                   "include": {"users": [admin.get("/v1/users?prefix=bob").await.expect(200)["items"][0]["id"]]},
                   "applications": {"include": ["all"]},
                   "conditions": {"locations": {"include": [here["id"]]}},
                   "grant": {"kind": "block"}}),
        )
        .await
        .expect(201);
    let mut spoofing = browser_from(&server, "192.0.2.1");
    assert_eq!(
        spoofing.sign_in("operator", "bob", PASSWORD).await.status,
        403
    );
}

#[tokio::test]
async fn what_if_explains_each_policy_condition_by_condition() {
    let server = TestServer::start().await;
    let admin = server.admin();
    office(&admin).await;
    let user = admin.create_user("ada").await;
    admin
        .post("/v1/access-policies", mfa_outside_the_office())
        .await
        .expect(201);
    let ask = |address: &str| json!({"user": user["id"], "address": address});
    let inside = admin
        .post("/v1/access-policies/what-if", ask("203.0.113.5"))
        .await
        .expect(200);
    assert_eq!(
        inside["evaluation"]["decision"]["kind"], "allow",
        "{inside}"
    );
    let policy = &inside["policies"][0];
    assert_eq!(policy["applies"], false);
    let location = policy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "locations")
        .unwrap();
    assert!(
        location["why"].as_str().unwrap().contains("at office"),
        "{location}"
    );
    assert!(
        location["why"]
            .as_str()
            .unwrap()
            .contains("no GeoIP database"),
        "{location}"
    );
    let outside = admin
        .post("/v1/access-policies/what-if", ask("198.51.100.5"))
        .await
        .expect(200);
    assert_eq!(
        outside["evaluation"]["decision"]["kind"], "require",
        "{outside}"
    );
    assert_eq!(
        outside["evaluation"]["decision"]["requirements"][0]["controls"],
        json!(["mfa"])
    );
    // With a second factor proved, nothing more is asked.
    let mut proved = ask("198.51.100.5");
    proved["proofs"] = json!({"strength": "mfa"});
    let done = admin
        .post("/v1/access-policies/what-if", proved)
        .await
        .expect(200);
    assert_eq!(done["evaluation"]["decision"]["kind"], "allow", "{done}");
    // Neither or both of user and service principal: a clear refusal.
    let neither = admin
        .post("/v1/access-policies/what-if", json!({}))
        .await
        .problem(422);
    assert!(
        neither["detail"].as_str().unwrap().contains("user"),
        "{neither}"
    );
}

#[tokio::test]
async fn bad_policies_are_refused_with_a_reason_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut unknown_location = mfa_outside_the_office();
    unknown_location["conditions"]["locations"]["include"] =
        json!(["0190d6a0-0000-7000-8000-000000000001"]);
    let refused = admin
        .post("/v1/access-policies", unknown_location)
        .await
        .problem(422);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("no named location"),
        "{refused}"
    );
    let mut misspelt = mfa_outside_the_office();
    misspelt["grant"]["controls"] = json!(["mfaa"]);
    let refused = admin
        .post("/v1/access-policies", misspelt)
        .await
        .problem(400);
    assert!(
        refused["detail"].as_str().unwrap().contains("mfaa"),
        "{refused}"
    );
    let mut zone = mfa_outside_the_office();
    zone["conditions"]["times"] = json!({"include": [{"time_zone": "Mars/Olympus"}]});
    let refused = admin.post("/v1/access-policies", zone).await.problem(422);
    assert!(
        refused["detail"].as_str().unwrap().contains("time zone"),
        "{refused}"
    );
    let bad_range = admin
        .post(
            "/v1/named-locations",
            json!({"name": "x", "ranges": ["10.0.0.0/33"]}),
        )
        .await
        .problem(400);
    assert_eq!(bad_range["field"], "ranges[0]", "{bad_range}");
    let listed = admin.get("/v1/access-policies").await.expect(200);
    assert_eq!(listed["items"], json!([]));

    // A location in use cannot go; a second policy of the same name cannot be made.
    let office = office(&admin).await;
    admin
        .post("/v1/access-policies", mfa_outside_the_office())
        .await
        .expect(201);
    let mut named = mfa_outside_the_office();
    named["conditions"]["locations"]["exclude"] = json!([office["id"]]);
    named["name"] = json!("mfa OUTSIDE the office");
    admin
        .post("/v1/access-policies", named.clone())
        .await
        .problem(409);
    named["name"] = json!("names the office");
    admin.post("/v1/access-policies", named).await.expect(201);
    let id = office["id"].as_str().unwrap();
    let in_use = admin
        .send(
            Method::DELETE,
            &format!("/v1/named-locations/{id}"),
            None,
            &[],
        )
        .await
        .problem(409);
    assert!(
        in_use["detail"]
            .as_str()
            .unwrap()
            .contains("names the office"),
        "{in_use}"
    );
}

fn block_everyone() -> Value {
    json!({
        "name": "Block everyone", "state": "enabled",
        "include": {"all_users": true}, "applications": {"include": ["all"]},
        "grant": {"kind": "block"}
    })
}

#[tokio::test]
async fn no_policy_may_lock_out_every_administrator_and_the_emergency_account_gets_in() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let refused = admin
        .post("/v1/access-policies", block_everyone())
        .await
        .problem(409);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("no emergency access account"),
        "{refused}"
    );
    emergency_account(&server).await;
    user_with_password(&server, "bob", false).await;
    admin
        .post("/v1/access-policies", block_everyone())
        .await
        .expect(201);
    // Taking the emergency account away now would lock everyone out.
    let refused = admin
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(json!({"emergency_accounts": []})),
            &[],
        )
        .await
        .problem(409);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("Block everyone"),
        "{refused}"
    );

    let mut bob = Browser::new(&server);
    assert_eq!(bob.sign_in("operator", "bob", PASSWORD).await.status, 403);
    let mut emergency = Browser::new(&server);
    let done = emergency.sign_in("operator", "glass", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let events = admin.audit("signin.emergency_account").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["severity"], "high");
}

/// Two changes that are each allowed but together would lock everyone out, sent at once many
/// times over: whichever commits second must see the first and be refused.
#[tokio::test]
async fn racing_changes_never_leave_everyone_locked_out() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let glass = user_with_password(&server, "glass", false).await;
    let with_glass = json!({"emergency_accounts": [glass]});
    admin
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(with_glass.clone()),
            &[],
        )
        .await
        .expect(200);
    for round in 0..10 {
        let mut block = block_everyone();
        block["name"] = json!(format!("Block everyone {round}"));
        let clear = admin.send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(json!({"emergency_accounts": []})),
            &[],
        );
        let create = admin.post("/v1/access-policies", block);
        let (cleared, created) = tokio::join!(clear, create);
        let (cleared, created) = (cleared.status, created.status);
        assert!(
            !(cleared == 200 && created == 201),
            "round {round}: both went through ({cleared}, {created})"
        );
        let settings = admin.get("/v1/access-policy-settings").await.expect(200);
        let policies = admin.get("/v1/access-policies").await.expect(200);
        let blocks = policies["items"].as_array().unwrap().len();
        assert!(
            blocks == 0 || settings["emergency_accounts"] != json!([]),
            "round {round}: {blocks} blocks and no emergency account"
        );
        // Back to the start: the emergency account, and no block.
        for policy in policies["items"].as_array().unwrap() {
            let id = policy["id"].as_str().unwrap();
            admin
                .send(
                    Method::DELETE,
                    &format!("/v1/access-policies/{id}"),
                    None,
                    &[],
                )
                .await
                .expect(204);
        }
        admin
            .send(
                Method::PUT,
                "/v1/access-policy-settings",
                Some(with_glass.clone()),
                &[],
            )
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn templates_make_report_only_policies() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let templates = admin.get("/v1/access-policy-templates").await.expect(200);
    assert_eq!(templates["items"].as_array().unwrap().len(), 5);
    let made = admin
        .post(
            "/v1/access-policy-templates/mfa-for-administrators",
            json!({}),
        )
        .await
        .expect(201);
    assert_eq!(made["state"], "report_only");
    assert_eq!(made["include"]["administrators"], true);
    let needs = admin
        .post(
            "/v1/access-policy-templates/allowed-countries-only",
            json!({}),
        )
        .await
        .problem(422);
    assert!(
        needs["detail"].as_str().unwrap().contains("location"),
        "{needs}"
    );
    admin
        .post("/v1/access-policy-templates/everything", json!({}))
        .await
        .problem(404);
}

/// A user named "glass", made the tenant's emergency access account: what the lock-out guard
/// asks for before any policy may block everyone.
pub(crate) async fn emergency_account(server: &TestServer) -> String {
    let glass = user_with_password(server, "glass", false).await;
    server
        .admin()
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(json!({"emergency_accounts": [glass]})),
            &[],
        )
        .await
        .expect(200);
    glass
}

/// A policy made from a template (report-only, as templates make them) and then enabled.
pub(crate) async fn enabled_from_template(admin: &Admin, template: &str, body: Value) {
    let made = admin
        .post(&format!("/v1/access-policy-templates/{template}"), body)
        .await
        .expect(201);
    let mut policy = made.clone();
    policy["state"] = json!("enabled");
    let path = format!("/v1/access-policies/{}", made["id"].as_str().unwrap());
    admin
        .send(Method::PUT, &path, Some(policy), &[])
        .await
        .expect(200);
}

/// A token request through the trusted proxy, as from `address`.
async fn token_from(
    server: &TestServer,
    address: &str,
    client: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let mut fields = form.to_vec();
    let request = reqwest::Client::new()
        .post(server.url("/t/operator/oauth/token"))
        .header("x-forwarded-for", address);
    let request = match secret {
        Some(secret) => request.basic_auth(client, Some(secret)),
        None => {
            fields.push(("client_id", client));
            request
        }
    };
    let response = request.form(&fields).send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_workload_gets_tokens_only_from_its_own_network() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let (id, secret) = crate::oauth::client(&server, "batch").await;
    let datacenter = admin
        .post(
            "/v1/named-locations",
            json!({"name": "datacenter", "ranges": ["203.0.113.0/24"]}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Batch from the datacenter only", "state": "enabled",
                   "include": {"service_principals": [id]}, "applications": {"include": ["all"]},
                   "conditions": {"locations": {"include": ["any"], "exclude": [datacenter["id"]]}},
                   "grant": {"kind": "block"}}),
        )
        .await
        .expect(201);
    let form = [("grant_type", "client_credentials")];
    let (status, body) = token_from(&server, "203.0.113.7", &id, Some(&secret), &form).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_from(&server, "198.51.100.1", &id, Some(&secret), &form).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Batch from the datacenter only"),
        "{body}"
    );
    let refusal = admin
        .audit("signin")
        .await
        .into_iter()
        .find(|e| e["details"]["kind"] == "workload")
        .expect("the refusal is in the sign-in log");
    assert_eq!(refusal["target"]["id"], id.as_str());
    assert_eq!(refusal["origin"]["source_ip"], "198.51.100.1");
}

#[tokio::test]
async fn a_refresh_or_an_authorization_from_a_place_now_blocked_fails() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let (client, _) = crate::authorize::app(&server, "web", json!({"client_type": "public"})).await;
    let (mut browser, _) = crate::authorize::signed_in(&server, "ada").await;
    let code = crate::authorize::code_for(&mut browser, &client, &[]).await;
    let (status, tokens) = crate::authorize::exchange(&server, &client, None, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = |token: Value, address: &'static str| {
        let (server, client) = (&server, client.clone());
        async move {
            let token = token.as_str().unwrap().to_owned();
            token_from(
                server,
                address,
                &client,
                None,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let (status, again) = refresh(tokens["refresh_token"].clone(), "198.51.100.20").await;
    assert_eq!(status, 200, "no policy yet: {again}");

    let abroad = admin
        .post(
            "/v1/named-locations",
            json!({"name": "abroad", "ranges": ["198.51.100.0/24"]}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Web app not from abroad", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": [client]},
                   "conditions": {"locations": {"include": [abroad["id"]]}},
                   "grant": {"kind": "block"}}),
        )
        .await
        .expect(201);
    let (status, refused) = refresh(again["refresh_token"].clone(), "198.51.100.21").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("Web app not from abroad"),
        "{refused}"
    );
    // From home the same token still works: the refusal used nothing up.
    let (status, fine) = refresh(again["refresh_token"].clone(), "192.0.2.1").await;
    assert_eq!(status, 200, "{fine}");

    // The browser, abroad, asks the application's authorization: refused back to the app.
    browser.forwarded_for = Some("198.51.100.22".into());
    let page = browser
        .get(&crate::authorize::authorize_path(&client, &[]))
        .await;
    let page = crate::authorize::follow(&mut browser, page).await;
    let answer = crate::authorize::callback(&page);
    assert_eq!(answer["error"], "access_denied", "{answer:?}");
}

#[tokio::test]
async fn an_application_that_policy_says_needs_mfa_sends_a_password_session_to_step_up() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (client, _) =
        crate::authorize::app(&server, "payroll", json!({"client_type": "public"})).await;
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Payroll needs MFA", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": [client]},
                   "grant": {"kind": "require", "controls": ["mfa"]}}),
        )
        .await
        .expect(201);
    let (mut browser, _) = crate::authorize::signed_in(&server, "ada").await;
    // The account pages are not payroll: the password session opened there.
    let page = browser
        .get(&crate::authorize::authorize_path(&client, &[]))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location().contains("/step-up"), "{}", page.location());
    assert!(page.location().contains("mfa"), "{}", page.location());
}

/// Writes a country and a network database: 198.51.100.0/24 in New Zealand (written as the
/// free ip-location-db files write it) on AS64500, 203.0.113.0/24 in Germany (as MaxMind
/// writes it).
fn geo_databases(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut countries = mmdb_writer::Writer::new("Test-Country");
    countries
        .insert(
            "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
            &json!({"country_code": "NZ"}),
        )
        .unwrap();
    countries
        .insert(
            "203.0.113.0/24".parse::<ipnet::IpNet>().unwrap(),
            &json!({"country": {"iso_code": "DE", "names": {"en": "Germany"}}}),
        )
        .unwrap();
    let mut networks = mmdb_writer::Writer::new("Test-ASN");
    networks
        .insert(
            "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
            &json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example"}),
        )
        .unwrap();
    let (country_file, asn_file) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&country_file, countries.to_bytes().unwrap()).unwrap();
    std::fs::write(&asn_file, networks.to_bytes().unwrap()).unwrap();
    (country_file, asn_file)
}

#[tokio::test]
async fn countries_come_from_the_geoip_database_and_only_allowed_ones_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let (countries, networks) = geo_databases(dir.path());
    let server = TestServer::start_with(|mut s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
        s.geoip_country = Some(countries);
        s.geoip_asn = Some(networks);
        s
    })
    .await;
    let admin = server.admin();
    let bob = user_with_password(&server, "bob", false).await;
    emergency_account(&server).await;
    let allowed = admin
        .post(
            "/v1/named-locations",
            json!({"name": "allowed countries", "countries": ["DE"]}),
        )
        .await
        .expect(201);
    enabled_from_template(
        &admin,
        "allowed-countries-only",
        json!({"location": allowed["id"]}),
    )
    .await;

    let mut germany = browser_from(&server, "203.0.113.40");
    assert_eq!(
        germany.sign_in("operator", "bob", PASSWORD).await.status,
        303
    );
    let event = last_sign_in(&admin, &bob, "success").await;
    assert_eq!(event["details"]["country"], "DE", "{event}");

    let mut new_zealand = browser_from(&server, "198.51.100.40");
    let refused = new_zealand.sign_in("operator", "bob", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let event = last_sign_in(&admin, &bob, "failure").await;
    assert_eq!(event["details"]["country"], "NZ", "{event}");
    assert_eq!(event["details"]["asn"], 64500, "{event}");

    // An address no database lists is in no allowed country either.
    let mut nowhere = browser_from(&server, "192.0.2.40");
    assert_eq!(
        nowhere.sign_in("operator", "bob", PASSWORD).await.status,
        403
    );

    let answer = admin
        .post(
            "/v1/access-policies/what-if",
            json!({"user": bob, "address": "198.51.100.1"}),
        )
        .await
        .expect(200);
    assert_eq!(answer["country"], "NZ", "{answer}");
    assert_eq!(
        answer["evaluation"]["decision"]["kind"], "block",
        "{answer}"
    );
}

/// The free country database `.ci/run` installs from npm, when `PORTCULLIS_TEST_GEOIP_DIR`
/// names the `node_modules` it is in: the server reads it, and a well-known public resolver's
/// address is in the United States. (ip-location-db publishes no ASN database to npm; the
/// network lookup is tested with the files written above.)
#[tokio::test]
async fn the_free_ip_location_country_database_is_read_when_installed() {
    let Ok(dir) = std::env::var("PORTCULLIS_TEST_GEOIP_DIR") else {
        eprintln!("PORTCULLIS_TEST_GEOIP_DIR is not set: skipped");
        return;
    };
    let file = std::path::Path::new(&dir)
        .join("@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb");
    let geo = portcullis_server::geo::Geo::open(Some(&file), None, None).unwrap();
    let place = geo.locate("8.8.8.8".parse().unwrap());
    assert_eq!(
        place.country.map(|c| c.to_string()).as_deref(),
        Some("US"),
        "{place:?}"
    );
    assert_eq!(geo.locate("192.0.2.1".parse().unwrap()).country, None);
}

/// The `Max-Age` of the session cookie a response sets, if it sets one with an expiry.
fn session_cookie_age(page: &crate::signin::Page) -> Option<i64> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("portcullis_session="))
        .and_then(|v| v.split("Max-Age=").nth(1))
        .and_then(|age| age.split(';').next()?.trim().parse().ok())
}

#[tokio::test]
async fn session_controls_bound_the_session_its_cookie_and_every_token() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let (client, _) = crate::authorize::app(&server, "web", json!({"client_type": "public"})).await;
    let (workload, secret) = crate::oauth::client(&server, "batch").await;
    user_with_password(&server, "ada", false).await;
    // Before any policy the session cookie ends with the browser.
    let mut before = Browser::new(&server);
    let opened = before.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(session_cookie_age(&opened), None);

    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Hourly sign-in, short tokens", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": ["all"]},
                   "grant": {"kind": "require", "controls": []},
                   "session": {"sign_in_frequency_minutes": 60, "max_token_lifetime_minutes": 5,
                               "persistent_browser": true}}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Workload tokens for two minutes", "state": "enabled",
                   "include": {"all_service_principals": true}, "applications": {"include": ["all"]},
                   "grant": {"kind": "require", "controls": []},
                   "session": {"max_token_lifetime_minutes": 2}}),
        )
        .await
        .expect(201);

    let mut browser = Browser::new(&server);
    let opened = browser.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let age = session_cookie_age(&opened).expect("a persistent session cookie");
    assert!((3_590..=3_600).contains(&age), "kept for the hour: {age}");
    let code = crate::authorize::code_for(&mut browser, &client, &[]).await;
    let (status, tokens) = crate::authorize::exchange(&server, &client, None, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 300, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, refreshed) = token_from(&server, "192.0.2.1", &client, None, &form).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["expires_in"], 300, "{refreshed}");
    let form = [("grant_type", "client_credentials")];
    let (status, minted) = token_from(&server, "192.0.2.1", &workload, Some(&secret), &form).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["expires_in"], 120, "{minted}");

    // An hour and a minute later: the session is over, the refresh token's sign-in too old,
    // and the authorization endpoint sends the person to sign in again.
    server.advance(time::Duration::minutes(61));
    let newer = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", newer.as_str()),
    ];
    let (status, refused) = token_from(&server, "192.0.2.1", &client, None, &form).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{refused}"
    );
    let account = browser.get("/t/operator/account").await;
    assert!(
        account.location().contains("/sign-in"),
        "{}",
        account.location()
    );
    let page = browser
        .get(&crate::authorize::authorize_path(&client, &[]))
        .await;
    assert!(page.location().contains("/sign-in"), "{}", page.location());

    // A session that is still alive but older than a frequency added later is sent back too.
    let mut fresh = Browser::new(&server);
    assert_eq!(fresh.sign_in("operator", "ada", PASSWORD).await.status, 303);
    let set = |minutes: u32| {
        json!({"name": "Hourly sign-in, short tokens", "state": "enabled",
               "include": {"all_users": true}, "applications": {"include": ["all"]},
               "grant": {"kind": "require", "controls": []},
               "session": {"sign_in_frequency_minutes": minutes}})
    };
    let policies = admin.get("/v1/access-policies").await.expect(200);
    let hourly = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Hourly sign-in, short tokens")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.advance(time::Duration::minutes(10));
    admin
        .send(
            Method::PUT,
            &format!("/v1/access-policies/{hourly}"),
            Some(set(5)),
            &[],
        )
        .await
        .expect(200);
    let page = fresh
        .get(&crate::authorize::authorize_path(
            &client,
            &[("prompt", "none")],
        ))
        .await;
    assert!(
        page.location().contains("error=login_required"),
        "{}",
        page.location()
    );
}

/// A workload's token requests are in the sign-in log as one event per client, address and
/// sweep, with the count: the token path only counts in memory.
#[tokio::test]
async fn workload_token_requests_are_in_the_sign_in_log_counted_per_client_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let (countries, networks) = geo_databases(dir.path());
    let server = TestServer::start_with(|mut s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
        s.geoip_country = Some(countries);
        s.geoip_asn = Some(networks);
        s.sweep_interval_seconds = Some(1);
        s
    })
    .await;
    let admin = server.admin();
    let (id, secret) = crate::oauth::client(&server, "batch").await;
    let form = [("grant_type", "client_credentials")];
    for address in [
        "198.51.100.9",
        "198.51.100.9",
        "198.51.100.9",
        "203.0.113.9",
    ] {
        let (status, body) = token_from(&server, address, &id, Some(&secret), &form).await;
        assert_eq!(status, 200, "{body}");
    }
    let total = |events: &[Value]| -> u64 {
        events
            .iter()
            .filter(|e| e["details"]["kind"] == "workload" && e["outcome"] == "success")
            .map(|e| e["details"]["count"].as_u64().unwrap_or(0))
            .sum()
    };
    let events = admin
        .audit_once("signin", |events| total(events) >= 4)
        .await;
    assert_eq!(total(&events), 4, "{events:?}");
    let from_new_zealand = events
        .iter()
        .find(|e| e["origin"]["source_ip"] == "198.51.100.9" && e["details"]["kind"] == "workload")
        .expect("the address's event");
    assert_eq!(
        from_new_zealand["details"]["count"], 3,
        "{from_new_zealand}"
    );
    assert_eq!(from_new_zealand["details"]["country"], "NZ");
    assert_eq!(from_new_zealand["details"]["asn"], 64500);
    assert_eq!(from_new_zealand["actor"]["id"], id.as_str());
    assert_eq!(from_new_zealand["target"]["id"], id.as_str());
    let sign_ins = admin
        .get(&format!("/v1/sign-ins?service_principal_id={id}"))
        .await
        .expect(200);
    assert!(
        !sign_ins["items"].as_array().unwrap().is_empty(),
        "the sign-in log lists them: {sign_ins}"
    );
}

/// Policies for the admin API hold people's tokens and workloads' API keys to account on every
/// request, from where it comes: blocked outside the office, a stronger sign-in demanded with
/// RFC 9470's challenge, a workload's key refused, each refusal in the sign-in log.
#[tokio::test]
async fn the_admin_api_is_held_to_its_policies_for_tokens_and_keys() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    admin
        .send(
            Method::PUT,
            "/v1/administrator-policy",
            Some(json!({"mfa": "none", "recent_actions": []})),
            &[],
        )
        .await
        .expect(200);
    emergency_account(&server).await;
    let (console, secret) = crate::admin_tokens::console(&server).await;
    let (mut browser, alice) = crate::authorize::signed_in(&server, "alice").await;
    crate::admin_tokens::assign(&server, &alice, "user_administrator").await;
    let token = crate::admin_tokens::person_token(&server, &mut browser, &console, &secret).await;
    let as_alice = server.client(&token);
    let (batch, key) = admin
        .principal_with_role("batch", "user_administrator", "tenant")
        .await;
    let as_batch = server.client(&key);
    let from = |address: &'static str| [("x-forwarded-for", address)];
    let office = office(&admin).await;
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Admin API from the office only", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": ["admin_api"]},
                   "conditions": {"locations": {"include": ["any"], "exclude": [office["id"]]}},
                   "grant": {"kind": "block"}}),
        )
        .await
        .expect(201);

    as_alice
        .send(Method::GET, "/v1/users", None, &from("203.0.113.7"))
        .await
        .expect(200);
    let refused = as_alice
        .send(Method::GET, "/v1/users", None, &from("198.51.100.7"))
        .await
        .problem(403);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("Admin API from the office only"),
        "{refused}"
    );
    let event = last_sign_in(&admin, &alice, "failure").await;
    assert_eq!(event["details"]["kind"], "admin_api", "{event}");
    assert_eq!(
        event["details"]["application"]["kind"], "admin_api",
        "{event}"
    );
    // A workload's key is not a person: the people's policy leaves it alone...
    as_batch
        .send(Method::GET, "/v1/users", None, &from("198.51.100.7"))
        .await
        .expect(200);
    // ...and its own policy holds it.
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "Batch on the admin API from the office", "state": "enabled",
                   "include": {"service_principals": [batch]}, "applications": {"include": ["admin_api"]},
                   "conditions": {"locations": {"include": ["any"], "exclude": [office["id"]]}},
                   "grant": {"kind": "block"}}),
        )
        .await
        .expect(201);
    as_batch
        .send(Method::GET, "/v1/users", None, &from("198.51.100.7"))
        .await
        .problem(403);
    as_batch
        .send(Method::GET, "/v1/users", None, &from("203.0.113.8"))
        .await
        .expect(200);

    // A second factor for the admin API: Alice's password-only token is asked to step up.
    admin
        .post(
            "/v1/access-policies",
            json!({"name": "MFA for the admin API", "state": "enabled",
                   "include": {"all_users": true}, "applications": {"include": ["admin_api"]},
                   "grant": {"kind": "require", "controls": ["mfa"]}}),
        )
        .await
        .expect(201);
    let reply = as_alice
        .send(Method::GET, "/v1/users", None, &from("203.0.113.7"))
        .await;
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("insufficient_user_authentication")
            && challenge.contains("acr_values=\"mfa\""),
        "{challenge}"
    );
    reply.problem(401);
}

#[tokio::test]
async fn a_terms_of_use_policy_holds_the_session_until_the_current_terms_are_accepted() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let policy = json!({"name": "Terms for everyone", "state": "enabled",
                        "include": {"all_users": true}, "applications": {"include": ["all"]},
                        "grant": {"kind": "require", "controls": ["terms_of_use"]}});
    let refused = admin
        .post("/v1/access-policies", policy.clone())
        .await
        .problem(422);
    assert!(
        refused["detail"].as_str().unwrap().contains("terms"),
        "{refused}"
    );
    let terms = |version: &str| {
        json!({"emergency_accounts": [],
               "terms_of_use": {"version": version, "text": "Be kind.\n\nNever share your password."}})
    };
    admin
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(terms("2026-12")),
            &[],
        )
        .await
        .expect(200);
    admin.post("/v1/access-policies", policy).await.expect(201);
    let ada = user_with_password(&server, "ada", false).await;

    let mut browser = Browser::new(&server);
    let held = browser.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(
        held.location(),
        "/t/operator/account/terms",
        "{}",
        held.body
    );
    assert_eq!(
        browser.get("/t/operator/account").await.location(),
        "/t/operator/account/terms"
    );
    let page = browser.get("/t/operator/account/terms").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Never share your password."));
    // A stale version (the terms changed while the page was open) is not accepted.
    let stale = browser
        .post(
            "/t/operator/account/terms",
            &[("csrf", &page.csrf()), ("version", "2026-01")],
        )
        .await;
    assert_eq!(stale.location(), "/t/operator/account/terms");
    let accepted = browser
        .post(
            "/t/operator/account/terms",
            &[("csrf", &page.csrf()), ("version", "2026-12")],
        )
        .await;
    assert_eq!(
        accepted.location(),
        "/t/operator/account",
        "{}",
        accepted.body
    );
    assert_eq!(browser.get("/t/operator/account").await.status, 200);
    let audited = admin.audit("terms.accept").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["target"]["id"], ada.as_str());
    assert_eq!(audited[0]["details"]["version"], "2026-12");

    // Accepted once, not asked again; a new version asks everyone again.
    let mut again = Browser::new(&server);
    let opened = again.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(opened.location(), "/t/operator/account", "{}", opened.body);
    admin
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(terms("2027-01")),
            &[],
        )
        .await
        .expect(200);
    let mut later = Browser::new(&server);
    let held = later.sign_in("operator", "ada", PASSWORD).await;
    assert_eq!(held.location(), "/t/operator/account/terms");

    // The terms cannot go while a policy asks for them.
    let removed = admin
        .send(
            Method::PUT,
            "/v1/access-policy-settings",
            Some(json!({"emergency_accounts": []})),
            &[],
        )
        .await
        .problem(409);
    assert!(
        removed["detail"]
            .as_str()
            .unwrap()
            .contains("Terms for everyone"),
        "{removed}"
    );
}
