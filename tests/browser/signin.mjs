// Signs in through the real pages in headless Chromium: password, authenticator set-up, sign-out,
// then password + code; then registers a passkey with Chromium's virtual authenticator and signs
// in with it alone. Saves a screenshot of every page to target/screenshots/.
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY (an administrator of the operator tenant).
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { api, base, check, launch, password, shots } from "./common.mjs";

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here independently of the server.
function totp(base32, offsetSteps = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const secret = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offsetSteps));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, "0");
}

const user = await api("POST", "/v1/users", { user_name: `browser-${Date.now()}` });
await api("PUT", `/v1/users/${user.id}/password`, { password, must_change: false });

const browser = await launch();
const page = await browser.newPage();
const errors = [];
// Script errors and Content-Security-Policy violations; answers with error statuses (the wrong
// password's 401) are expected and not counted.
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
page.on("pageerror", (e) => errors.push(String(e)));

async function signInWithPassword() {
  await page.goto(`${base}/t/operator/sign-in`);
  // Keyboard only: the user name has focus, Tab reaches the password, Enter submits.
  // The browser applies `autofocus` when it next renders, which can be just after `goto`
  // returns: wait for it rather than racing it.
  const focused = await page
    .waitForFunction(() => document.activeElement?.id === "user_name")
    .then(() => true, () => false);
  check(focused, "user name is focused first");
  await page.keyboard.type(user.user_name);
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id) === "password", "Tab reaches the password");
  await page.keyboard.type(password);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
}

await page.goto(`${base}/t/operator/sign-in`);
await page.screenshot({ path: `${shots}/01-sign-in.png`, fullPage: true });
await page.getByLabel("User name").fill(user.user_name);
await page.getByLabel("Password").fill("not the right one at all");
// "Show password" shows what was typed, says so to screen readers, and hides it again.
const reveal = page.getByRole("button", { name: "Show password" });
await reveal.click();
check((await page.getByLabel("Password").getAttribute("type")) === "text", "the password is shown");
check((await reveal.getAttribute("aria-pressed")) === "true", "the button says it is pressed");
await page.screenshot({ path: `${shots}/01b-sign-in-password-shown.png`, fullPage: true });
await reveal.click();
check((await page.getByLabel("Password").getAttribute("type")) === "password", "and hidden again");
await page.getByRole("button", { name: "Sign in", exact: true }).click();
check((await page.getByRole("alert").textContent()).includes("do not match"), "a wrong password is explained");
await page.screenshot({ path: `${shots}/02-sign-in-error.png`, fullPage: true });

await signInWithPassword();
check(page.url().endsWith("/t/operator/account"), `signed in, at ${page.url()}`);
await page.screenshot({ path: `${shots}/03-account.png`, fullPage: true });

await page.getByRole("link", { name: "Set up an authenticator app" }).click();
await page.screenshot({ path: `${shots}/04-authenticator-setup.png`, fullPage: true });
const secret = (await page.locator("#manual code").textContent()).replaceAll(" ", "");
check(/^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/.test(await page.locator("#manual code").textContent()), "the key is shown in groups of four");
await page.getByLabel("6-digit code from the app").fill(totp(secret));
await page.getByRole("button", { name: "Turn on" }).click();
check((await page.locator("ul.codes li").count()) === 10, "ten recovery codes are shown");
await page.screenshot({ path: `${shots}/05-recovery-codes.png`, fullPage: true });
const [saved] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download them" }).click()]);
const savedText = readFileSync(await saved.path(), "utf8").trim().split("\n");
check(savedText.length === 10, `the download holds the ten codes: ${savedText.length}`);
check(savedText[0] === (await page.locator("ul.codes li code").first().textContent()).trim(), "the codes shown");
check((await page.getByRole("status").last().textContent()).includes("Downloaded"), "the download is confirmed");

await page.goto(`${base}/t/operator/account`);
await page.getByRole("button", { name: "Sign out", exact: true }).click();
check(page.url().endsWith("/t/operator/sign-in?done=signed-out"), "signed out");
check((await page.getByRole("status").first().textContent()).includes("You are signed out."), "and told so");
await page.screenshot({ path: `${shots}/05b-signed-out.png`, fullPage: true });

await signInWithPassword();
check(page.url().endsWith("/t/operator/sign-in/code"), `asked for a code, at ${page.url()}`);
await page.screenshot({ path: `${shots}/06-code.png`, fullPage: true });
await page.getByLabel("6-digit code").fill(totp(secret, 1));
await page.getByRole("button", { name: "Continue" }).click();
check(page.url().endsWith("/t/operator/account"), `signed in with a code, at ${page.url()}`);

await page.getByRole("link", { name: "Change my password" }).click();
await page.screenshot({ path: `${shots}/07-change-password.png`, fullPage: true });

// Passkeys: a virtual platform authenticator that keeps discoverable credentials and verifies
// its user (as a fingerprint or PIN would), driven through the DevTools protocol.
const devtools = await page.context().newCDPSession(page);
await devtools.send("WebAuthn.enable");
const { authenticatorId } = await devtools.send("WebAuthn.addVirtualAuthenticator", {
  options: {
    protocol: "ctap2",
    transport: "internal",
    hasResidentKey: true,
    hasUserVerification: true,
    isUserVerified: true,
    automaticPresenceSimulation: true,
  },
});
await page.goto(`${base}/t/operator/account`);
await page.getByRole("link", { name: /Add a passkey|Manage my passkeys/ }).click();
await page.screenshot({ path: `${shots}/08-passkeys.png`, fullPage: true });
await page.getByLabel(/Name it after the device/).fill("Headless Chromium");
await Promise.all([page.waitForURL(/added=1/), page.getByRole("button", { name: "Add a passkey" }).click()]);
check((await page.getByRole("status").first().textContent()).includes("Passkey added"), "the passkey is added");
check((await page.getByRole("cell", { name: "Headless Chromium", exact: true }).count()) === 1, "the passkey is listed");
await page.screenshot({ path: `${shots}/09-passkey-added.png`, fullPage: true });
const { credentials } = await devtools.send("WebAuthn.getCredentials", { authenticatorId });
check(credentials.length === 1 && credentials[0].isResidentCredential, "a discoverable credential was made");

await page.goto(`${base}/t/operator/account`);
await page.getByRole("button", { name: "Sign out", exact: true }).click();
check(page.url().endsWith("/t/operator/sign-in?done=signed-out"), "signed out again");
await Promise.all([
  page.waitForURL(/\/t\/operator\/account$/),
  page.getByRole("button", { name: "Sign in with a passkey" }).click(),
]);
await page.screenshot({ path: `${shots}/10-signed-in-with-passkey.png`, fullPage: true });
const sessions = await api("GET", `/v1/users/${user.id}/sessions`);
check(sessions.items.some((s) => s.strength === "phishing_resistant"), "the passkey session is phishing-resistant");

check(errors.length === 0, `no errors in the browser console: ${errors.join("; ")}`);
await browser.close();
console.log("browser sign-in tests passed; screenshots in", shots);
