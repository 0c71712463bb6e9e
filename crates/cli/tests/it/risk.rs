//! Identity protection end to end: detections replayed from crafted sequences of real sign-ins
//! (a spray from one address, an impossible journey, an anonymous address, a leaked password),
//! what they do to the user (risk in the sign-in log and in policies, sessions ended at high
//! risk), an administrator's verdicts, and the leaked-password list at every password change.

use reqwest::Method;
use serde_json::{Value, json};

use crate::concurrency::all_at_once;
use crate::conditional::{behind_a_proxy, browser_from, enabled_from_template, last_sign_in};
use crate::harness::{Client as Admin, TestServer, cli};
use crate::mfa::{code, enrolled};
use crate::signin::{Browser, PASSWORD, user_with_password};

/// The SHA-1 of `PASSWORD`, as a breach corpus lists it (computed apart from the server, with
/// Python's hashlib).
pub(crate) const PASSWORD_SHA1: &str = "618CF256E7324683D083B41EE08956FADEAC8ACF";

async fn detections(admin: &Admin, query: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/risk/detections?{query}"))
        .await
        .expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn risky_users(admin: &Admin) -> Vec<Value> {
    admin.get("/v1/risk/users").await.expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether the browser's session still opens the account page.
async fn still_signed_in(browser: &mut Browser) -> bool {
    browser.get("/t/operator/account").await.status == 200
}

#[tokio::test]
async fn a_spray_from_one_address_across_fifty_accounts_is_found_and_its_hit_is_high_risk() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let carol = user_with_password(&server, "carol", false).await;
    let mut carols_laptop = browser_from(&server, "203.0.113.5");
    assert_eq!(
        carols_laptop
            .sign_in("operator", "carol", PASSWORD)
            .await
            .status,
        303
    );

    // One password, fifty accounts, one address: every attempt fails.
    let mut attacker = browser_from(&server, "198.51.100.66");
    for n in 0..50 {
        let tried = attacker
            .sign_in("operator", &format!("staff-{n}"), PASSWORD)
            .await;
        assert_eq!(tried.status, 401, "attempt {n}: {}", tried.body);
    }
    let sprays = detections(&admin, "kind=password_spray").await;
    assert_eq!(sprays.len(), 1, "one spray, raised as it grew: {sprays:?}");
    let spray = &sprays[0];
    assert_eq!(spray["level"], "high", "{spray}");
    assert_eq!(spray["user_id"], Value::Null, "about the tenant: {spray}");
    assert_eq!(spray["evidence"]["accounts"], 50, "{spray}");
    assert_eq!(spray["evidence"]["sources"], 1, "{spray}");
    assert_eq!(spray["evidence"]["distributed"], false, "{spray}");
    assert_eq!(spray["source_ip"], "198.51.100.66", "{spray}");
    let stored = server
        .db
        .raw_rows("SELECT password_mac, account_key, source FROM password_failures")
        .await
        .unwrap();
    assert_eq!(stored.len(), 50);
    let unkeyed = hex::decode(PASSWORD_SHA1).unwrap();
    for column in stored.iter().flatten().flatten() {
        assert!(
            !column
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes())
                && !column.windows(6).any(|w| w == b"staff-")
                && column != &unkeyed,
            "only keyed hashes of the tried password and name are kept"
        );
    }

    // The sprayed password is Carol's: whoever signs in with it now may be the attacker.
    server.advance(time::Duration::seconds(2));
    let hit = attacker.sign_in("operator", "carol", PASSWORD).await;
    assert_eq!(hit.status, 303, "{}", hit.body);
    let found = detections(&admin, &format!("user_id={carol}")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "password_spray");
    assert_eq!(found[0]["level"], "high");
    assert_eq!(
        found[0]["evidence"]["signed_in_with_the_sprayed_password"],
        true
    );
    let users = risky_users(&admin).await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["user_name"], "carol");
    assert_eq!(users[0]["level"], "high");
    let event = last_sign_in(&admin, &carol, "success").await;
    assert_eq!(event["details"]["user_risk"], "high", "{event}");
    // High risk ended the session Carol already had.
    assert!(!still_signed_in(&mut carols_laptop).await);
    assert_eq!(admin.audit("risk.user.cut_off").await.len(), 1);

    // An administrator looks and dismisses it; nothing else of Carol's is cut off.
    let dismissed = admin
        .post(
            &format!("/v1/risk/users/{carol}/dismiss"),
            json!({"note": "Carol's own laptop, checked with her"}),
        )
        .await
        .expect(200);
    assert_eq!(dismissed["level"], "none");
    assert!(risky_users(&admin).await.is_empty());
    let closed = detections(&admin, &format!("user_id={carol}&state=dismissed")).await;
    assert_eq!(closed.len(), 1);
    assert!(still_signed_in(&mut attacker).await);
}

