// A forgotten password and an address to confirm, in headless Chromium, with the messages the
// server mails read from the SMTP server start-server.sh started: the user clicks "Forgot your
// password?", follows the link in the message, chooses a new password, signs in with it, and
// confirms their address from their account. axe-core on every page; screenshots 70-76 at
// desktop and phone widths go to target/screenshots/. Needs PORTCULLIS_URL, PORTCULLIS_API_KEY
// and PORTCULLIS_MAIL_DIR (skipped, saying so, without it).
import { readdirSync, readFileSync } from "node:fs";
import { accessible, api, base, check, launch, noSidewaysScroll, password, shots } from "./common.mjs";

const mailDir = process.env.PORTCULLIS_MAIL_DIR;
if (!mailDir) {
  console.log("browser: recovery skipped: no SMTP server (set PORTCULLIS_TEST_SMTP_PYTHON)");
  process.exit(0);
}

/** The text of the messages received so far, oldest first. */
function messages() {
  return readdirSync(mailDir)
    .filter((name) => name.endsWith(".txt"))
    .sort()
    .map((name) => readFileSync(`${mailDir}/${name}`, "utf8"));
}

/** The HTML of the message whose text is `text`. */
function htmlOf(text) {
  const name = readdirSync(mailDir).find((n) => n.endsWith(".txt") && readFileSync(`${mailDir}/${n}`, "utf8") === text);
  return readFileSync(`${mailDir}/${name.replace(/\.txt$/, ".html")}`, "utf8");
}

/** The last message with a link found by `linkFor`, as HTML. */
let lastHtml = "";

/** Waits for a message to `name` with a link to `prefix` on this server, and returns the link's path. */
async function linkFor(name, prefix) {
  for (let i = 0; i < 200; i++) {
    for (const text of messages().filter((t) => t.includes(name))) {
      const url = text.match(/http:\/\/localhost:\d+\/\S+/);
      if (url && url[0].includes(prefix)) {
        lastHtml = htmlOf(text);
        return new URL(url[0]).pathname + new URL(url[0]).search;
      }
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  check(false, `a message to ${name} with a link to ${prefix}`);
}

const newPassword = "lantern pebble cactus harbour";
const browser = await launch();
const errors = [];
for (const [width, height, label] of [[1280, 800, "desktop"], [320, 640, "phone"]]) {
  const name = `rita-${label}-${Date.now()}`;
  const user = await api("POST", "/v1/users", { user_name: name, email: `${name}@example.com` });
  await api("PUT", `/v1/users/${user.id}/password`, { password, must_change: false });
  const context = await browser.newContext({ viewport: { width, height }, bypassCSP: true });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(`${base}/t/operator/sign-in`);
  await page.getByRole("link", { name: "Forgot your password?" }).click();
  check(page.url().endsWith("/t/operator/forgot"), `on the forgot page, at ${page.url()}`);
  await accessible(page, `forgot (${label})`);
  await noSidewaysScroll(page, `forgot (${label})`);
  await page.screenshot({ path: `${shots}/70-forgot-${label}.png`, fullPage: true });
  await page.getByLabel("User name or e-mail address").fill(`${name}@example.com`);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Send me a link" }).click()]);
  check((await page.textContent("main")).includes("is on its way"), "told a link is on its way");
  await page.screenshot({ path: `${shots}/71-forgot-sent-${label}.png`, fullPage: true });

  const reset = await linkFor(name, "/reset?token=");
  check(reset.startsWith("/t/operator/reset?token="), `a reset link: ${reset}`);
  // The message as a mail program shows it: its button carries the same link.
  await page.setContent(lastHtml);
  check((await page.getByRole("link", { name: "Choose a new password" }).getAttribute("href")).endsWith(reset), "the button carries the link");
  await accessible(page, `reset message (${label})`);
  await noSidewaysScroll(page, `reset message (${label})`);
  await page.screenshot({ path: `${shots}/71b-reset-message-${label}.png`, fullPage: true });
  await page.goto(`${base}${reset}`);
  check((await page.getByRole("heading", { level: 1 }).textContent()) === "Choose a new password", "the reset page");
  await accessible(page, `reset (${label})`);
  await noSidewaysScroll(page, `reset (${label})`);
  await page.screenshot({ path: `${shots}/72-reset-${label}.png`, fullPage: true });
  await page.getByLabel("New password", { exact: true }).fill(newPassword);
  await page.getByLabel("New password again").fill(newPassword);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Set new password" }).click()]);
  check(page.url().includes("/sign-in?done=password-reset"), `back to sign-in, at ${page.url()}`);
  check((await page.textContent("main")).includes("Your password was changed"), "told the password changed");
  await accessible(page, `sign-in after reset (${label})`);
  await page.screenshot({ path: `${shots}/73-reset-done-${label}.png`, fullPage: true });

  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(newPassword);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in", exact: true }).click()]);
  check(page.url().endsWith("/t/operator/account"), `signed in with the new password, at ${page.url()}`);
  // The reset proved the address.
  check((await page.textContent("main")).includes("confirmed."), "the reset confirmed the address");

  // An address that changes is unconfirmed again, and the user confirms it from their account.
  await api("PATCH", `/v1/users/${user.id}`, { email: `${name}@example.org` });
  await page.reload();
  check((await page.textContent("main")).includes("not confirmed yet"), "a new address is not confirmed");
  await accessible(page, `account (${label})`);
  await noSidewaysScroll(page, `account (${label})`);
  await page.screenshot({ path: `${shots}/74-account-address-${label}.png`, fullPage: true });
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Send me a link to confirm it" }).click()]);
  check((await page.textContent("main")).includes("on its way"), "told the link is on its way");
  const verify = await linkFor(name, "/verify-email?token=");
  check(verify.startsWith("/t/operator/verify-email?token="), `a verification link: ${verify}`);
  await page.goto(`${base}${verify}`);
  await accessible(page, `verify (${label})`);
  await noSidewaysScroll(page, `verify (${label})`);
  await page.screenshot({ path: `${shots}/75-verify-${label}.png`, fullPage: true });
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Confirm my address" }).click()]);
  check((await page.textContent("main")).includes("is confirmed"), "the address is confirmed");
  await page.screenshot({ path: `${shots}/76-verified-${label}.png`, fullPage: true });
  const after = await api("GET", `/v1/users/${user.id}`);
  check(after.email_verified === true, "email_verified is set");
  await context.close();
}
check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
console.log("browser: OK: forgotten password and address confirmation by mail in Chromium; screenshots 70-76");
