// Interop test: Portcullis's OpenID Connect provider, driven by openid-client 6 (and, as a resource
// server would check access tokens, by oauth4webapi's RFC 9068 validator) the way a relying party
// uses it: discovery, authorization code with PKCE S256, state and nonce, sign-in through the
// server's HTML pages, ID token checks, userinfo, refresh-token rotation and reuse detection,
// introspection (RFC 7662), revocation (RFC 7009), a public client, and callback tampering
// (state, and the RFC 9207 `iss` parameter) that openid-client must refuse, and RP-initiated
// logout.
//
// Needs PORTCULLIS_URL (the server's public URL) and PORTCULLIS_API_KEY (an operator admin key);
// run by tests/interop/node/run.sh. Prints one line on success, exits non-zero on any failure.

import { createHash } from 'node:crypto';

import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';

import { Browser, Failure, PASSWORD, adminApi, check, createUser, csrfOf } from './common.mjs';

// Nothing listens here: the browser's last redirect is handed to openid-client, never followed.
const REDIRECT_URI = 'http://localhost:9/callback';
const SIGNED_OUT_URI = 'http://localhost:9/signed-out';
const API_SCOPE = 'orders:read';
const SCOPE = `openid profile email ${API_SCOPE}`;

const json = (value) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------------
// The admin API (setup only)

/** A service principal set up as a sign-in client; the confidential one gets a secret. */
async function createClient(admin, name, clientType) {
  const sp = await admin('POST', '/v1/service-principals', { name }, 201);
  await admin(
    'PUT',
    `/v1/service-principals/${sp.id}/oauth-client`,
    {
      client_type: clientType,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [SIGNED_OUT_URI],
      scopes: [API_SCOPE],
      resources: [],
      access_token_seconds: 300,
    },
    200,
  );
  if (clientType !== 'confidential') return { id: sp.id };
  const key = await admin('POST', `/v1/service-principals/${sp.id}/api-keys`, {}, 201);
  return { id: sp.id, secret: key.secret };
}

// ---------------------------------------------------------------------------------------------
// Through the sign-in pages

/**
 * Runs an authorization request through the server's pages as a person with a browser would:
 * sent to the sign-in form, signs in with a password, and comes back to the authorization
 * endpoint, which sends the browser to the redirect URI. Returns that callback URL.
 */
async function signInAndAuthorize(browser, issuer, authorizationUrl, userName) {
  const tenantPath = new URL(issuer).pathname;
  const signInUrl = await browser.redirect('authorize', authorizationUrl);
  check(
    signInUrl.pathname === `${tenantPath}/sign-in`,
    `authorize: redirected to ${signInUrl}, not to the sign-in page`,
  );
  check(
    signInUrl.searchParams.get('login_hint') === userName,
    `authorize: the sign-in redirect lost the login_hint: ${signInUrl}`,
  );
  check(browser.cookies.has('portcullis_continue'), 'authorize: no portcullis_continue cookie');

  const page = await browser.request(signInUrl);
  const html = await page.text();
  check(page.status === 200, `GET ${signInUrl}: ${page.status}: ${html.slice(0, 500)}`);
  const csrf = csrfOf(html);
  check(browser.cookies.has('portcullis_csrf'), 'sign-in page: no portcullis_csrf cookie');

  const resumeUrl = await browser.redirect('sign-in', new URL(`${tenantPath}/sign-in`, issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, user_name: userName, password: PASSWORD }),
  });
  check(browser.cookies.has('portcullis_session'), 'sign-in: no portcullis_session cookie');
  check(
    resumeUrl.pathname === `${tenantPath}/oauth/authorize` &&
      resumeUrl.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'),
    `sign-in: redirected to ${resumeUrl}, not back to the authorization request`,
  );
  return authorizeAgain(browser, resumeUrl);
}

/** An authorization request by a browser already signed in: straight back to the client. */
async function authorizeAgain(browser, url) {
  const callback = await browser.redirect('authorize (signed in)', url);
  check(
    callback.href.startsWith(`${REDIRECT_URI}?`),
    `authorize: redirected to ${callback}, not to the client's redirect URI`,
  );
  return callback;
}