/// Simultaneous wrong guesses of one password from many addresses: however they interleave,
/// one open spray detection comes of them (the check for an open one and the insert are one
/// write under the tenant's lock).
#[tokio::test]
async fn a_distributed_spray_racing_in_is_one_detection() {
    let server = behind_a_proxy().await;
    let admin = server.admin();
    let statuses = all_at_once(30, |n| {
        let mut browser = browser_from(&server, &format!("198.51.100.{}", n + 1));
        async move {
            browser
                .sign_in("operator", &format!("person-{n}"), "Summer2026!Summer2026!")
                .await
                .status
        }
    })
    .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let sprays = detections(&admin, "kind=password_spray").await;
    assert_eq!(sprays.len(), 1, "{sprays:?}");
    assert_eq!(sprays[0]["level"], "medium");
    assert_eq!(sprays[0]["evidence"]["distributed"], true);
    assert!(sprays[0]["evidence"]["accounts"].as_u64().unwrap() >= 10);
}

/// London (as MaxMind's city files write it) and Tokyo (as the free ip-location-db city files
/// do), about 9,560 km apart; 192.0.2.0/24 is listed as an anonymising network.
fn places(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut cities = mmdb_writer::Writer::new("Test-City");
    cities
        .insert(
            "203.0.113.0/24".parse::<ipnet::IpNet>().unwrap(),
            &json!({"country": {"iso_code": "GB"}, "location": {"latitude": 51.51, "longitude": -0.13}}),
        )
        .unwrap();
    cities
        .insert(
            "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
            &json!({"country_code": "JP", "latitude": 35.68, "longitude": 139.69}),
        )
        .unwrap();
    let (city_file, anonymous_file) = (dir.join("city.mmdb"), dir.join("anonymous.txt"));
    std::fs::write(&city_file, cities.to_bytes().unwrap()).unwrap();
    std::fs::write(
        &anonymous_file,
        "# Tor exit nodes\n192.0.2.0/24\n2001:db8::/32 # a VPN\n",
    )
    .unwrap();
    (city_file, anonymous_file)
}

