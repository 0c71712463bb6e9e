// An enrolment link in headless Chromium: a new user opens the link an administrator made,
// chooses a password, and lands signed in on the passkeys page; the link then refuses to be
// used again. Screenshots at desktop and phone widths go to target/screenshots/.
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY.
import { api, base, check, launch, password, shots } from "./common.mjs";

const browser = await launch();
const errors = [];
for (const [width, height, label] of [[1280, 800, "desktop"], [390, 844, "phone"]]) {
  const user = await api("POST", "/v1/users", { user_name: `enrol-${label}-${Date.now()}` });
  const link = await api("POST", `/v1/users/${user.id}/enrolment-link`, {});
  // The link names the public URL (localhost); the browser goes to the address the server is on.
  const path = new URL(link.url).pathname + new URL(link.url).search;
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}${path}`);
  const heading = await page.getByRole("heading").textContent();
  check(heading === `Welcome, ${user.user_name}`, `the link names the account, heading ${heading}`);
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(scroll <= 0, `no sideways scrolling at ${width}px (${scroll}px)`);
  await page.screenshot({ path: `${shots}/18-enrol-${label}.png`, fullPage: true });
  await page.getByLabel("New password", { exact: true }).fill(password);
  await page.getByLabel("New password again").fill(password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Set password and continue" }).click()]);
  check(page.url().endsWith("/account/passkeys?welcome=1"), `on to passkeys, at ${page.url()}`);
  check((await page.textContent("main")).includes("Your password is set"), "told the password is set");
  await page.screenshot({ path: `${shots}/19-enrol-done-${label}.png`, fullPage: true });
  const again = await page.goto(`${base}${path}`);
  check(again.status() === 410, `a used link is refused, ${again.status()}`);
  check((await page.textContent("#error")).includes("already been used"), "and says why");
  await page.close();
}
check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
console.log("browser: OK: enrolment links used in Chromium at desktop and phone widths; screenshots 18-19");
