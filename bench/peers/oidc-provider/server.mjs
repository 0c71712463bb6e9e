// The peer for bench/tokens.sh: npm `oidc-provider` (v9, the certified Node provider) issuing
// client_credentials access tokens as ES256 JWTs (RFC 9068, at+jwt) through a resource
// indicator, on a Node cluster of WORKERS processes (2 by default) sharing one port.
//
// Environment:
//   PORT                  port on 127.0.0.1 (default 3000; 0 picks a free one)
//   BENCH_CLIENT_SECRET   the secret of client "bench" (required, at least 32 characters)
//   WORKERS               worker processes (default 2)
//
// The primary generates one ES256 signing key and hands it to every worker, so all of them sign
// with the same key, then prints `oidc-provider: listening on http://127.0.0.1:PORT` once every
// worker is listening. SIGINT/SIGTERM stop the primary and its workers; a worker that dies
// stops the whole cluster (a benchmark should fail loudly, not lose capacity quietly).
//
//   curl -u bench:$BENCH_CLIENT_SECRET -d grant_type=client_credentials \
//        -d resource=https://api.example.com -d scope=api:read http://127.0.0.1:$PORT/token

import cluster from 'node:cluster';
import http from 'node:http';
import net from 'node:net';

export const RESOURCE = 'https://api.example.com';
export const SCOPE = 'api:read';
export const TOKEN_SECONDS = 300;

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
    BENCH_CLIENT_SECRET: secret,
  };
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
      console.log(`oidc-provider: listening on http://${HOST}:${port} (${workers} workers, pid ${process.pid})`);
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

async function worker() {
  const { default: Provider, errors } = await import('oidc-provider');
  const port = Number(process.env.BENCH_WORKER_PORT);
  const jwk = JSON.parse(process.env.BENCH_WORKER_JWK);

  const provider = new Provider(`http://${HOST}:${port}`, {
    clients: [{
      client_id: 'bench',
      client_secret: process.env.BENCH_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // As the Portcullis client: allowed to ask for api:read only.
      scope: SCOPE,
    }],
    jwks: { keys: [jwk] },
    // The only key is ES256; without this the default RS256 has no key to sign with.
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    scopes: ['openid', 'offline_access', SCOPE],
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
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

  // Keep-alive connections stay open between requests, as wrk's do.
  const server = http.createServer(provider.callback());
  server.keepAliveTimeout = 65_000;
  server.listen(port, HOST);
}

if (cluster.isPrimary) {
  await primary();
} else {
  await worker();
}
