// Terms of use in headless Chromium: a person a terms-of-use policy names signs in, is held at
// the terms page, reads and accepts them, and reaches their account; a second sign-in goes
// straight through. Screenshots at desktop and phone widths go to target/screenshots/.
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY.
import { api, base, check, launch, password, shots } from "./common.mjs";

const settings = await api("GET", "/v1/access-policy-settings");
await api("PUT", "/v1/access-policy-settings", {
  emergency_accounts: settings.emergency_accounts,
  terms_of_use: {
    version: "2026-12",
    text: "Use this service for your work only.\n\nNever share your password or your passkey, and tell us at once if you think someone else knows them.\n\nWe keep a record of every sign-in for a year.",
  },
});
const browser = await launch();
const errors = [];
for (const [width, height, label] of [[1280, 800, "desktop"], [320, 700, "phone"]]) {
  const user = await api("POST", "/v1/users", { user_name: `terms-${label}-${Date.now()}` });
  await api("PUT", `/v1/users/${user.id}/password`, { password, must_change: false });
  await api("POST", "/v1/access-policies", {
    name: `Terms for ${user.user_name}`, state: "enabled",
    include: { users: [user.id] }, applications: { include: ["all"] },
    grant: { kind: "require", controls: ["terms_of_use"] },
  });
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  const signIn = async () => {
    await page.goto(`${base}/t/operator/sign-in`);
    await page.getByLabel("User name").fill(user.user_name);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in", exact: true }).click()]);
  };
  await signIn();
  check(page.url().endsWith("/account/terms"), `held at the terms, at ${page.url()}`);
  check((await page.textContent("main")).includes("Never share your password"), "the terms are shown");
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(scroll <= 0, `no sideways scrolling at ${width}px (${scroll}px)`);
  await page.screenshot({ path: `${shots}/20-terms-${label}.png`, fullPage: true });
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "I accept" }).click()]);
  check(page.url().endsWith("/t/operator/account"), `on to the account, at ${page.url()}`);
  await page.context().clearCookies();
  await signIn();
  check(page.url().endsWith("/t/operator/account"), `accepted once, not asked again, at ${page.url()}`);
  await page.close();
}
check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
console.log("browser: OK: terms of use held, read and accepted in Chromium at desktop and phone widths; screenshot 20");
