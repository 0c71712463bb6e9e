// An application signs a user in through Portcullis in headless Chromium, as a real browser
// does it: the application (a small HTTP server here) sends the browser to the authorization
// endpoint, the user signs in and approves the third-party application, and the browser lands
// back on the application's callback, which redeems the code with its PKCE verifier.
// Saves screenshots to target/screenshots/. Needs PORTCULLIS_URL and PORTCULLIS_API_KEY.
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { api, base, check, launch, password, shots } from "./common.mjs";

const b64url = (buffer) => buffer.toString("base64url");

// The application: one callback page that redeems the code and says who signed in.
const issuer = `${base}/t/operator`;
const verifier = b64url(randomBytes(32));
const state = b64url(randomBytes(16));
let redeemed = null;
const app = createServer(async (request, response) => {
  const url = new URL(request.url, "http://localhost");
  if (url.pathname !== "/callback") {
    response.writeHead(404).end();
    return;
  }
  const ok = url.searchParams.get("state") === state && url.searchParams.get("iss") === issuer;
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: url.searchParams.get("code") ?? "",
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  const answer = await fetch(`${issuer}/oauth/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${client.id}:${secret.secret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: form,
  });
  redeemed = { ok, status: answer.status, body: await answer.json() };
  const claims = JSON.parse(Buffer.from((redeemed.body.id_token ?? "..").split(".")[1], "base64url").toString() || "{}");
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end(`<!doctype html><title>Example app</title><h1>Signed in as ${claims.preferred_username}</h1>`);
});
await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
const redirectUri = `http://localhost:${app.address().port}/callback`;

const user = await api("POST", "/v1/users", { user_name: `oauth-${Date.now()}` });
await api("PUT", `/v1/users/${user.id}/password`, { password, must_change: false });
const client = await api("POST", "/v1/service-principals", { name: "Example App" });
await api("PUT", `/v1/service-principals/${client.id}/oauth-client`, {
  grant_types: ["authorization_code"],
  redirect_uris: [redirectUri],
  scopes: [],
  require_consent: true,
});
const secret = await api("POST", `/v1/service-principals/${client.id}/api-keys`, {});

const browser = await launch();
const page = await browser.newPage();
const errors = [];
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
page.on("pageerror", (e) => errors.push(String(e)));

const authorize = new URL(`${issuer}/oauth/authorize`);
authorize.search = new URLSearchParams({
  response_type: "code",
  client_id: client.id,
  redirect_uri: redirectUri,
  scope: "openid profile",
  state,
  code_challenge: b64url(createHash("sha256").update(verifier).digest()),
  code_challenge_method: "S256",
  login_hint: user.user_name,
}).toString();
await page.goto(authorize.toString());
check(page.url().startsWith(`${base}/t/operator/sign-in`), `sent to sign in, at ${page.url()}`);
check(await page.getByLabel("User name").inputValue() === user.user_name, "login_hint fills the user name");
await page.getByLabel("Password").fill(password);
await page.screenshot({ path: `${shots}/11-authorize-sign-in.png`, fullPage: true });
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in", exact: true }).click()]);
check(await page.getByRole("heading").textContent() === "Allow Example App to use your account?", `consent asked, at ${page.url()}`);
await page.screenshot({ path: `${shots}/12-consent.png`, fullPage: true });
// Allowing posts the form; the server's redirects end on the application's own origin, which
// the page's form-action policy must not block.
await Promise.all([page.waitForURL(`${redirectUri}?**`), page.getByRole("button", { name: "Allow" }).click()]);
await page.waitForSelector("h1");
await page.screenshot({ path: `${shots}/13-back-at-the-app.png`, fullPage: true });
check(redeemed?.ok, "the callback carried the state and RFC 9207 iss");
check(redeemed.status === 200, `the code was redeemed: ${JSON.stringify(redeemed?.body)}`);
check((await page.textContent("h1")) === `Signed in as ${user.user_name}`, "the app knows who signed in");

// Next time the approval is remembered: straight back to the application.
redeemed = null;
await page.goto(authorize.toString());
await page.waitForSelector("h1");
check(page.url().startsWith(redirectUri) && redeemed?.status === 200, "single sign-on without a page");

check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
app.close();
console.log("browser: OK: code flow with sign-in and consent in Chromium; screenshots 11-13");