/** A fresh PKCE verifier, state and nonce, and the authorization URL openid-client builds. */
async function authorizationRequest(config, extra = {}) {
  const checks = {
    pkceCodeVerifier: client.randomPKCECodeVerifier(),
    expectedState: client.randomState(),
    expectedNonce: client.randomNonce(),
  };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: checks.expectedState,
    nonce: checks.expectedNonce,
    ...extra,
  });
  return { url, checks };
}

// ---------------------------------------------------------------------------------------------
// Expected failures

/** Awaits `promise`, which must reject; `accept(error)` says whether it rejected as it should. */
async function refused(label, promise, accept) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  check(error !== undefined, `${label}: accepted, but should have been refused`);
  if (!(await accept(error))) {
    throw new Failure(`${label}: refused, but not as expected: ${describe(error)}`);
  }
}

/** An OAuth error response (RFC 6749 §5.2) with this `error` code. */
const oauthError = (code) => (e) => e instanceof client.ResponseBodyError && e.error === code;

/** openid-client's own refusal of an authorization response, mentioning `parameter`. */
const badCallback = (parameter) => (e) =>
  e instanceof client.ClientError &&
  e.code === 'OAUTH_INVALID_RESPONSE' &&
  String(e.cause?.message).includes(`"${parameter}"`);

/**
 * A refused client (RFC 6749 §5.2): 401 with a Basic challenge, which oauth4webapi reports as a
 * challenge rather than an error body, and `invalid_client` in the body.
 */
const clientRefused = async (e) =>
  e instanceof client.WWWAuthenticateChallengeError &&
  e.status === 401 &&
  e.cause.some((c) => c.scheme === 'basic') &&
  (await e.response.json()).error === 'invalid_client';

/** A bearer-token refusal (RFC 6750 §3): 401 with `error="invalid_token"`. */
const invalidToken = (e) =>
  e instanceof client.WWWAuthenticateChallengeError &&
  e.status === 401 &&
  e.cause.some((c) => c.scheme === 'bearer' && c.parameters.error === 'invalid_token');

function describe(error) {
  if (error instanceof client.ResponseBodyError) {
    return `HTTP ${error.status} ${json(error.cause)}`;
  }
  if (error instanceof client.AuthorizationResponseError) {
    return `authorization error ${error.error}: ${error.error_description}`;
  }
  const cause = error?.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
  return `${error?.constructor?.name}${error?.code ? ` ${error.code}` : ''}: ${error?.message}${cause}`;
}

// ---------------------------------------------------------------------------------------------
// Checks of what the server issues

/** OIDC Core §3.1.3.6: the left half of the access token's SHA-256, base64url. */
function atHash(accessToken) {
  return createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');
}

/** The ID token claims openid-client validated, against what this sign-in must carry. */
function checkIdToken(label, tokens, { userId, clientId, userName, nonce, startedAt }) {
  const claims = tokens.claims();
  check(claims, `${label}: no ID token`);
  check(claims.sub === userId, `${label}: ID token sub ${claims.sub}, not the user ${userId}`);
  const aud = [claims.aud].flat();
  check(aud.length === 1 && aud[0] === clientId, `${label}: ID token aud ${claims.aud}`);
  check(claims.nonce === nonce, `${label}: ID token nonce ${claims.nonce}, not ${nonce}`);
  check(claims.acr === 'password', `${label}: ID token acr ${claims.acr}`);
  check(claims.amr?.includes('pwd'), `${label}: ID token amr ${json(claims.amr)}`);
  // Seconds: the sign-in happened during this run (allowing a little clock rounding).
  check(
    Number.isInteger(claims.auth_time) &&
      claims.auth_time >= Math.floor(startedAt / 1000) - 5 &&
      claims.auth_time <= Date.now() / 1000 + 5,
    `${label}: ID token auth_time ${claims.auth_time} is not during this run`,
  );
  check(claims.at_hash === atHash(tokens.access_token), `${label}: ID token at_hash does not match`);
  check(
    claims.preferred_username === userName,
    `${label}: preferred_username ${claims.preferred_username}`,
  );
  check(claims.email === `${userName}@example.com`, `${label}: email ${claims.email}`);
  return claims;
}

