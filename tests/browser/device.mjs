// A device without a browser (RFC 8628) is approved in headless Chromium: the device asks for
// a code, the person opens the verification link, signs in, sees which application asks for
// what, and allows it; the device's next poll gets tokens that the admin API accepts.
// Screenshots of each step at desktop and phone widths go to target/screenshots/.
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY.
import { api, base, check, launch, password, shots } from "./common.mjs";

async function form(path, fields) {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  return { status: response.status, body: await response.json() };
}

const issuer = `${base}/t/operator`;
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const adminApi = discovery.portcullis_admin_api_resource;
const user = await api("POST", "/v1/users", { user_name: `device-${Date.now()}` });
await api("PUT", `/v1/users/${user.id}/password`, { password, must_change: false });
await api("POST", "/v1/role-assignments", {
  principal: { kind: "user", id: user.id },
  role: "security_reader",
  scope: "tenant",
});
const client = await api("POST", "/v1/service-principals", { name: "Example CLI" });
await api("PUT", `/v1/service-principals/${client.id}/oauth-client`, {
  client_type: "public",
  grant_types: ["device_code", "refresh_token"],
  scopes: [],
  resources: [adminApi],
});

const started = await form("/t/operator/oauth/device_authorization", { client_id: client.id, scope: "openid profile" });
check(started.status === 200, `device authorization: ${JSON.stringify(started.body)}`);
const pending = await form("/t/operator/oauth/token", {
  grant_type: "urn:ietf:params:oauth:grant-type:device_code",
  device_code: started.body.device_code,
  client_id: client.id,
});
check(pending.body.error === "authorization_pending", `pending: ${JSON.stringify(pending.body)}`);

const browser = await launch();
const errors = [];
for (const [width, height, label] of [[1280, 800, "desktop"], [390, 844, "phone"]]) {
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/t/operator/device`);
  check(page.url().startsWith(`${base}/t/operator/sign-in`), `signed-out visitors sign in first, at ${page.url()}`);
  await page.getByLabel("User name").fill(user.user_name);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in", exact: true }).click()]);
  check(page.url().startsWith(`${base}/t/operator/device`), `back at the device page, at ${page.url()}`);
  await page.screenshot({ path: `${shots}/14-device-code-${label}.png`, fullPage: true });
  if (label === "phone") {
    // The person typed it as they read it: lower case, a space for the dash.
    await page.getByLabel("Code").fill(started.body.user_code.toLowerCase().replace("-", " "));
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Continue" }).click()]);
  } else {
    await page.getByLabel("Code").fill("BBBB-BBBB");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Continue" }).click()]);
    check((await page.textContent("#error"))?.includes("not valid"), "a wrong code is said to be wrong");
    await page.screenshot({ path: `${shots}/15-device-wrong-code-${label}.png`, fullPage: true });
    await page.close();
    continue;
  }
  const heading = await page.getByRole("heading").textContent();
  check(heading === "Sign in to Example CLI on your device?", `asked to allow, heading ${heading}`);
  check((await page.textContent("main")).includes("Administer this tenant with your roles"), "the admin API is named");
  await page.screenshot({ path: `${shots}/16-device-allow-${label}.png`, fullPage: true });
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Allow" }).click()]);
  check((await page.textContent("main")).includes("your device is signed in"), "allowed");
  await page.screenshot({ path: `${shots}/17-device-allowed-${label}.png`, fullPage: true });
  await page.close();
}

// The device polls no sooner than it was told, and is signed in as the person.
await new Promise((resolve) => setTimeout(resolve, started.body.interval * 1000 + 200));
const tokens = await form("/t/operator/oauth/token", {
  grant_type: "urn:ietf:params:oauth:grant-type:device_code",
  device_code: started.body.device_code,
  client_id: client.id,
});
check(tokens.status === 200, `tokens: ${JSON.stringify(tokens.body)}`);
const me = await api("GET", "/v1/me", undefined, tokens.body.access_token);
check(me.principal.id === user.id && me.authentication.method === "access_token", `the admin API knows the person: ${JSON.stringify(me)}`);

check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
console.log("browser: OK: a device code approved in Chromium, its tokens used on the admin API; screenshots 14-17");
