// The peer for bench/tokens.sh and bench/user-tokens.sh: npm `oidc-provider` (v9, the certified
// Node provider) issuing access tokens as ES256 JWTs (RFC 9068, at+jwt) through a resource
// indicator, on a Node cluster of WORKERS processes (2 by default) sharing one port.
//
// Clients (both confidential, client_secret_basic, the secret BENCH_CLIENT_SECRET):
//   bench      client_credentials (bench/tokens.sh)
//   bench-web  authorization_code with PKCE (S256, required) and refresh_token, redirect URI
//              https://app.example.com/callback, scopes openid api:read; ES256 ID tokens; a
//              refresh token with every code (no offline_access needed), rotated at every
//              refresh (the old one is consumed, and its reuse revokes the grant)
//              (bench/user-tokens.sh)
// One account, "bench-user", signs in at /interaction/{uid} (POST user_name and password, no
// JavaScript): that finishes login and consent at once, for every scope asked for.
//
// Environment:
//   PORT                  port on 127.0.0.1 (default 3000; 0 picks a free one)
//   BENCH_CLIENT_SECRET   the secret of both clients (required, at least 32 characters)
//   WORKERS               worker processes (default 2)
//   BENCH_ADAPTER         memory (default): oidc-provider's own in-memory adapter, separate in
//                         each worker; shared: shared-memory-adapter.mjs, whose writes reach
//                         every worker (needed when a code or refresh token issued by one worker
//                         is used on another)
//   BENCH_USER_PASSWORD   the password of "bench-user" (without it, nobody can sign in)
//
// The primary generates one ES256 signing key and one cookie-signing key and hands them to every
// worker, so all of them sign with the same keys, then prints
// `oidc-provider: listening on http://127.0.0.1:PORT (...)` once every worker is listening.
// SIGINT/SIGTERM stop the primary and its workers; a worker that dies stops the whole cluster (a
// benchmark should fail loudly, not lose capacity quietly).
//
//   curl -u bench:$BENCH_CLIENT_SECRET -d grant_type=client_credentials \
//        -d resource=https://api.example.com -d scope=api:read http://127.0.0.1:$PORT/token

import cluster from 'node:cluster';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

import SharedMemoryAdapter, { installRelay, joinCluster } from './shared-memory-adapter.mjs';

export const RESOURCE = 'https://api.example.com';
export const SCOPE = 'api:read';
export const TOKEN_SECONDS = 300;
export const REDIRECT_URI = 'https://app.example.com/callback';
export const ACCOUNT = 'bench-user';
// As Portcullis: codes last 60 s, refresh tokens 14 days unused, a grant (the chain of refresh
// tokens from one sign-in) 90 days.
const CODE_SECONDS = 60;
const REFRESH_TOKEN_SECONDS = 14 * 86_400;
const GRANT_SECONDS = 90 * 86_400;
const SESSION_SECONDS = 14 * 86_400;

const HOST = '127.0.0.1';

function fail(message) {
  console.error(`oidc-provider: ${message}`);
  process.exit(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function primary() {
  const secret = process.env.BENCH_CLIENT_SECRET;
  if (!secret || secret.length < 32) fail('set BENCH_CLIENT_SECRET (at least 32 characters)');
  const workers = Number.parseInt(process.env.WORKERS ?? '2', 10);
  if (!(workers >= 1)) fail('WORKERS must be a positive integer');
  const adapter = process.env.BENCH_ADAPTER ?? 'memory';
  if (!['memory', 'shared'].includes(adapter)) fail('BENCH_ADAPTER must be memory or shared');
  let port = Number.parseInt(process.env.PORT ?? '3000', 10);
  if (!(port >= 0 && port < 65536)) fail('PORT must be a port number');
  // The issuer (the tokens' iss) must name the port, so pick it before forking.
  if (port === 0) port = await freePort();

  const { generateKeyPair, exportJWK, calculateJwkThumbprint } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = 'ES256';
  jwk.use = 'sig';

  const env = {
    BENCH_WORKER_PORT: String(port),
    BENCH_WORKER_JWK: JSON.stringify(jwk),
    BENCH_WORKER_COOKIE_KEY: randomBytes(32).toString('base64url'),
    BENCH_WORKER_COUNT: String(workers),
    BENCH_CLIENT_SECRET: secret,
    BENCH_ADAPTER: adapter,
  };
  if (adapter === 'shared') installRelay();
  let listening = 0;
  let stopping = false;
  const stop = (code) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2000).unref();
  };
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) {
      console.log(`oidc-provider: listening on http://${HOST}:${port} (${workers} workers, pid ${process.pid}, ${adapter} adapter)`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`oidc-provider: worker ${worker.process.pid} died (${signal ?? code}); stopping`);
      stop(1);
    } else if (Object.keys(cluster.workers).length === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  for (let i = 0; i < workers; i += 1) cluster.fork(env);
}