/** The token response's plain fields, and the access token as a resource server checks it. */
async function checkAccessToken(label, config, tokens, { userId, clientId, scope }) {
  check(tokens.token_type?.toLowerCase() === 'bearer', `${label}: token_type ${tokens.token_type}`);
  check(tokens.expires_in === 300, `${label}: expires_in ${tokens.expires_in}`);
  check(tokens.scope === scope, `${label}: scope ${json(tokens.scope)}, not ${scope}`);
  check(typeof tokens.refresh_token === 'string', `${label}: no refresh token`);
  // RFC 9068: typ at+jwt, ES256 by the issuer's JWKS, the required claims. Without a resource,
  // the token is for the issuer's userinfo endpoint.
  const issuer = config.serverMetadata().issuer;
  const request = new Request(`${issuer}/oauth/userinfo`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  let claims;
  try {
    claims = await oauth.validateJwtAccessToken(
      config.serverMetadata(),
      request,
      `${issuer}/oauth/userinfo`,
      { signingAlgorithms: ['ES256'], [oauth.allowInsecureRequests]: true },
    );
  } catch (e) {
    throw new Failure(`${label}: oauth4webapi rejected the access token: ${describe(e)}`);
  }
  check(claims.sub === userId, `${label}: access token sub ${claims.sub}`);
  check(claims.client_id === clientId, `${label}: access token client_id ${claims.client_id}`);
  check(claims.scope === scope, `${label}: access token scope ${claims.scope}`);
  return claims;
}

// ---------------------------------------------------------------------------------------------
// The flows

async function run(base, apiKey) {
  const startedAt = Date.now();
  const admin = adminApi(base, apiKey);
  // The tenant of the admin key: the issuer is per tenant.
  const me = await admin('GET', '/v1/me', undefined, 200);
  const issuer = `${base}/t/${me.tenant.name}`;

  const suffix = Date.now().toString(36);
  const userName = `interop-node-${suffix}`;
  const userId = await createUser(admin, userName);
  const confidential = await createClient(admin, `interop-node-${suffix}`, 'confidential');
  const pub = await createClient(admin, `interop-node-public-${suffix}`, 'public');

  // Discovery; plain http is this test's server only, hence allowInsecureRequests.
  const discoveryOptions = { execute: [client.allowInsecureRequests] };
  const clientMetadata = { id_token_signed_response_alg: 'ES256', require_auth_time: true };
  const config = await client.discovery(
    new URL(issuer),
    confidential.id,
    clientMetadata,
    client.ClientSecretBasic(confidential.secret),
    discoveryOptions,
  );
  const metadata = config.serverMetadata();
  check(metadata.issuer === issuer, `discovery: issuer ${metadata.issuer}, not ${issuer}`);
  check(metadata.supportsPKCE('S256'), 'discovery: S256 PKCE not advertised');
  check(
    metadata.authorization_response_iss_parameter_supported === true,
    'discovery: authorization_response_iss_parameter_supported is not true',
  );
  const who = { userId, clientId: confidential.id, userName };
  // Whether the server calls `token` active, asked by the client it was issued to.
  const active = async (token) => (await client.tokenIntrospection(config, token)).active === true;

  // prompt=none without a session: the error comes back to the client, and openid-client
  // surfaces it (after checking its state and iss).
  const browser = new Browser();
  {
    const { url, checks } = await authorizationRequest(config, { prompt: 'none' });
    const callback = await browser.redirect('authorize (prompt=none)', url);
    check(callback.href.startsWith(`${REDIRECT_URI}?`), `prompt=none: redirected to ${callback}`);
    await refused(
      'prompt=none without a session',
      client.authorizationCodeGrant(config, callback, checks),
      (e) => e instanceof client.AuthorizationResponseError && e.error === 'login_required',
    );
  }

  // The authorization code flow, signing in through the pages.
  const first = await authorizationRequest(config, { login_hint: userName });
  const callback = await signInAndAuthorize(browser, issuer, first.url, userName);
  check(callback.searchParams.get('iss') === issuer, `callback iss ${callback.searchParams.get('iss')}`);
  check(callback.searchParams.get('state') === first.checks.expectedState, 'callback state differs');

  // Tampered callbacks are refused by openid-client before it redeems the code (so the code
  // stays good for the real redemption below): another issuer (a mix-up attack, RFC 9207), no
  // issuer although the server promises one, and a state this client did not send.
  const tampered = (name, value) => {
    const url = new URL(callback);
    if (value === undefined) url.searchParams.delete(name);
    else url.searchParams.set(name, value);
    return url;
  };
  const otherIssuer = `https://evil.example${new URL(issuer).pathname}`;
  await refused(
    'callback with another iss',
    client.authorizationCodeGrant(config, tampered('iss', otherIssuer), first.checks),
    badCallback('iss'),
  );
  await refused(
    'callback without iss',
    client.authorizationCodeGrant(config, tampered('iss'), first.checks),
    badCallback('iss'),
  );
  await refused(
    'callback with another state',
    client.authorizationCodeGrant(config, tampered('state', client.randomState()), first.checks),
    badCallback('state'),
  );

  const tokens = await client.authorizationCodeGrant(config, callback, first.checks);
  const idClaims = checkIdToken('code grant', tokens, {
    ...who,
    nonce: first.checks.expectedNonce,
    startedAt,
  });
  await checkAccessToken('code grant', config, tokens, { ...who, scope: SCOPE });

  // userinfo, with openid-client checking its sub against the ID token's.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
  check(
    userinfo.preferred_username === userName,
    `userinfo preferred_username ${userinfo.preferred_username}`,
  );
  check(userinfo.name === 'Interop Node', `userinfo name ${userinfo.name}`);
  check(userinfo.email === `${userName}@example.com`, `userinfo email ${userinfo.email}`);

  // Introspection of both tokens, by the client they were issued to.
  const accessInfo = await client.tokenIntrospection(config, tokens.access_token);
  check(accessInfo.active === true, `introspection of a fresh access token: ${json(accessInfo)}`);
  check(
    accessInfo.sub === userId && accessInfo.client_id === confidential.id && accessInfo.scope === SCOPE,
    `introspection of the access token: ${json(accessInfo)}`,
  );
  check(accessInfo.username === userName, `introspection username ${accessInfo.username}`);
  const refreshInfo = await client.tokenIntrospection(config, tokens.refresh_token);
  check(refreshInfo.active === true, `introspection of a fresh refresh token: ${json(refreshInfo)}`);

  // A code is good once: a second redemption is refused (and, by the server's rules, revokes
  // what the first gave, which the rotation checks below would then trip over; so it is tested
  // on the public client's grant further down).

  // Refresh: a new refresh token each time; the old one is then spent.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token !== tokens.refresh_token, 'refresh: the refresh token was not rotated');
  check(refreshed.access_token !== tokens.access_token, 'refresh: the same access token again');
  await checkAccessToken('refresh', config, refreshed, { ...who, scope: SCOPE });
  const refreshedId = refreshed.claims();
  check(refreshedId?.sub === userId, `refresh: ID token sub ${refreshedId?.sub}`);
  check(refreshedId.auth_time === idClaims.auth_time, 'refresh: ID token auth_time changed');
  check(
    refreshedId.at_hash === atHash(refreshed.access_token),
    'refresh: ID token at_hash does not match',
  );
  check(!(await active(tokens.refresh_token)), 'a used refresh token is still active');
  check(await active(refreshed.refresh_token), 'the rotated refresh token is not active');

  // Reuse of the spent token: refused, and the whole family with it (RFC 9700 §4.14.2).
  await refused(
    'reused refresh token',
    client.refreshTokenGrant(config, tokens.refresh_token),
    oauthError('invalid_grant'),
  );
  await refused(
    'refresh token of a family revoked for reuse',
    client.refreshTokenGrant(config, refreshed.refresh_token),
    oauthError('invalid_grant'),
  );
  for (const [label, token] of [
    ['the rotated refresh token', refreshed.refresh_token],
    ['the access token from the refresh', refreshed.access_token],
    ['the first access token', tokens.access_token],
  ]) {
    check(!(await active(token)), `after the reuse, ${label} is still active`);
  }

  // Revocation (RFC 7009) on a new grant. The browser is still signed in, so the server answers
  // at once; max_age makes openid-client check auth_time against it too.
  const second = await authorizationRequest(config, { max_age: '3600' });
  const secondCallback = await authorizeAgain(browser, second.url);
  const revocable = await client.authorizationCodeGrant(config, secondCallback, {
    ...second.checks,
    maxAge: 3600,
  });
  const secondId = checkIdToken('second grant', revocable, {
    ...who,
    nonce: second.checks.expectedNonce,
    startedAt,
  });
  check(secondId.auth_time === idClaims.auth_time, 'single sign-on: auth_time differs from the sign-in');
  check(secondId.sid === idClaims.sid, 'single sign-on: another sid for the same session');

  // Revoking the access token ends it, and only it: its refresh token still works.
  await client.tokenRevocation(config, revocable.access_token, { token_type_hint: 'access_token' });
  check(!(await active(revocable.access_token)), 'a revoked access token is still active');
  await refused(
    'userinfo with a revoked access token',
    client.fetchUserInfo(config, revocable.access_token, userId),
    invalidToken,
  );
  const afterRevocation = await client.refreshTokenGrant(config, revocable.refresh_token);
  check(await active(afterRevocation.access_token), 'the refreshed access token is inactive');

  // Revoking the refresh token ends the grant: it and its access tokens.
  await client.tokenRevocation(config, afterRevocation.refresh_token, {
    token_type_hint: 'refresh_token',
  });
  check(!(await active(afterRevocation.refresh_token)), 'a revoked refresh token is still active');
  check(
    !(await active(afterRevocation.access_token)),
    'an access token of a revoked grant is still active',
  );
  await refused(
    'revoked refresh token',
    client.refreshTokenGrant(config, afterRevocation.refresh_token),
    oauthError('invalid_grant'),
  );
  // Unknown tokens are "revoked" too: RFC 7009 §2.2 answers 200 whatever the token.
  await client.tokenRevocation(config, 'not-a-token-this-server-issued');

  // A wrong client secret: the token endpoint refuses the client before looking at the code.
  const third = await authorizationRequest(config);
  const thirdCallback = await authorizeAgain(browser, third.url);
  const wrongSecret = await client.discovery(
    new URL(issuer),
    confidential.id,
    clientMetadata,
    client.ClientSecretBasic(`${confidential.secret}x`),
    discoveryOptions,
  );
  await refused(
    'wrong client secret',
    client.authorizationCodeGrant(wrongSecret, thirdCallback, third.checks),
    clientRefused,
  );
  // A wrong PKCE verifier: the code is refused.
  await refused(
    'wrong PKCE verifier',
    client.authorizationCodeGrant(config, thirdCallback, {
      ...third.checks,
      pkceCodeVerifier: client.randomPKCECodeVerifier(),
    }),
    oauthError('invalid_grant'),
  );

  await runPublicClient(issuer, browser, pub, {
    who: { ...who, clientId: pub.id },
    clientMetadata,
    discoveryOptions,
    startedAt,
  });
  await logout(config, browser);
  return { confidential: confidential.id, public: pub.id };
}

/**
 * RP-initiated logout as openid-client builds it: with the ID token of the browser's session
 * the session ends at once, the browser lands on the registered post-logout URI with the
 * state, the session's refresh token stops working, and a silent sign-in finds no session.
 */
async function logout(config, browser) {
  const request = await authorizationRequest(config);
  const callback = await authorizeAgain(browser, request.url);
  const tokens = await client.authorizationCodeGrant(config, callback, request.checks);
  const state = client.randomState();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: SIGNED_OUT_URI,
    state,
  });
  const after = await browser.redirect('logout', endSession);
  check(
    after.href === `${SIGNED_OUT_URI}?state=${state}`,
    `logout: redirected to ${after}, not to the post-logout URI with the state`,
  );
  check(!browser.cookies.has('portcullis_session'), 'logout: the session cookie is still set');
  await refused(
    'refresh token of an ended session',
    client.refreshTokenGrant(config, tokens.refresh_token),
    oauthError('invalid_grant'),
  );
  const silent = await authorizationRequest(config, { prompt: 'none' });
  const answer = await browser.redirect('prompt=none after logout', silent.url);
  check(
    answer.searchParams.get('error') === 'login_required',
    `prompt=none after logout answered ${answer}, not login_required`,
  );
}

