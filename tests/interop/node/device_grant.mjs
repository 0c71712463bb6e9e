// Interop test: a person signs a command-line tool in to the admin API with the device
// authorization grant (RFC 8628), driven by oauth4webapi against the tenant's built-in
// `portcullis-cli` client, approving the code on the server's pages; the access token is
// checked as an RFC 9068 JWT for the admin API's resource and used on the admin API, where a
// change without a second factor is answered with RFC 9470's challenge.
//
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY; run by tests/interop/node/run.sh.

import * as oauth from 'oauth4webapi';

import { Browser, Failure, adminApi, check, createUser, csrfOf, signIn } from './common.mjs';

const insecure = { [oauth.allowInsecureRequests]: true };

async function run(base, apiKey) {
  const admin = adminApi(base, apiKey);
  const userName = `device-node-${Date.now()}`;
  const userId = await createUser(admin, userName);
  await admin(
    'POST',
    '/v1/role-assignments',
    { principal: { kind: 'user', id: userId }, role: 'user_administrator', scope: 'tenant' },
    201,
  );

  const issuer = new URL(`${base}/t/operator`);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
  );
  const resource = as.portcullis_admin_api_resource;
  const client = { client_id: as.portcullis_cli_client_id };
  check(as.device_authorization_endpoint && client.client_id && resource, `discovery: ${JSON.stringify(as)}`);

  const started = await oauth.processDeviceAuthorizationResponse(
    as,
    client,
    await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope: 'openid', resource }, insecure),
  );
  const poll = async () =>
    oauth.processDeviceCodeResponse(
      as,
      client,
      await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, insecure),
    );
  const pending = await poll().then(
    () => null,
    (e) => e,
  );
  check(
    pending instanceof oauth.ResponseBodyError && pending.error === 'authorization_pending',
    `before approval: ${pending}`,
  );

  // The person: signs in on the pages, types the code, sees who asks, and allows it.
  const browser = new Browser();
  await signIn(browser, issuer, userName);
  const entry = await browser.request(new URL('/t/operator/device', base));
  const asked = await browser.request(new URL('/t/operator/device', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: csrfOf(await entry.text()), user_code: started.user_code }),
  });
  const askedPage = await asked.text();
  check(asked.status === 200 && askedPage.includes('portcullis-cli'), `device page: ${asked.status}`);
  const allowed = await browser.request(new URL('/t/operator/device/decision', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: csrfOf(askedPage), user_code: started.user_code, decision: 'allow' }),
  });
  check(allowed.status === 200, `allow: ${allowed.status}`);

  await new Promise((resolve) => setTimeout(resolve, (started.interval ?? 5) * 1000 + 200));
  const tokens = await poll();
  check(tokens.token_type.toLowerCase() === 'bearer' && tokens.access_token, `tokens: ${JSON.stringify(tokens)}`);

  // As the admin API would check it: an RFC 9068 access token for its resource, naming her.
  const claims = await oauth.validateJwtAccessToken(
    as,
    new Request(`${resource}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
    resource,
    insecure,
  );
  check(claims.sub === userId && claims.client_id === client.client_id, `claims: ${JSON.stringify(claims)}`);

  const me = await oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(`${base}/v1/me`), undefined, undefined, insecure);
  const who = await me.json();
  check(me.status === 200 && who.principal.id === userId, `GET /v1/me: ${JSON.stringify(who)}`);
  check(who.authentication.method === 'access_token' && who.authentication.client_id === client.client_id, `authentication: ${JSON.stringify(who.authentication)}`);

  // A change needs a second factor she has not used: RFC 9470's challenge, read by oauth4webapi.
  const refusal = await oauth
    .protectedResourceRequest(
      tokens.access_token,
      'POST',
      new URL(`${base}/v1/users`),
      new Headers({ 'content-type': 'application/json' }),
      JSON.stringify({ user_name: `${userName}-made` }),
      insecure,
    )
    .then(
      (response) => response,
      (e) => e,
    );
  check(refusal instanceof oauth.WWWAuthenticateChallengeError, `a change without MFA: ${refusal}`);
  const challenge = refusal.cause.find((c) => c.scheme === 'bearer');
  check(
    challenge?.parameters.error === 'insufficient_user_authentication' && challenge.parameters.acr_values === 'mfa',
    `challenge: ${JSON.stringify(refusal.cause)}`,
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
    await run(base, apiKey);
    console.log(
      'interop (node): OK: oauth4webapi signed a person in with the device grant (RFC 8628) through ' +
        'the built-in CLI client, validated the RFC 9068 token for the admin API, called it, and read ' +
        "the RFC 9470 step-up challenge",
    );
    return 0;
  } catch (e) {
    console.error(e instanceof Failure ? `FAIL: ${e.message}` : e);
    return 1;
  }
}

process.exitCode = await main();