// The interaction page: a form for bench-user's password; its POST signs in and consents at once.
function interactions(provider) {
  const password = Buffer.from(process.env.BENCH_USER_PASSWORD ?? '');
  const readForm = (req) => new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 10_000) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
  const send = (res, status, text) => {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(text);
  };
  return async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      send(res, 200, `<!doctype html><title>Sign in</title><form method="post" action="/interaction/${details.uid}">`
        + '<input name="user_name"><input name="password" type="password"><button>Sign in</button></form>');
      return;
    }
    if (req.method !== 'POST') return send(res, 405, 'method not allowed');
    const form = await readForm(req);
    const typed = Buffer.from(form.get('password') ?? '');
    if (form.get('user_name') !== ACCOUNT || password.length === 0
        || typed.length !== password.length || !timingSafeEqual(typed, password)) {
      return send(res, 403, 'wrong user name or password');
    }
    const { params } = details;
    const grant = new provider.Grant({ accountId: ACCOUNT, clientId: params.client_id });
    // Everything asked for (api:read is one of the provider's scopes, so it counts both as an
    // OpenID Connect scope and as the resource's).
    if (params.scope) grant.addOIDCScope(params.scope);
    if (String(params.scope).split(' ').includes(SCOPE)) {
      grant.addResourceScope(params.resource ?? RESOURCE, SCOPE);
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, {
      login: { accountId: ACCOUNT },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  };
}

async function worker() {
  const { default: Provider, errors } = await import('oidc-provider');
  const port = Number(process.env.BENCH_WORKER_PORT);
  const jwk = JSON.parse(process.env.BENCH_WORKER_JWK);
  const shared = process.env.BENCH_ADAPTER === 'shared';
  if (shared) joinCluster(Number(process.env.BENCH_WORKER_COUNT));

  const provider = new Provider(`http://${HOST}:${port}`, {
    ...(shared ? { adapter: SharedMemoryAdapter } : {}),
    clients: [{
      client_id: 'bench',
      client_secret: process.env.BENCH_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // As the Portcullis client: allowed to ask for api:read only.
      scope: SCOPE,
    }, {
      client_id: 'bench-web',
      client_secret: process.env.BENCH_CLIENT_SECRET,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT_URI],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: `openid ${SCOPE}`,
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [process.env.BENCH_WORKER_COOKIE_KEY] },
    // The only key is ES256; without this the default RS256 has no key to sign with.
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    scopes: ['openid', 'offline_access', SCOPE],
    findAccount: async (ctx, id) => (id === ACCOUNT
      ? { accountId: id, claims: async () => ({ sub: id }) }
      : undefined),
    pkce: { required: () => true },
    // As Portcullis: a refresh token for every client that may refresh, without offline_access
    // (which oidc-provider honours only with prompt=consent, an interaction every time), so it
    // lasts only as long as the sign-in session (expiresWithSession's default without
    // offline_access; Portcullis checks the session too).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every refresh answers with a new refresh token and consumes the old one (as Portcullis).
    rotateRefreshToken: true,
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: TOKEN_SECONDS,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_SECONDS,
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_SECONDS,
      // Portcullis's ID tokens expire with the access token issued beside them.
      IdToken: TOKEN_SECONDS,
      AuthorizationCode: CODE_SECONDS,
      RefreshToken: REFRESH_TOKEN_SECONDS,
      Grant: GRANT_SECONDS,
      Session: SESSION_SECONDS,
      Interaction: 3600,
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));
  // The token endpoint's answers say only "grant request is invalid": the reason goes here.
  provider.on('grant.error', (ctx, err) => console.error(`oidc-provider grant.error: ${err.message}: ${err.error_detail ?? ''}`));

  // Keep-alive connections stay open between requests, as wrk's do.
  const callback = provider.callback();
  const interaction = interactions(provider);
  const server = http.createServer((req, res) => {
    if (!req.url.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    interaction(req, res).catch((err) => {
      if (!res.headersSent) {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(`interaction failed: ${err.message}`);
      }
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, HOST);
}

if (cluster.isPrimary) {
  await primary();
} else {
  await worker();
}