/** A public client (a native or browser app): no secret, token_endpoint_auth_method none. */
async function runPublicClient(issuer, browser, pub, { who, clientMetadata, discoveryOptions, startedAt }) {
  const config = await client.discovery(
    new URL(issuer),
    pub.id,
    { ...clientMetadata, token_endpoint_auth_method: 'none' },
    client.None(),
    discoveryOptions,
  );
  const { url, checks } = await authorizationRequest(config);
  const callback = await authorizeAgain(browser, url);
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  checkIdToken('public client', tokens, { ...who, nonce: checks.expectedNonce, startedAt });
  await checkAccessToken('public client', config, tokens, { ...who, scope: SCOPE });
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, who.userId);
  check(userinfo.sub === who.userId, `public client userinfo sub ${userinfo.sub}`);

  // Refresh without client authentication (the token is the public client's own).
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(
    refreshed.refresh_token !== tokens.refresh_token,
    'public client: the refresh token was not rotated',
  );

  // Introspection is for authenticated clients (resource servers) only.
  await refused(
    'introspection by a public client',
    client.tokenIntrospection(config, refreshed.access_token),
    clientRefused,
  );

  // The code again: refused, and what it gave is revoked (RFC 6749 §4.1.2).
  await refused(
    'a code redeemed twice',
    client.authorizationCodeGrant(config, callback, checks),
    oauthError('invalid_grant'),
  );
  await refused(
    'userinfo with an access token of a replayed code',
    client.fetchUserInfo(config, refreshed.access_token, who.userId),
    invalidToken,
  );
  await refused(
    'refresh token of a replayed code',
    client.refreshTokenGrant(config, refreshed.refresh_token),
    oauthError('invalid_grant'),
  );

  // Revocation without client authentication, of its own token.
  const again = await authorizationRequest(config);
  const againCallback = await authorizeAgain(browser, again.url);
  const fresh = await client.authorizationCodeGrant(config, againCallback, again.checks);
  await client.tokenRevocation(config, fresh.refresh_token);
  await refused(
    'public client: revoked refresh token',
    client.refreshTokenGrant(config, fresh.refresh_token),
    oauthError('invalid_grant'),
  );
}

async function main() {
  const base = (process.env.PORTCULLIS_URL ?? '').replace(/\/+$/, '');
  const apiKey = process.env.PORTCULLIS_API_KEY ?? '';
  if (!base || !apiKey) {
    console.error('FAIL: set PORTCULLIS_URL and PORTCULLIS_API_KEY');
    return 2;
  }
  try {
    const ids = await run(base, apiKey);
    console.log(
      `interop (node): OK: openid-client 6 signed a user in through the pages ` +
        `(code + PKCE S256, state, nonce) for confidential client ${ids.confidential} ` +
        `(client_secret_basic) and public client ${ids.public} (none); ID token, userinfo, ` +
        `RFC 9068 access tokens (oauth4webapi), refresh rotation and reuse detection, ` +
        `introspection, revocation, prompt=none, code replay, wrong secret and verifier, ` +
        `tampered iss/state callbacks, and RP-initiated logout checked`,
    );
    return 0;
  } catch (e) {
    if (e instanceof Failure) {
      console.error(`FAIL: ${e.message}`);
    } else {
      console.error(e);
      console.error(`FAIL: unexpected error: ${describe(e)}`);
    }
    return 1;
  }
}

process.exitCode = await main();
