//! Users signing in to applications: the authorization endpoint through the real sign-in
//! pages, the code exchanged once with its PKCE verifier, ID tokens and access tokens checked
//! against the JWKS by an independent library, rotating refresh tokens, userinfo,
//! introspection and revocation — and the attacks on each.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::TestServer;
use crate::signin::{Browser, PASSWORD, Page, user_with_password};

pub(crate) const REDIRECT: &str = "https://app.example.com/callback";
pub(crate) const VERIFIER: &str = "a-long-enough-verifier-of-forty-three-plus-characters-0123";

pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An application client; its id and (for confidential ones) secret.
pub(crate) async fn app(
    server: &TestServer,
    name: &str,
    settings: Value,
) -> (String, Option<String>) {
    let admin = server.admin();
    let sp = admin
        .post("/v1/service-principals", json!({"name": name}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap().to_owned();
    let mut body = json!({
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [REDIRECT],
        "scopes": ["orders:read"],
        "groups_claim": true,
        "roles_claim": true,
    });
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/v1/service-principals/{id}/oauth-client"),
            Some(body.clone()),
            &[],
        )
        .await
        .expect(200);
    if body["client_type"] == "public" {
        return (id, None);
    }
    let key = admin
        .post(&format!("/v1/service-principals/{id}/api-keys"), json!({}))
        .await
        .expect(201);
    (id, Some(key["secret"].as_str().unwrap().to_owned()))
}

pub(crate) fn authorize_path(client: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/t/operator/oauth/authorize?{query}")
}

/// The query of a redirect back to the application.
pub(crate) fn callback(page: &Page) -> std::collections::HashMap<String, String> {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location();
    assert!(
        location.starts_with(REDIRECT),
        "sent back to the app: {location}"
    );
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Follows same-site redirects until the browser is sent to the application (or a page).
pub(crate) async fn follow(browser: &mut Browser, mut page: Page) -> Page {
    while page.status == 303 && page.location().starts_with('/') {
        let next = page.location().to_owned();
        page = browser.get(&next).await;
    }
    page
}

/// The signed-in `browser` asks to sign in to `client`, approves it on the consent page and
/// follows the redirects back: the application's callback parameters.
pub(crate) async fn approve(
    browser: &mut Browser,
    client: &str,
) -> std::collections::HashMap<String, String> {
    let page = browser.get(&authorize_path(client, &[])).await;
    let request = crate::mfa::between(&page.body, "name=\"request\" value=\"", "\"")[0].to_owned();
    let approved = browser
        .post(
            "/t/operator/oauth/consent",
            &[
                ("csrf", &page.csrf()),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    callback(&follow(browser, approved).await)
}

/// A signed-in browser of a new user; the user's id.
pub(crate) async fn signed_in(server: &TestServer, name: &str) -> (Browser, String) {
    let id = user_with_password(server, name, false).await;
    let mut browser = Browser::new(server);
    assert_eq!(
        browser.sign_in("operator", name, PASSWORD).await.status,
        303
    );
    (browser, id)
}

pub(crate) async fn token(
    server: &TestServer,
    client: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    post_form(server, "/t/operator/oauth/token", client, secret, form).await
}

pub(crate) async fn post_form(
    server: &TestServer,
    path: &str,
    client: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut fields = form.to_vec();
    let request = reqwest::Client::new().post(server.url(path));
    let request = match secret {
        Some(secret) => request.basic_auth(client, Some(secret)),
        None => {
            fields.push(("client_id", client));
            request
        }
    };
    let response = request.form(&fields).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A pushed authorization request (RFC 9126).
pub(crate) async fn push(
    server: &TestServer,
    client: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    post_form(server, "/t/operator/oauth/par", client, secret, form).await
}

pub(crate) async fn exchange(
    server: &TestServer,
    client: &str,
    secret: Option<&str>,
    code: &str,
) -> (StatusCode, Value) {
    token(
        server,
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn jwks(server: &TestServer) -> JwkSet {
    reqwest::get(server.url("/t/operator/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies a JWT against the published keys with `audience`; its claims.
async fn verified(server: &TestServer, token: &str, typ: &str, audience: &str) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some(typ));
    let keys = jwks(server).await;
    let key = keys
        .find(header.kid.as_deref().unwrap())
        .expect("published key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[format!(
        "http://localhost:{}/t/operator",
        server.addr.port()
    )]);
    decode::<Value>(token, &DecodingKey::from_jwk(key).unwrap(), &validation)
        .unwrap()
        .claims
}

pub(crate) async fn code_for(
    browser: &mut Browser,
    client: &str,
    extra: &[(&str, &str)],
) -> String {
    let page = browser.get(&authorize_path(client, extra)).await;
    let page = follow(browser, page).await;
    callback(&page)["code"].clone()
}

pub(crate) async fn introspect(
    server: &TestServer,
    client: &str,
    secret: &str,
    token: &str,
) -> Value {
    let (status, body) = post_form(
        server,
        "/t/operator/oauth/introspect",
        client,
        Some(secret),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_user_signs_in_to_an_application_with_a_code_and_pkce() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let user = user_with_password(&server, "ada", false).await;
    server
        .admin()
        .patch(
            &format!("/v1/users/{user}"),
            json!({"email": "ada@example.com", "display_name": "Ada L."}),
        )
        .await
        .expect(200);
    // Ada is in "buyers", which is inside "staff": both are in her groups claim.
    let admin = server.admin();
    let staff = admin
        .post("/v1/groups", json!({"name": "staff"}))
        .await
        .expect(201);
    let buyers = admin
        .post("/v1/groups", json!({"name": "buyers"}))
        .await
        .expect(201);
    for (group, kind, member) in [
        (&staff, "group", buyers["id"].as_str().unwrap()),
        (&buyers, "user", user.as_str()),
    ] {
        admin
            .post(
                &format!("/v1/groups/{}/members", group["id"].as_str().unwrap()),
                json!({"kind": kind, "id": member}),
            )
            .await
            .expect(201);
    }
    let mut browser = Browser::new(&server);

    // Not signed in: off to the sign-in page, with the hint filled in.
    let first = browser
        .get(&authorize_path(&client, &[("login_hint", "ada")]))
        .await;
    assert_eq!(first.status, 303);
    assert_eq!(first.location(), "/t/operator/sign-in?login_hint=ada");
    let form = browser.get(first.location()).await;
    assert!(
        form.body.contains("value=\"ada\""),
        "login_hint fills the user name"
    );
    let csrf = form.csrf();
    let signed = browser
        .post(
            "/t/operator/sign-in",
            &[
                ("csrf", &csrf),
                ("user_name", "ada"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        signed
            .location()
            .starts_with("/t/operator/oauth/authorize?client_id="),
        "back to the request after signing in: {}",
        signed.location()
    );
    let back = callback(&follow(&mut browser, signed).await);
    assert_eq!(back["state"], "st-123");
    let issuer = format!("http://localhost:{}/t/operator", server.addr.port());
    assert_eq!(back["iss"], issuer, "RFC 9207 iss names this issuer");

    let (status, tokens) = exchange(&server, &client, Some(&secret), &back["code"]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile email");
    let id_token = verified(
        &server,
        tokens["id_token"].as_str().unwrap(),
        "JWT",
        &client,
    )
    .await;
    assert_eq!(id_token["sub"], user);
    assert_eq!(id_token["nonce"], "n-456");
    assert_eq!(id_token["azp"], client);
    assert_eq!(id_token["acr"], "password");
    assert_eq!(id_token["amr"], json!(["pwd"]));
    assert_eq!(id_token["preferred_username"], "ada");
    assert_eq!(id_token["name"], "Ada L.");
    assert_eq!(id_token["email"], "ada@example.com");
    assert_eq!(id_token["groups"], json!(["buyers", "staff"]));
    assert!(id_token["auth_time"].as_i64().unwrap() <= id_token["iat"].as_i64().unwrap());
    let access = tokens["access_token"].as_str().unwrap();
    let at_hash = URL_SAFE_NO_PAD.encode(&Sha256::digest(access.as_bytes())[..16]);
    assert_eq!(id_token["at_hash"], at_hash);
    let access_claims = verified(
        &server,
        access,
        "at+jwt",
        &format!("{issuer}/oauth/userinfo"),
    )
    .await;
    assert_eq!(access_claims["sub"], user);
    assert_eq!(access_claims["client_id"], client);
    assert_eq!(access_claims["sid"], id_token["sid"]);

    let userinfo = reqwest::Client::new()
        .get(server.url("/t/operator/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 200);
    let userinfo: Value = userinfo.json().await.unwrap();
    assert_eq!(userinfo["sub"], user);
    assert_eq!(userinfo["email"], "ada@example.com");

    let active = introspect(&server, &client, &secret, access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "ada");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        introspect(&server, &client, &secret, refresh).await["active"],
        true
    );

    // A second sign-in by the same browser needs no page at all.
    let again = browser.get(&authorize_path(&client, &[])).await;
    assert!(callback(&again).contains_key("code"));

    let audit = server.admin().audit("oauth.authorize").await;
    assert_eq!(audit.len(), 2, "each code issued is in the audit trail");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, first) = exchange(&server, &client, Some(&secret), &code).await;
    let first_refresh = first["refresh_token"].as_str().unwrap().to_owned();

    let refresh = |token: String, scope: Option<&'static str>| {
        let server = &server;
        let client = client.clone();
        let secret = secret.clone();
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            token_owned(server, &client, &secret, &form).await
        }
    };
    let (status, second) = refresh(first_refresh.clone(), Some("openid profile")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["scope"], "openid profile",
        "a refresh may narrow the scopes"
    );
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh, "rotated at every use");
    let id_token = verified(
        &server,
        second["id_token"].as_str().unwrap(),
        "JWT",
        &client,
    )
    .await;
    assert!(
        id_token.get("nonce").is_none(),
        "no nonce on a refreshed ID token"
    );
    let (status, wider) = refresh(second_refresh.clone(), Some("openid orders:read")).await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // The first token again: someone holds a copy. Every token of the family dies.
    let (status, reused) = refresh(first_refresh, None).await;
    assert_eq!(status, 400);
    assert_eq!(reused["error"], "invalid_grant");
    let (status, after) = refresh(second_refresh.clone(), None).await;
    assert_eq!(
        (status, after["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    for token in [second["access_token"].as_str().unwrap(), &second_refresh] {
        assert_eq!(
            introspect(&server, &client, &secret, token).await["active"],
            false
        );
    }
    let events = server.admin().audit("oauth.grant.revoke").await;
    assert_eq!(events[0]["reason"], "refresh token reused");
}

async fn token_owned(
    server: &TestServer,
    client: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    token(server, client, Some(secret), form).await
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_what_it_gave() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (status, tokens) = exchange(&server, &client, Some(&secret), &code).await;
    assert_eq!(status, 200);
    let (status, replay) = exchange(&server, &client, Some(&secret), &code).await;
    assert_eq!(status, 400);
    assert_eq!(replay["error"], "invalid_grant");
    for token in ["access_token", "refresh_token"] {
        let token = tokens[token].as_str().unwrap();
        assert_eq!(
            introspect(&server, &client, &secret, token).await["active"],
            false,
            "{token}"
        );
    }
    let (_, refreshed) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant");

    // Two redemptions racing: one wins, and the loser's attempt revokes what the winner got.
    let raced = code_for(&mut browser, &client, &[]).await;
    let (first, second) = tokio::join!(
        exchange(&server, &client, Some(&secret), &raced),
        exchange(&server, &client, Some(&secret), &raced)
    );
    let winners: Vec<&Value> = [&first, &second]
        .into_iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{first:?} {second:?}");
    let won = winners[0]["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&server, &client, &secret, won).await["active"],
        false
    );

    // An expired code is refused.
    let late = code_for(&mut browser, &client, &[]).await;
    server
        .db
        .execute("UPDATE oauth_grants SET code_expires_at = 0 WHERE code_used_at IS NULL")
        .await
        .unwrap();
    let (_, expired) = exchange(&server, &client, Some(&secret), &late).await;
    assert_eq!(expired["error"], "invalid_grant");
    assert!(
        expired["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn pkce_is_required_and_the_verifier_must_match() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    for (extra, why) in [
        (vec![("code_challenge", "")], "missing"),
        (vec![("code_challenge_method", "plain")], "plain"),
        (vec![("code_challenge_method", "")], "no method means plain"),
    ] {
        let page = browser.get(&authorize_path(&client, &extra)).await;
        let back = callback(&page);
        assert_eq!(back["error"], "invalid_request", "{why}");
        assert_eq!(back["state"], "st-123");
        assert!(!back.contains_key("code"));
    }
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, wrong) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            (
                "code_verifier",
                "another-verifier-that-is-long-enough-to-be-valid-xx",
            ),
        ],
    )
    .await;
    assert_eq!(wrong["error"], "invalid_grant");
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, missing) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(missing["error"], "invalid_request");
}

#[tokio::test]
async fn redirect_uris_match_exactly_or_nothing_is_sent_anywhere() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    for tampered in [
        "https://app.example.com/callback/../evil",
        "https://app.example.com/callback?next=https://evil.example",
        "https://app.example.com/callbackx",
        "https://app.example.com/",
        "https://APP.example.com/callback",
        "https://evil.example/callback",
        "",
    ] {
        let page = browser
            .get(&authorize_path(&client, &[("redirect_uri", tampered)]))
            .await;
        assert_eq!(page.status, 400, "{tampered}");
        assert!(page.location().is_empty(), "never redirected: {tampered}");
        assert!(page.body.contains("redirect_uri"), "{}", page.body);
    }
    for (extra, why) in [
        (
            vec![("client_id", "00000000-0000-0000-0000-000000000000")],
            "unknown client",
        ),
        (vec![("state", "a"), ("state", "b")], "repeated"),
    ] {
        let mut path = authorize_path(&client, &extra);
        if why == "repeated" {
            path.push_str("&state=again");
        }
        let page = browser.get(&path).await;
        assert_eq!(page.status, 400, "{why}");
        assert!(page.location().is_empty());
    }
    // The token request must name the same redirect URI as the authorization request.
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, other) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(other["error"], "invalid_grant");
}

#[tokio::test]
async fn codes_and_tokens_belong_to_their_client_and_tenant() {
    let server = TestServer::start().await;
    let (shop, shop_secret) = app(&server, "shop", json!({})).await;
    let shop_secret = shop_secret.unwrap();
    let (other, other_secret) = app(&server, "other", json!({})).await;
    let other_secret = other_secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &shop, &[]).await;
    // Another client cannot redeem the code, and trying does not burn it.
    let (_, stolen) = exchange(&server, &other, Some(&other_secret), &code).await;
    assert_eq!(stolen["error"], "invalid_grant");
    let (status, tokens) = exchange(&server, &shop, Some(&shop_secret), &code).await;
    assert_eq!(status, 200);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (_, stolen) = token(
        &server,
        &other,
        Some(&other_secret),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(stolen["error"], "invalid_grant");
    // Nor introspect or revoke them.
    assert_eq!(
        introspect(&server, &other, &other_secret, access).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &other, &other_secret, refresh).await["active"],
        false
    );
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/revoke",
        &other,
        Some(&other_secret),
        &[("token", refresh)],
    )
    .await;
    assert_eq!(status, 200, "the same answer whoever asks");
    assert_eq!(
        introspect(&server, &shop, &shop_secret, refresh).await["active"],
        true
    );

    // Another tenant's endpoints know nothing of this tenant's tokens.
    server.admin().create_tenant("beta").await;
    let beta_userinfo = reqwest::Client::new()
        .get(server.url("/t/beta/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(beta_userinfo.status(), 401);
    assert!(
        beta_userinfo.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // Nor redeem its refresh tokens or follow its pushed requests.
    let beta_refresh = reqwest::Client::new()
        .post(server.url("/t/beta/oauth/token"))
        .basic_auth(&shop, Some(&shop_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        beta_refresh.status(),
        401,
        "the client does not exist at beta"
    );
    let challenge = challenge(VERIFIER);
    let (status, pushed) = push(
        &server,
        &shop,
        Some(&shop_secret),
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, 201);
    let at_beta = format!(
        "/t/beta/oauth/authorize?client_id={shop}&request_uri={}",
        url::form_urlencoded::byte_serialize(pushed["request_uri"].as_str().unwrap().as_bytes())
            .collect::<String>()
    );
    let page = browser.get(&at_beta).await;
    assert_eq!(page.status, 400);
    assert!(page.location().is_empty());
}

#[tokio::test]
async fn prompt_max_age_and_acr_values_decide_what_the_user_is_asked() {
    let server = TestServer::start().await;
    let (client, _) = app(&server, "shop", json!({})).await;
    let mut stranger = Browser::new(&server);
    let page = stranger
        .get(&authorize_path(&client, &[("prompt", "none")]))
        .await;
    let back = callback(&page);
    assert_eq!(back["error"], "login_required");
    assert_eq!(back["state"], "st-123");

    let (mut browser, user) = signed_in(&server, "ada").await;
    assert!(
        callback(
            &browser
                .get(&authorize_path(&client, &[("prompt", "none")]))
                .await
        )
        .contains_key("code")
    );

    // prompt=login: a whole new sign-in, then the code.
    let page = browser
        .get(&authorize_path(&client, &[("prompt", "login")]))
        .await;
    assert!(page.location().starts_with("/t/operator/sign-in"));
    let page = browser.sign_in("operator", "ada", PASSWORD).await;
    assert!(callback(&follow(&mut browser, page).await).contains_key("code"));

    // max_age: an hour-old sign-in asks for the password again (step-up), then goes on.
    let methods = json!([{"method": "pwd", "at": "2000-01-01T00:00:00Z"}]).to_string();
    server
        .db
        .execute(&format!(
            "UPDATE sessions SET methods = '{methods}' WHERE user_id = '{user}'"
        ))
        .await
        .unwrap();
    let none = browser
        .get(&authorize_path(
            &client,
            &[("max_age", "300"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(callback(&none)["error"], "login_required");
    let page = browser
        .get(&authorize_path(&client, &[("max_age", "300")]))
        .await;
    assert!(
        page.location().starts_with("/t/operator/step-up?"),
        "{}",
        page.location()
    );
    let step = browser.get(page.location()).await;
    let to = crate::mfa::between(&step.body, "name=\"to\" value=\"", "\"")[0].replace("&#38;", "&");
    let done = browser
        .post(
            "/t/operator/step-up/password",
            &[
                ("csrf", &step.csrf()),
                ("to", &to),
                ("strength", "password"),
                ("max_age", "300"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let back = callback(&follow(&mut browser, done).await);
    assert!(back.contains_key("code"), "{back:?}");

    // acr_values=mfa from a password-only session: the user is asked for a second factor.
    let page = browser
        .get(&authorize_path(&client, &[("acr_values", "mfa")]))
        .await;
    assert!(
        page.location().contains("strength=mfa"),
        "{}",
        page.location()
    );
    let none = browser
        .get(&authorize_path(
            &client,
            &[("acr_values", "mfa"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(callback(&none)["error"], "login_required");
}

#[tokio::test]
async fn third_party_applications_ask_for_consent_once() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "Partner App", json!({"require_consent": true})).await;
    let (mut browser, user) = signed_in(&server, "ada").await;
    let none = browser
        .get(&authorize_path(&client, &[("prompt", "none")]))
        .await;
    assert_eq!(callback(&none)["error"], "consent_required");

    let page = browser.get(&authorize_path(&client, &[])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Allow Partner App"), "{}", page.body);
    assert!(page.body.contains("See your email address"));
    // The consent form ends in a redirect to the application: its origin, and only it, is
    // added to the page's form-action (a hostile origin could not have been registered).
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("form-action 'self' https://app.example.com;"),
        "{policy}"
    );
    let plain = Browser::new(&server).get("/t/operator/sign-in").await;
    let policy = plain.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("form-action 'self';"), "{policy}");
    let request = crate::mfa::between(&page.body, "name=\"request\" value=\"", "\"")[0].to_owned();
    let forged = browser
        .post(
            "/t/operator/oauth/consent",
            &[("csrf", "x"), ("request", &request), ("decision", "allow")],
        )
        .await;
    assert_eq!(forged.status, 403, "CSRF-checked");
    let denied = browser
        .post(
            "/t/operator/oauth/consent",
            &[
                ("csrf", &page.csrf()),
                ("request", &request),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(callback(&denied)["error"], "access_denied");

    let page = browser.get(&authorize_path(&client, &[])).await;
    let request = crate::mfa::between(&page.body, "name=\"request\" value=\"", "\"")[0].to_owned();
    let allowed = browser
        .post(
            "/t/operator/oauth/consent",
            &[
                ("csrf", &page.csrf()),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    let back = callback(&follow(&mut browser, allowed).await);
    assert!(back.contains_key("code"));
    let (status, _) = exchange(&server, &client, secret.as_deref(), &back["code"]).await;
    assert_eq!(status, 200);

    // Remembered: no page the next time, unless the application asks for it again.
    assert!(callback(&browser.get(&authorize_path(&client, &[])).await).contains_key("code"));
    let asked = browser
        .get(&authorize_path(&client, &[("prompt", "consent")]))
        .await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("Allow Partner App"));
    // A handle already answered cannot be answered again.
    let stale = browser
        .post(
            "/t/operator/oauth/consent",
            &[
                ("csrf", &page.csrf()),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(stale.status, 400);
    // The user withdraws the approval from their account page: asked again, tokens revoked.
    let account = browser.get("/t/operator/account").await;
    assert!(account.body.contains("Partner App") && account.body.contains("Withdraw access"));
    let listed = server
        .admin()
        .get(&format!("/v1/users/{user}/consents"))
        .await
        .expect(200)["items"]
        .take();
    assert_eq!(listed[0]["application"], "Partner App");
    let (_, tokens) = exchange(
        &server,
        &client,
        secret.as_deref(),
        &code_for(&mut browser, &client, &[]).await,
    )
    .await;
    let withdrawn = browser
        .post(
            &format!("/t/operator/account/applications/{client}/withdraw"),
            &[("csrf", &account.csrf())],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    assert_eq!(
        browser.get(&authorize_path(&client, &[])).await.status,
        200,
        "asked again"
    );
    let (_, refreshed) = token(
        &server,
        &client,
        secret.as_deref(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant");
    assert_eq!(
        server.admin().audit("oauth.consent.withdraw").await.len(),
        1
    );
    server
        .admin()
        .delete(&format!("/v1/users/{user}/consents/{client}"))
        .await
        .problem(404);
}

#[tokio::test]
async fn public_clients_use_pkce_without_a_secret_and_confidential_ones_cannot() {
    let server = TestServer::start().await;
    let (spa, none) = app(
        &server,
        "spa",
        json!({"client_type": "public", "redirect_uris": [REDIRECT]}),
    )
    .await;
    assert!(none.is_none());
    let (confidential, _) = app(&server, "shop", json!({})).await;
    let (mut browser, _) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &spa, &[]).await;
    let (status, tokens) = exchange(&server, &spa, None, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let code = code_for(&mut browser, &confidential, &[]).await;
    let (status, refused) = exchange(&server, &confidential, None, &code).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"], "invalid_client");
    // A public client revokes its own refresh token by naming itself.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/revoke",
        &spa,
        None,
        &[("token", refresh)],
    )
    .await;
    assert_eq!(status, 200);
    let (_, after) = token(
        &server,
        &spa,
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(after["error"], "invalid_grant");
    // But it may not introspect.
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/introspect",
        &spa,
        None,
        &[("token", refresh)],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn disabling_the_user_or_revoking_stops_tokens_at_once() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, user) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, tokens) = exchange(&server, &client, Some(&secret), &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // Revoking the access token: inactive at once, and refused by userinfo.
    let (status, _) = post_form(
        &server,
        "/t/operator/oauth/revoke",
        &client,
        Some(&secret),
        &[("token", &access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        introspect(&server, &client, &secret, &access).await["active"],
        false
    );
    let userinfo = reqwest::Client::new()
        .get(server.url("/t/operator/oauth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);

    let code = code_for(&mut browser, &client, &[]).await;
    let (_, tokens) = exchange(&server, &client, Some(&secret), &code).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    server
        .admin()
        .patch(&format!("/v1/users/{user}"), json!({"state": "disabled"}))
        .await
        .expect(200);
    assert_eq!(
        introspect(&server, &client, &secret, access).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &client, &secret, refresh).await["active"],
        false
    );
    let (_, refreshed) = token(
        &server,
        &client,
        Some(&secret),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_end_with_the_session_unless_offline_access_was_granted() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "shop", json!({})).await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    let online = code_for(&mut browser, &client, &[]).await;
    let (_, online) = exchange(&server, &client, Some(&secret), &online).await;
    let offline = code_for(&mut browser, &client, &[("scope", "openid offline_access")]).await;
    let (_, offline) = exchange(&server, &client, Some(&secret), &offline).await;

    let account = browser.get("/t/operator/account").await;
    let out = browser
        .post("/t/operator/sign-out", &[("csrf", &account.csrf())])
        .await;
    assert_eq!(out.status, 303);
    let refresh = |t: &Value| t["refresh_token"].as_str().unwrap().to_owned();
    let (_, ended) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(&online)),
        ],
    )
    .await;
    assert_eq!(ended["error"], "invalid_grant");
    let (status, kept) = token(
        &server,
        &client,
        Some(&secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(&offline)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{kept}");
}

#[tokio::test]
async fn client_settings_that_cannot_work_are_refused() {
    let server = TestServer::start().await;
    let sp = server
        .admin()
        .post("/v1/service-principals", json!({"name": "bad"}))
        .await
        .expect(201);
    let id = sp["id"].as_str().unwrap();
    for (settings, field) in [
        (
            json!({"grant_types": ["authorization_code"], "redirect_uris": []}),
            "redirect_uris",
        ),
        (
            json!({"grant_types": ["authorization_code"], "redirect_uris": ["http://app.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example.com/cb#frag"]}),
            "redirect_uris",
        ),
        (
            json!({"client_type": "public", "grant_types": ["client_credentials"], "resources": ["https://api.example.com"]}),
            "grant_types",
        ),
    ] {
        let mut body = settings.clone();
        body["scopes"] = json!([]);
        let problem = server
            .admin()
            .send(
                reqwest::Method::PUT,
                &format!("/v1/service-principals/{id}/oauth-client"),
                Some(body),
                &[],
            )
            .await
            .problem(422);
        assert!(problem.to_string().contains(field), "{problem}");
    }
}

#[tokio::test]
async fn pushed_requests_travel_by_reference_and_work_once() {
    let server = TestServer::start().await;
    let (client, secret) = app(
        &server,
        "bank",
        json!({"require_pushed_authorization_requests": true}),
    )
    .await;
    let secret = secret.unwrap();
    let (mut browser, _) = signed_in(&server, "ada").await;
    // This client must push: a plain request is sent back with an error.
    let plain = browser.get(&authorize_path(&client, &[])).await;
    assert_eq!(callback(&plain)["error"], "invalid_request");

    let challenge = challenge(VERIFIER);
    let fields = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "pushed-state"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, pushed) = push(&server, &client, Some(&secret), &fields).await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 600);
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let path = format!(
        "/t/operator/oauth/authorize?client_id={client}&request_uri={}",
        url::form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    );
    let back = callback(&browser.get(&path).await);
    assert_eq!(back["state"], "pushed-state");
    let (status, _) = exchange(&server, &client, Some(&secret), &back["code"]).await;
    assert_eq!(status, 200);
    // Once answered, the reference is spent.
    assert_eq!(browser.get(&path).await.status, 400);

    // Pushing needs the client's credentials and its own redirect URI.
    let (status, refused) = push(&server, &client, Some("wrong"), &fields).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let mut elsewhere = fields.to_vec();
    elsewhere[1] = ("redirect_uri", "https://evil.example/cb");
    let (status, refused) = push(&server, &client, Some(&secret), &elsewhere).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let mut plain_pkce = fields.to_vec();
    plain_pkce[5] = ("code_challenge_method", "plain");
    let (status, _) = push(&server, &client, Some(&secret), &plain_pkce).await;
    assert_eq!(status, 400);
    // Another client cannot use this client's reference.
    let (other, _) = app(&server, "other", json!({})).await;
    let (_, pushed) = push(&server, &client, Some(&secret), &fields).await;
    let stolen = format!(
        "/t/operator/oauth/authorize?client_id={other}&request_uri={}",
        url::form_urlencoded::byte_serialize(pushed["request_uri"].as_str().unwrap().as_bytes())
            .collect::<String>()
    );
    assert_eq!(browser.get(&stolen).await.status, 400);
}

/// The authorization endpoint's path for `request_uri` presented by `client`.
fn by_reference(client: &str, request_uri: &str) -> String {
    format!(
        "/t/operator/oauth/authorize?client_id={client}&request_uri={}",
        url::form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    )
}

/// A `request_uri` this server never issued to the client is `invalid_request_uri` (RFC 9101
/// §7), shown as a page; one it did issue, now expired or answered, says so instead.
#[tokio::test]
async fn a_request_uri_never_issued_is_invalid_unlike_an_expired_one() {
    let server = TestServer::start().await;
    let (client, secret) = app(&server, "bank", json!({})).await;
    let secret = secret.unwrap();
    let (other, _) = app(&server, "other", json!({})).await;
    let challenge = challenge(VERIFIER);
    let fields = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let push_one = || async {
        let (status, pushed) = push(&server, &client, Some(&secret), &fields).await;
        assert_eq!(status, 201, "{pushed}");
        pushed["request_uri"].as_str().unwrap().to_owned()
    };
    let mut browser = Browser::new(&server);

    let pushed = push_one().await;
    let never_pushed = format!("urn:ietf:params:oauth:request_uri:{}", "A".repeat(43));
    for (presenter, request_uri) in [
        (client.as_str(), never_pushed.as_str()),
        (client.as_str(), "https://app.example.com/request.jwt"),
        (client.as_str(), "urn:ietf:params:oauth:request_uri:"),
        // Pushed, but by another client.
        (other.as_str(), pushed.as_str()),
    ] {
        let page = browser.get(&by_reference(presenter, request_uri)).await;
        assert_eq!(page.status, 400, "{request_uri}: {}", page.body);
        assert!(page.location().is_empty(), "shown, never sent anywhere");
        assert!(
            page.body.contains("invalid_request_uri")
                && page.body.contains("start signing in again"),
            "{request_uri}: {}",
            page.body
        );
    }

    // Still good for its own client after all that; then answered, it is spent.
    let (mut ada, _) = signed_in(&server, "ada").await;
    let back = callback(&ada.get(&by_reference(&client, &pushed)).await);
    assert!(back.contains_key("code"));
    assert_expired(&ada.get(&by_reference(&client, &pushed)).await);

    // Expired before anyone answered it.
    let late = push_one().await;
    server.advance(time::Duration::seconds(601));
    assert_expired(&browser.get(&by_reference(&client, &late)).await);
}

#[track_caller]
fn assert_expired(page: &Page) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location().is_empty());
    assert!(
        page.body.contains("expired or was already answered")
            && !page.body.contains("invalid_request_uri"),
        "{}",
        page.body
    );
}

/// A back-channel logout receiver: the form bodies POSTed to it, as they arrive.
/// The next logout token the receiver got, or a failed test if none arrives within a minute
/// (a broken back-channel must fail the test, not hang it).
async fn next_logout_token(
    received: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    which: &str,
) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(60), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no {which} logout token within a minute"))
        .unwrap_or_else(|| panic!("the receiver stopped before the {which} logout token"))
}

async fn logout_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!(
        "http://localhost:{}/backchannel",
        listener.local_addr().unwrap().port()
    );
    let (sender, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            loop {
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        let _ = sender.send(body.to_owned());
                        break;
                    }
                }
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (uri, received)
}

#[tokio::test]
async fn an_application_signs_the_user_out_and_the_others_are_told() {
    let server = TestServer::start().await;
    let (receiver_uri, mut received) = logout_receiver().await;
    let (client, secret) = app(
        &server,
        "shop",
        json!({
            "post_logout_redirect_uris": ["https://app.example.com/signed-out"],
            "backchannel_logout_uri": receiver_uri,
        }),
    )
    .await;
    let secret = secret.unwrap();
    let (mut browser, user) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, tokens) = exchange(&server, &client, Some(&secret), &code).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = verified(&server, id_token, "JWT", &client).await["sid"].clone();

    // Without an ID token for this session, the user is asked first: a link elsewhere
    // cannot sign anyone out.
    let asked = browser
        .get(&format!(
            "/t/operator/oauth/logout?client_id={client}&post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fsigned-out&state=bye"
        ))
        .await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("asks you to sign out"));
    let policy = asked.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("form-action 'self' https://app.example.com;"),
        "{policy}"
    );
    assert_eq!(
        browser.get("/t/operator/account").await.status,
        200,
        "still signed in"
    );
    // An unregistered place to go afterwards is refused outright.
    let elsewhere = browser
        .get(&format!(
            "/t/operator/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
        ))
        .await;
    assert_eq!(elsewhere.status, 400);
    assert_eq!(browser.get("/t/operator/account").await.status, 200);

    // With the ID token of this session, at once.
    let out = browser
        .get(&format!(
            "/t/operator/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fsigned-out&state=bye"
        ))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.location(),
        "https://app.example.com/signed-out?state=bye"
    );
    assert_eq!(
        browser.get("/t/operator/account").await.status,
        303,
        "signed out"
    );

    let body = next_logout_token(&mut received, "first").await;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let logout = verified(&server, &form["logout_token"], "logout+jwt", &client).await;
    assert_eq!(logout["sub"], user);
    assert_eq!(logout["sid"], sid);
    assert!(logout["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(logout.get("nonce").is_none());
    // The session's tokens are revoked with it.
    assert_eq!(
        introspect(
            &server,
            &client,
            &secret,
            tokens["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );
}

#[tokio::test]
async fn signing_out_on_the_account_page_tells_the_applications_too() {
    let server = TestServer::start().await;
    let (receiver_uri, mut received) = logout_receiver().await;
    let (client, secret) = app(
        &server,
        "shop",
        json!({"backchannel_logout_uri": receiver_uri}),
    )
    .await;
    let (mut browser, user) = signed_in(&server, "ada").await;
    let code = code_for(&mut browser, &client, &[]).await;
    let (_, tokens) = exchange(&server, &client, secret.as_deref(), &code).await;
    let account = browser.get("/t/operator/account").await;
    browser
        .post("/t/operator/sign-out", &[("csrf", &account.csrf())])
        .await;
    let body = next_logout_token(&mut received, "first").await;
    assert!(body.starts_with("logout_token="));
    // An administrator ending the user's sessions tells the application too.
    let mut again = Browser::new(&server);
    again.sign_in("operator", "ada", PASSWORD).await;
    let code = code_for(&mut again, &client, &[]).await;
    exchange(&server, &client, secret.as_deref(), &code).await;
    server
        .admin()
        .delete(&format!("/v1/users/{user}/sessions"))
        .await
        .expect(200);
    let body = next_logout_token(&mut received, "second").await;
    assert!(body.starts_with("logout_token="));
    // So does disabling the user.
    let mut third = Browser::new(&server);
    third.sign_in("operator", "ada", PASSWORD).await;
    let code = code_for(&mut third, &client, &[]).await;
    exchange(&server, &client, secret.as_deref(), &code).await;
    server
        .admin()
        .patch(&format!("/v1/users/{user}"), json!({"state": "disabled"}))
        .await
        .expect(200);
    let body = next_logout_token(&mut received, "third").await;
    assert!(body.starts_with("logout_token="));
    let (_, refreshed) = token(
        &server,
        &client,
        secret.as_deref(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant");
}

#[tokio::test]
async fn browser_applications_may_call_the_token_endpoints_from_their_origin() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            server.url("/t/operator/oauth/token"),
        )
        .header("origin", "https://spa.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let jwks = http
        .get(server.url("/t/operator/jwks"))
        .header("origin", "https://spa.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    // Endpoints for servers only, and the pages, are not opened to other origins.
    for path in [
        "/t/operator/oauth/introspect",
        "/t/operator/oauth/par",
        "/t/operator/sign-in",
    ] {
        let response = http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", "https://spa.example.com")
            .send()
            .await
            .unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}"
        );
    }
}