#[tokio::test]
async fn two_sign_ins_nine_thousand_km_apart_in_ten_minutes_are_impossible_travel() {
    let dir = tempfile::tempdir().unwrap();
    let (cities, anonymous) = places(dir.path());
    let server = TestServer::start_with(|mut s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
        s.geoip_country = Some(cities);
        s.anonymous_networks = Some(anonymous);
        s
    })
    .await;
    let admin = server.admin();
    let (key, _) = enrolled(&server, "dora").await;
    let dora = admin.get("/v1/users?prefix=dora").await.expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Risky sign-ins need a second factor.
    enabled_from_template(&admin, "mfa-for-risky-sign-ins", json!({})).await;

    let mut london = browser_from(&server, "203.0.113.10");
    let first = london.sign_in("operator", "dora", PASSWORD).await;
    assert_eq!(
        first.location(),
        "/t/operator/sign-in/code",
        "{}",
        first.body
    );
    let page = london.get("/t/operator/sign-in/code").await;
    let done = london
        .post(
            "/t/operator/sign-in/code",
            &[("csrf", &page.csrf()), ("code", &code(&key, 1))],
        )
        .await;
    assert_eq!(done.location(), "/t/operator/account", "{}", done.body);
    let event = last_sign_in(&admin, &dora, "success").await;
    assert_eq!(event["details"]["country"], "GB", "{event}");
    assert_eq!(
        event["details"]["sign_in_risk"], "low",
        "a new country: {event}"
    );

    // Ten minutes later, Tokyo: the policy asks for the second factor (a stolen password alone
    // would stop here), which Dora gives.
    server.advance(time::Duration::minutes(10));
    let mut tokyo = browser_from(&server, "198.51.100.20");
    let asked = tokyo.sign_in("operator", "dora", PASSWORD).await;
    assert_eq!(
        asked.location(),
        "/t/operator/sign-in/code",
        "{}",
        asked.body
    );
    let page = tokyo.get("/t/operator/sign-in/code").await;
    let done = tokyo
        .post(
            "/t/operator/sign-in/code",
            // The server's clock is ten minutes (twenty steps) ahead now.
            &[("csrf", &page.csrf()), ("code", &code(&key, 20))],
        )
        .await;
    assert_eq!(done.location(), "/t/operator/account", "{}", done.body);
    let travel = detections(&admin, "kind=impossible_travel").await;
    assert_eq!(travel.len(), 1, "{travel:?}");
    let evidence = &travel[0]["evidence"];
    let km = evidence["distance_km"].as_f64().unwrap();
    assert!((9_400.0..9_700.0).contains(&km), "{evidence}");
    assert_eq!(evidence["minutes"], 10.0, "{evidence}");
    assert_eq!(evidence["from_country"], "GB");
    assert_eq!(evidence["to_country"], "JP");
    assert_eq!(travel[0]["level"], "high");
    assert_eq!(travel[0]["country"], "JP");
    let event = last_sign_in(&admin, &dora, "success").await;
    assert_eq!(event["details"]["sign_in_risk"], "high", "{event}");
    let kinds = event["details"]["risk_detections"].as_array().unwrap();
    assert!(kinds.contains(&json!("impossible_travel")), "{event}");
    // Travel no one can make puts the person at risk; their London session ends.
    assert_eq!(risky_users(&admin).await[0]["level"], "high");
    assert!(!still_signed_in(&mut london).await);
    assert!(still_signed_in(&mut tokyo).await);

    // From a listed anonymising network the sign-in is medium risk whoever signs in.
    user_with_password(&server, "eve", false).await;
    let mut tor = browser_from(&server, "192.0.2.77");
    let asked = tor.sign_in("operator", "eve", PASSWORD).await;
    // Eve has no second factor: the risk policy holds her session until she sets one up.
    assert_eq!(
        asked.location(),
        "/t/operator/account/mfa",
        "{}",
        asked.body
    );
    let anonymous = detections(&admin, "kind=anonymous_address").await;
    assert_eq!(anonymous.len(), 1, "{anonymous:?}");
    assert_eq!(anonymous[0]["level"], "medium");
    assert_eq!(anonymous[0]["source_ip"], "192.0.2.77");
}

