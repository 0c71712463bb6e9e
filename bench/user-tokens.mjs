// Helper for bench/user-tokens.sh: a minimal browser (cookies, redirects, the password form of a
// sign-in page, no JavaScript) and an OAuth client, the same for Portcullis and oidc-provider.
//
//   node bench/user-tokens.mjs check      one sign-in, code, tokens and refresh, all checked;
//                                         prints what was issued (and fails loudly)
//   node bench/user-tokens.mjs session    signs in; prints the Cookie header of the session
//   node bench/user-tokens.mjs seed N     signs in, has N codes issued and redeemed; prints the
//                                         N refresh tokens, one per line (each its own chain)
//   node bench/user-tokens.mjs query      prints the authorization request's path and query
//
// Environment (all required):
//   BENCH_NAME            name in messages
//   BENCH_AUTHORIZE_URL   the authorization endpoint
//   BENCH_TOKEN_URL       the token endpoint
//   BENCH_CLIENT_ID, BENCH_CLIENT_SECRET   the client (client_secret_basic)
//   BENCH_USER, BENCH_PASSWORD             who signs in
//   BENCH_VERIFIER        the PKCE code verifier (its S256 challenge goes in every request)
//   BENCH_REDIRECT_URI, BENCH_SCOPE, BENCH_RESOURCE
//   BENCH_TRACE=1         (optional) each request of the browser, on stderr
//
// The sign-in follows redirects inside the server's origin, keeping cookies, until a redirect to
// BENCH_REDIRECT_URI; on a page with a password form it fills in user_name and password (and
// keeps the form's hidden inputs, such as a CSRF token) and posts it.

import { createHash } from 'node:crypto';

const env = (name) => {
  const value = process.env[name];
  if (value === undefined || value === '') fail(`set ${name}`);
  return value;
};
const name = process.env.BENCH_NAME ?? 'user-tokens.mjs';
function fail(message) {
  console.error(`user-tokens.mjs: ${name}: ${message}`);
  process.exit(1);
}

const authorizeUrl = env('BENCH_AUTHORIZE_URL');
const tokenUrl = env('BENCH_TOKEN_URL');
const clientId = env('BENCH_CLIENT_ID');
const clientSecret = env('BENCH_CLIENT_SECRET');
const verifier = env('BENCH_VERIFIER');
const redirectUri = env('BENCH_REDIRECT_URI');
const scope = env('BENCH_SCOPE');
const resource = env('BENCH_RESOURCE');
const challenge = createHash('sha256').update(verifier).digest('base64url');

function authorizationRequest() {
  const url = new URL(authorizeUrl);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state: 'bench',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource,
  }).toString().replace(/\+/g, '%20');
  return url;
}

// ------------------------------------------------------------------------------ the browser
class Browser {
  cookies = new Map();

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keep(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const key = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const gone = value === '' || attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)
        || /^\s*expires=.*1970/i.test(a));
      if (gone) this.cookies.delete(key);
      else this.cookies.set(key, value);
    }
  }

  async request(url, init = {}) {
    const headers = { ...init.headers };
    if (this.cookies.size) headers.Cookie = this.header();
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.keep(response);
    return response;
  }

  // Follows the authorization request to the code, signing in on the way if asked to.
  async code(url, { signIn = false } = {}) {
    let next = new URL(url);
    let init = {};
    for (let hop = 0; hop < 12; hop += 1) {
      const response = await this.request(next, init);
      if (process.env.BENCH_TRACE) console.error(`${init.method ?? 'GET'} ${next.href} -> ${response.status} ${response.headers.get('location') ?? ''} [${[...this.cookies.keys()]}]`);
      init = {};
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        await response.arrayBuffer();
        const to = new URL(location, next);
        if (to.href.startsWith(`${redirectUri}?`)) {
          const params = to.searchParams;
          if (params.get('error')) {
            fail(`the authorization request was refused: ${params.get('error')}: ${params.get('error_description')}`);
          }
          if (params.get('state') !== 'bench') fail(`state came back as ${params.get('state')}`);
          return { code: params.get('code'), iss: params.get('iss') };
        }
        if (to.origin !== next.origin) fail(`redirected away to ${to.href}`);
        next = to;
        continue;
      }
      const page = await response.text();
      if (response.status !== 200 || !signIn) {
        fail(`${next.pathname} answered HTTP ${response.status}${signIn ? '' : ' (a redirect was expected)'}: ${page.slice(0, 300)}`);
      }
      const form = [...page.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)]
        .find(([, , inner]) => /name="password"/.test(inner));
      if (!form) fail(`${next.pathname}: no password form on the page: ${page.slice(0, 300)}`);
      const method = /method="([^"]*)"/i.exec(form[1])?.[1] ?? 'get';
      if (method.toLowerCase() !== 'post') fail(`${next.pathname}: the password form is not a POST`);
      const action = new URL((/action="([^"]*)"/i.exec(form[1])?.[1] ?? '').replace(/&amp;/g, '&'), next);
      const fields = new URLSearchParams();
      for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
        const field = /name="([^"]*)"/.exec(input)?.[1];
        if (field && /type="hidden"/i.test(input)) fields.set(field, /value="([^"]*)"/.exec(input)?.[1] ?? '');
      }
      fields.set('user_name', env('BENCH_USER'));
      fields.set('password', env('BENCH_PASSWORD'));
      signIn = false; // once: a second password form means it failed
      next = action;
      init = {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: next.origin },
        body: fields.toString(),
      };
    }
    return fail('too many redirects');
  }
}

