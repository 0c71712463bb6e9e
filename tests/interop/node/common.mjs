// What the Node interop tests share: failures, the admin API for setup, and a minimal browser
// (fetch with a cookie jar) that drives the server's sign-in pages.

export const PASSWORD = 'violet tugboat parsley orbit';

export class Failure extends Error {}

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** Calls the admin API with an API key, expecting `expected`; the JSON answer. */
export function adminApi(base, apiKey) {
  return async (method, path, body, expected) => {
    const response = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    check(
      response.status === expected,
      `${method} ${path}: expected ${expected}, got ${response.status}: ${text}`,
    );
    return text ? JSON.parse(text) : null;
  };
}

/** A user with the shared password, which they need not change. */
export async function createUser(admin, userName) {
  const user = await admin(
    'POST',
    '/v1/users',
    { user_name: userName, display_name: 'Interop Node', email: `${userName}@example.com` },
    201,
  );
  await admin('PUT', `/v1/users/${user.id}/password`, { password: PASSWORD, must_change: false }, 204);
  return user.id;
}

/** A minimal browser: fetch with a cookie jar, never following redirects by itself. */
export class Browser {
  constructor() {
    this.cookies = new Map();
  }

  /** Keeps the response's cookies; `Max-Age=0` (or an empty value) deletes one. */
  #keep(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([n, v]) => `${n}=${v}`).join('; '));
    }
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#keep(response);
    return response;
  }

  /** Requests `url`, expects a 303, and returns where it points (absolute). */
  async redirect(label, url, init) {
    const response = await this.request(url, init);
    const location = response.headers.get('location');
    if (response.status !== 303 || !location) {
      throw new Failure(
        `${label}: ${init?.method ?? 'GET'} ${url} answered ${response.status} ` +
          `(location ${location}), not a 303 redirect: ${(await response.text()).slice(0, 500)}`,
      );
    }
    return new URL(location, url);
  }
}

/** The value of a page's CSRF field. */
export function csrfOf(html) {
  const csrf = /<input[^>]*name="csrf"[^>]*value="([^"]+)"/.exec(html)?.[1];
  check(csrf?.length === 43, `no 43-character csrf field in ${html.slice(0, 500)}`);
  return csrf;
}

/** Signs `browser` in to the tenant at `issuer` with a password, on the sign-in page. */
export async function signIn(browser, issuer, userName) {
  const tenantPath = new URL(issuer).pathname;
  const page = await browser.request(new URL(`${tenantPath}/sign-in`, issuer));
  const csrf = csrfOf(await page.text());
  await browser.redirect('sign-in', new URL(`${tenantPath}/sign-in`, issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, user_name: userName, password: PASSWORD }),
  });
  check(browser.cookies.has('portcullis_session'), 'sign-in: no portcullis_session cookie');
}