#[tokio::test]
async fn a_leaked_password_is_refused_at_every_change_and_puts_its_user_at_risk_at_sign_in() {
    let server = TestServer::start().await;
    let admin = server.admin();
    // Frank chose his password before it turned up in a breach.
    let frank = user_with_password(&server, "frank", false).await;
    let mut franks_phone = Browser::new(&server);
    assert_eq!(
        franks_phone
            .sign_in("operator", "frank", PASSWORD)
            .await
            .status,
        303
    );

    // The operator loads a corpus excerpt with the CLI; a bad line in a batch refuses it whole.
    let corpus = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        corpus.path(),
        format!(
            "# excerpt\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\n{PASSWORD_SHA1}:3\n\n"
        ),
    )
    .unwrap();
    let path = corpus.path().to_str().unwrap().to_owned();
    let (status, out, err) = cli(
        &server,
        &server.admin_key,
        &[
            "risk",
            "leaked-passwords",
            "load",
            &path,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(status, 0, "{out}{err}");
    let loaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["added"], 2, "{loaded}");
    assert_eq!(loaded["total"], 2, "{loaded}");
    let bad = admin
        .post(
            "/v1/leaked-passwords",
            json!({"hashes": ["0000000000000000000000000000000000000001", "not a hash"]}),
        )
        .await
        .problem(422);
    assert!(
        bad["detail"].as_str().unwrap().contains("hashes[1]"),
        "{bad}"
    );
    let count = admin.get("/v1/leaked-passwords").await.expect(200);
    assert_eq!(count["total"], 2, "the refused batch added nothing");
    let oversized: Vec<String> = (0..1_001).map(|n| format!("{n:040X}")).collect();
    admin
        .post("/v1/leaked-passwords", json!({"hashes": oversized}))
        .await
        .problem(422);
    // A corpus longer than one request goes in batches, each within the body limit.
    let long: String = (0..2_500).map(|n| format!("{n:040X}:1\n")).collect();
    let bulk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bulk.path(), long).unwrap();
    let bulk_path = bulk.path().to_str().unwrap().to_owned();
    let (status, out, err) = cli(
        &server,
        &server.admin_key,
        &[
            "risk",
            "leaked-passwords",
            "load",
            &bulk_path,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(status, 0, "{out}{err}");
    let loaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["added"], 2_500, "{loaded}");
    assert_eq!(loaded["total"], 2_502, "{loaded}");
    // Another tenant's administrator may not touch the deployment's list.
    let (_, other_key) = admin.create_tenant("acme").await;
    server
        .client(&other_key)
        .post("/v1/leaked-passwords", json!({"hashes": []}))
        .await
        .problem(403);

    // An administrator cannot give anyone the leaked password...
    let grace = admin.create_user("grace").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = admin
        .send(
            Method::PUT,
            &format!("/v1/users/{grace}/password"),
            Some(json!({"password": PASSWORD, "must_change": false})),
            &[],
        )
        .await
        .problem(422);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("data breaches"),
        "{refused}"
    );

    // ...and Frank, signing in with it, is at high risk: his other session ends.
    let mut laptop = Browser::new(&server);
    assert_eq!(
        laptop.sign_in("operator", "frank", PASSWORD).await.status,
        303
    );
    let leaked = detections(&admin, "kind=leaked_credentials").await;
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    assert_eq!(leaked[0]["user_id"], frank.as_str());
    assert_eq!(leaked[0]["level"], "high");
    assert!(!still_signed_in(&mut franks_phone).await);
    // Signing in again with it is the same finding, not a new one, and cuts nothing more.
    let mut again = Browser::new(&server);
    assert_eq!(
        again.sign_in("operator", "frank", PASSWORD).await.status,
        303
    );
    assert_eq!(detections(&admin, "kind=leaked_credentials").await.len(), 1);
    assert!(still_signed_in(&mut laptop).await);

    // His own change to another leaked password is refused on the page.
    let form = laptop.get("/t/operator/account/password").await;
    let leaked_again = laptop
        .post(
            "/t/operator/account/password",
            &[
                ("csrf", &form.csrf()),
                ("current_password", PASSWORD),
                ("new_password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(leaked_again.status, 422, "{}", leaked_again.body);
    assert!(leaked_again.body.contains("data breaches"));

    // An administrator's reset to a safe password remediates his risk.
    admin
        .send(
            Method::PUT,
            &format!("/v1/users/{frank}/password"),
            Some(json!({"password": "quartz lantern meadow sprocket", "must_change": true})),
            &[],
        )
        .await
        .expect(204);
    assert!(risky_users(&admin).await.is_empty());
    let remediated = detections(&admin, &format!("user_id={frank}&state=remediated")).await;
    assert_eq!(remediated.len(), 1);
}

#[tokio::test]
async fn an_administrator_confirms_a_compromise_and_bad_verdicts_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let henry = user_with_password(&server, "henry", false).await;
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.sign_in("operator", "henry", PASSWORD).await.status,
        303
    );
    let (status, out, err) = cli(
        &server,
        &server.admin_key,
        &[
            "risk",
            "confirm-compromised",
            "henry",
            "--note",
            "phished",
            "--yes",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(status, 0, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["level"], "high", "{answer}");
    assert!(!still_signed_in(&mut browser).await);
    let confirmed = detections(&admin, "kind=admin_confirmed_compromised").await;
    assert_eq!(confirmed[0]["state"], "confirmed_compromised");
    assert_eq!(confirmed[0]["evidence"]["note"], "phished");
    let audited = admin.audit("risk.user.confirmed_compromised").await;
    assert_eq!(audited[0]["target"]["id"], henry.as_str());

    // Unknown users, bad filters and unknown fields are refused with a reason.
    let nobody = "01900000-0000-7000-8000-000000000000";
    admin
        .post(&format!("/v1/risk/users/{nobody}/dismiss"), json!({}))
        .await
        .problem(404);
    admin
        .post(
            &format!("/v1/risk/users/{henry}/dismiss"),
            json!({"nope": 1}),
        )
        .await
        .problem(400);
    admin
        .get("/v1/risk/detections?level=severe")
        .await
        .problem(400);
    admin
        .get("/v1/risk/detections?cursor=zzz")
        .await
        .problem(422);
    assert_eq!(risky_users(&admin).await[0]["level"], "high");
}