// ------------------------------------------------------------------------------ the client
async function token(form) {
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64');
  const response = await fetch(tokenUrl, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${basic}`,
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: response.status, text, body };
}

const redeem = (code) => token({
  grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
});
const refresh = (refreshToken) => token({ grant_type: 'refresh_token', refresh_token: refreshToken });

function tokens(what, answer) {
  if (answer.status !== 200 || !answer.body) fail(`${what}: HTTP ${answer.status}: ${answer.text.slice(0, 300)}`);
  const { access_token: access, id_token: id, refresh_token: next } = answer.body;
  if (!access || !id || !next) fail(`${what}: access_token, id_token and refresh_token expected: ${answer.text.slice(0, 300)}`);
  return answer.body;
}

const decode = (jwt) => {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) fail(`not a JWT: ${String(jwt).slice(0, 80)}`);
  return parts.slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
};

function describe(what, body, size) {
  const [ah, ac] = decode(body.access_token);
  const [ih, ic] = decode(body.id_token);
  const problems = [];
  if (ah.alg !== 'ES256') problems.push(`access token alg ${ah.alg}`);
  if (String(ah.typ).toLowerCase() !== 'at+jwt') problems.push(`access token typ ${ah.typ}`);
  if (![].concat(ac.aud).includes(resource)) problems.push(`access token aud ${JSON.stringify(ac.aud)}`);
  if (!String(ac.scope).split(' ').includes('api:read')) problems.push(`access token scope ${JSON.stringify(ac.scope)}`);
  if (ih.alg !== 'ES256') problems.push(`ID token alg ${ih.alg}`);
  if (![].concat(ic.aud).includes(clientId)) problems.push(`ID token aud ${JSON.stringify(ic.aud)}`);
  if (ic.iss !== ac.iss) problems.push(`ID token iss ${ic.iss}, access token iss ${ac.iss}`);
  if (problems.length) fail(`${what}: ${problems.join('; ')}`);
  console.log(`  ${name} ${what}: access token ${body.access_token.length} bytes ${JSON.stringify(ah)},`
    + ` aud ${JSON.stringify(ac.aud)}, scope ${ac.scope}, lifetime ${ac.exp - ac.iat} s;`
    + ` ID token ${body.id_token.length} bytes (alg ${ih.alg}, claims ${Object.keys(ic).join(',')},`
    + ` lifetime ${ic.exp - ic.iat} s); refresh token ${body.refresh_token.length} chars;`
    + ` response ${size} bytes`);
}

// Runs fn over 0..n-1, `width` at a time, in order of completion.
async function pool(n, width, fn) {
  let next = 0;
  const results = new Array(n);
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) {
      const i = next;
      next += 1;
      results[i] = await fn(i);
    }
  }));
  return results;
}

// ------------------------------------------------------------------------------ commands
const [command, arg] = process.argv.slice(2);
const browser = new Browser();
switch (command) {
  case 'query': {
    const url = authorizationRequest();
    console.log(`${url.pathname}${url.search}`);
    break;
  }
  case 'session': {
    await browser.code(authorizationRequest(), { signIn: true });
    const { code } = await browser.code(authorizationRequest());
    if (!code) fail('no code once signed in');
    console.log(browser.header());
    break;
  }
  case 'seed': {
    const n = Number.parseInt(arg, 10);
    if (!(n >= 1)) fail('seed: give a count');
    await browser.code(authorizationRequest(), { signIn: true });
    const seeds = await pool(n, 8, async () => {
      const { code } = await browser.code(authorizationRequest());
      return tokens('code', await redeem(code)).refresh_token;
    });
    if (new Set(seeds).size !== n) fail('seed: refresh tokens repeat');
    console.log(seeds.join('\n'));
    break;
  }
  case 'check': {
    const first = await browser.code(authorizationRequest(), { signIn: true });
    const second = await browser.code(authorizationRequest());
    if (!second.code || second.code === first.code) fail('a signed-in authorization request gave no fresh code');
    const issued = await redeem(second.code);
    describe('code', tokens('code', issued), issued.text.length);
    const refreshed = await refresh(issued.body.refresh_token);
    const body = tokens('refresh', refreshed);
    describe('refresh', body, refreshed.text.length);
    if (body.refresh_token === issued.body.refresh_token) fail('the refresh token did not rotate');
    const again = await refresh(issued.body.refresh_token);
    if (again.status === 200) fail('a rotated-out refresh token still works');
    const family = await refresh(body.refresh_token);
    // In another sign-in: a replayed code revokes what its grant issued (in oidc-provider, all
    // that the session's sign-in to the client issued).
    const other = await new Browser().code(authorizationRequest(), { signIn: true });
    const once = tokens('code', await redeem(other.code));
    const twice = await redeem(other.code);
    if (twice.status === 200) fail('a code was redeemed twice');
    const after = await refresh(once.refresh_token);
    console.log(`  ${name}: refresh tokens rotate (the old one again: HTTP ${again.status}`
      + ` ${again.body?.error}; then its successor: HTTP ${family.status}`
      + `${family.status === 200 ? ', chain NOT revoked' : ` ${family.body?.error}, chain revoked`});`
      + ` codes work once (again: HTTP ${twice.status} ${twice.body?.error}; then the refresh`
      + ` token it gave: HTTP ${after.status}${after.status === 200 ? ', NOT revoked' : ` ${after.body?.error}, revoked`})`);
    break;
  }
  default:
    fail('usage: node bench/user-tokens.mjs check | session | seed N | query');
}
