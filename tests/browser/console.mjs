// The admin console in headless Chromium, as an administrator uses it: finds the organisation
// from `/`, signs in with a password, adds a passkey and signs in with it (the console's changes
// need a multi-factor sign-in), searches users as she types, creates a user, opens their page
// and makes them an enrolment link. Every page is checked with axe-core and for sideways
// scrolling, at desktop and phone widths, and saved as a screenshot in target/screenshots/.
// Needs PORTCULLIS_URL and PORTCULLIS_API_KEY.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accessible, api, base, check, launch, noSidewaysScroll, password, shots } from "./common.mjs";

const stamp = Date.now();
const admin = await api("POST", "/v1/users", { user_name: `console-admin-${stamp}` });
await api("PUT", `/v1/users/${admin.id}/password`, { password, must_change: false });
for (const role of ["user_administrator", "auditor", "privileged_role_administrator", "security_administrator"]) {
  await api("POST", "/v1/role-assignments", { principal: { kind: "user", id: admin.id }, role, scope: "tenant" });
}
for (const name of ["ravi", "rachel", "rowan", "sasha"]) {
  await api("POST", "/v1/users", { user_name: `${name}-${stamp}`, email: `${name}-${stamp}@example.com` });
}

const browser = await launch();
// axe-core is injected as an inline script, which the pages' CSP rightly refuses.
const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const errors = [];
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
page.on("pageerror", (e) => errors.push(String(e)));

let shot = 30;
/** Checks the page as it is, at desktop and phone widths, with a screenshot of each. */
async function look(name) {
  for (const [width, height, label] of [[1280, 800, "desktop"], [320, 700, "phone"]]) {
    await page.setViewportSize({ width, height });
    await accessible(page, `${name} at ${width}px`);
    await noSidewaysScroll(page, `${name} at ${width}px`);
    await page.screenshot({ path: `${shots}/${shot}-console-${name}-${label}.png`, fullPage: true });
  }
  shot += 1;
  await page.setViewportSize({ width: 1280, height: 800 });
}

// `/` asks for the organisation; the tenant's address sends her to sign in and back.
await page.goto(`${base}/`);
await look("organisation");
await page.getByLabel("Organisation").fill("operator");
await Promise.all([page.waitForURL(/\/t\/operator\/sign-in$/), page.getByRole("button", { name: "Continue" }).click()]);
await page.getByLabel("User name").fill(admin.user_name);
await page.getByLabel("Password", { exact: true }).fill(password);
await Promise.all([page.waitForURL(/\/t\/operator\/console$/), page.getByRole("button", { name: "Sign in", exact: true }).click()]);

// A passkey, then a sign-in with it alone: a phishing-resistant session, which the tenant's
// policy for administrators accepts for changes.
const devtools = await context.newCDPSession(page);
await devtools.send("WebAuthn.enable");
await devtools.send("WebAuthn.addVirtualAuthenticator", {
  options: {
    protocol: "ctap2",
    transport: "internal",
    hasResidentKey: true,
    hasUserVerification: true,
    isUserVerified: true,
    automaticPresenceSimulation: true,
  },
});
await page.goto(`${base}/t/operator/account/passkeys`);
await page.getByLabel(/Name it after the device/).fill("Console laptop");
await Promise.all([page.waitForURL(/added=1/), page.getByRole("button", { name: "Add a passkey" }).click()]);
await page.goto(`${base}/t/operator/account`);
await page.getByRole("button", { name: "Sign out", exact: true }).click();
await page.goto(`${base}/t/operator`);
await Promise.all([
  page.waitForURL(/\/t\/operator\/console$/),
  page.getByRole("button", { name: "Sign in with a passkey" }).click(),
]);
await look("overview");

// Keyboard first: the first Tab reaches the skip link, which moves focus to the content.
await page.keyboard.press("Tab");
check(await page.evaluate(() => document.activeElement?.textContent === "Skip to content"), "Tab reaches the skip link first");
await page.keyboard.press("Enter");
check(await page.evaluate(() => document.activeElement?.id === "content"), "the skip link moves focus to the content");

// Users: the search narrows the list as she types, without a page load, and the address follows.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Users" }).click();
await page.waitForURL(/\/console\/users$/);
await look("users");
// A mark on the window survives a swap in place and dies with a page load.
await page.evaluate(() => { globalThis.stillThisPage = true; });
await page.getByLabel("Search").pressSequentially("r", { delay: 50 });
await page.waitForURL(/q=r/);
await page.getByRole("link", { name: `sasha-${stamp}` }).waitFor({ state: "detached" });
check((await page.getByRole("link", { name: `rachel-${stamp}` }).count()) === 1, "rachel is found");
check(await page.evaluate(() => globalThis.stillThisPage === true), "searching swapped the results in place, without loading a page");
await look("users-search");

// A new user, created through the form; a mistake first.
await page.goto(`${base}/t/operator/console/users/new`);
await page.getByLabel("User name").fill(`rachel-${stamp}`);
await page.getByRole("button", { name: "Create user" }).click();
check((await page.getByRole("alert").textContent()).includes("user name"), "a taken name is refused on the form");
await look("new-user-error");
const newName = `nadia-${stamp}`;
await page.getByLabel("User name").fill(newName);
await page.getByLabel(/^Name/).fill("Nadia Novak");
await page.getByLabel(/^E-mail/).fill(`${newName}@example.com`);
await Promise.all([page.waitForURL(/done=created/), page.getByRole("button", { name: "Create user" }).click()]);
check((await page.getByRole("status").first().textContent()).includes("The user was created."), "told it was created");
await look("user");
const created = (await api("GET", `/v1/users?prefix=${newName}`)).items[0];
check(created?.display_name === "Nadia Novak", "the user exists with her name");
const audit = await api("GET", `/v1/audit?action=user.create&limit=50`);
const event = audit.items.find((e) => e.target?.id === created.id);
check(event?.actor?.id === admin.id && event.actor.authentication?.method === "session", "audited as the administrator's session");

// An invitation by mail, when the server sends mail; and a link to hand over, shown once.
if (process.env.PORTCULLIS_MAIL_DIR) {
  await Promise.all([page.waitForURL(/done=invited/), page.getByRole("button", { name: "Send invitation by e-mail" }).click()]);
  check((await page.getByRole("status").first().textContent()).includes("The invitation is on its way"), "told the invitation is sent");
  await look("user-invited");
}
await Promise.all([page.waitForURL(/enrolment-link$/), page.getByRole("button", { name: "Show a link to hand over" }).click()]);
check((await page.getByLabel("Link").inputValue()).includes("/t/operator/enrol?token="), "the link is shown");
await look("enrolment-link");

// A group, and the new user in it, named rather than picked by id.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Groups" }).click();
await page.getByRole("link", { name: "New group" }).click();
await page.getByLabel(/^Name/).fill(`Support ${stamp}`);
await Promise.all([page.waitForURL(/done=created/), page.getByRole("button", { name: "Create group" }).click()]);
await page.getByLabel("Named").fill(newName);
await Promise.all([page.waitForURL(/done=added/), page.getByRole("button", { name: "Add member" }).click()]);
check((await page.getByRole("link", { name: newName }).count()) === 1, "the member is listed by name");
await look("group");
await page.goto(`${base}/t/operator/console/groups`);
await look("groups");

// Access: the group gets a role by name; the explorer draws why its member may read the trail.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Role assignments" }).click();
await look("role-assignments");
await page.getByRole("link", { name: "Assign a role" }).click();
await page.getByLabel("Kind").selectOption("group");
await page.getByLabel("Name").fill(`support ${stamp}`);
await page.getByLabel("Role").selectOption("security_reader");
await look("assign");
await Promise.all([page.waitForURL(/done=assigned/), page.getByRole("button", { name: "Assign the role" }).click()]);
check((await page.getByRole("status").first().textContent()).includes("The role was assigned"), "told the role was assigned");
const rows = await page.locator("tbody").textContent();
check(rows.includes(`Support ${stamp}`), `the group's assignment is listed by name: ${rows}`);
await page.getByRole("link", { name: "Deny assignments" }).click();
await page.getByLabel("Name", { exact: true }).fill(`No purging ${stamp}`);
await page.getByLabel("Who is refused").fill(`group support ${stamp}`);
await page.getByLabel("Actions").fill("user.delete");
await Promise.all([page.waitForURL(/done=created/), page.getByRole("button", { name: "Create the deny assignment" }).click()]);
check((await page.getByRole("table", { name: "Deny assignments" }).textContent()).includes(`Support ${stamp}`), "the deny assignment names the group");
await look("deny");
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Access explorer" }).click();
const why = page.getByRole("form", { name: "Why may they, or not?" });
await why.getByLabel("Name").fill(newName);
await why.getByLabel("Action").fill("read");
await why.getByLabel("Resource type").fill("audit");
await why.getByLabel("Record id").fill("-");
await Promise.all([page.waitForURL(/ask=check/), why.getByRole("button", { name: "Explain" }).click()]);
const path = await page.getByRole("list", { name: "The path from the principal to the resource" }).textContent();
check(path.includes(newName) && path.includes(`Support ${stamp}`) && path.includes("Security reader"), `the path runs through the group and the role: ${path}`);
await look("explorer");
await Promise.all([page.waitForURL(/ask=who/), page.getByRole("button", { name: "List who can" }).click()]);
check((await page.getByRole("listitem").filter({ hasText: newName }).count()) === 1, "who can read the trail lists the member");
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Roles" }).click();
await page.getByText("Security reader").click();
await look("roles");
// Her roles do not let her register types (resource_type.write); one made with the API is
// listed with its actions.
await api("POST", "/v1/resource-types", { name: `ticket_${stamp}`, actions: [{ name: "read", plane: "data" }, { name: "configure", plane: "control" }] });
await page.getByRole("link", { name: "Resource types" }).click();
check((await page.getByRole("table", { name: "Resource types" }).textContent()).includes("configure · control"), "the type is listed with its actions");
await look("resource-types");
// The application registers its records through the API; she finds one by the start of its id
// (an id with a slash, which the console's links must keep in one piece) and opens it.
const units = await api("GET", "/v1/business-units");
for (const id of ["T-1/7", "T-2"]) {
  await api("PUT", `/v1/records/ticket_${stamp}/${encodeURIComponent(id)}`, { owner: { kind: "user", id: admin.id }, business_unit_id: units.items[0].id });
}
await page.getByRole("link", { name: `records of ticket_${stamp}` }).click();
await page.getByLabel("Search").fill("T-1");
await page.waitForFunction(() => !document.querySelector("#results")?.textContent.includes("T-2"));
check((await page.getByRole("table", { name: /records whose id starts with/ }).textContent()).includes("T-1/7"), "the search finds the record");
await look("records");
await page.getByRole("link", { name: "T-1/7" }).click();
await page.waitForURL(/T-1%2F7$/);
check((await page.getByRole("heading", { level: 1 }).textContent()).includes("T-1/7"), "the record's page names it");
await look("record");
await page.getByRole("link", { name: "Roles", exact: true }).first().click();
await page.getByRole("link", { name: "New role" }).click();
await page.getByLabel("Name", { exact: true }).fill(`Readers ${stamp}`);
await page.getByRole("group", { name: "portcullis:user · control plane" }).getByLabel("read", { exact: true }).check();
await look("role-editor");
await Promise.all([page.waitForURL(/\/console\/roles$/), page.getByRole("button", { name: "Create the role" }).click()]);
check((await page.getByText(`Readers ${stamp}`, { exact: true }).count()) === 1, "the new role is listed");

// An application that signs people in, and its first secret, shown once.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Applications" }).click();
await page.getByRole("link", { name: "New application" }).click();
await page.getByLabel("Name", { exact: true }).fill(`Wiki ${stamp}`);
await page.getByLabel("A web application").check();
await page.getByLabel(/^Redirect URI/).fill("https://wiki.example.com/callback");
await look("application-new");
await Promise.all([page.waitForURL(/done=created/), page.getByRole("button", { name: "Create application" }).click()]);
check((await page.getByLabel("Redirect URIs").inputValue()).includes("https://wiki.example.com/callback"), "the redirect URI is kept");
await look("application");
await page.getByRole("button", { name: "Make a new secret" }).click();
await page.waitForURL(/\/secrets$/);
check((await page.getByLabel("Secret", { exact: true }).inputValue()).startsWith("pcs_"), "the secret is shown once");
await look("application-secret");
await page.goto(`${base}/t/operator/console/applications`);
await look("applications");

// Conditional access: a policy from a template, tried with the what-if tool beside it.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Conditional access" }).click();
await look("conditional-access");
await Promise.all([
  page.waitForURL(/done=created/),
  page.getByRole("button", { name: "Create from “mfa-for-administrators”" }).click(),
]);
check((await page.getByLabel("The policy, as the API takes it").inputValue()).includes('"report_only"'), "the new policy is report-only");
await page.getByLabel("User", { exact: true }).fill(admin.user_name);
await page.getByLabel("From the address").fill("203.0.113.9");
await page.getByRole("button", { name: "Ask" }).click();
await page.waitForURL(/user=/);
const answer = await page.locator(".what-if .answer").textContent();
check(answer.includes("applies") && answer.includes("Allowed"), `what-if: the report-only policy applies and enforces nothing: ${answer}`);
await look("policy");

// Disabling asks nothing more of a phishing-resistant session and takes effect at once.
await page.goto(`${base}/t/operator/console/users/${created.id}`);
await Promise.all([page.waitForURL(/done=disabled/), page.getByRole("button", { name: "Disable" }).click()]);
check((await api("GET", `/v1/users/${created.id}`)).state === "disabled", "the user is disabled");

// The logs: the day's sign-ins drawn, the trail filtered and exported, the chain checked.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Sign-in log" }).click();
check((await page.getByRole("img", { name: "Sign-ins per hour by outcome" }).count()) === 1, "the day's sign-ins are drawn");
await look("sign-ins");
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Audit log" }).click();
await page.getByLabel("Action").fill("user.disable");
await Promise.all([page.waitForURL(/action=user.disable/), page.getByRole("button", { name: "Filter" }).click()]);
await page.getByText("user.disable", { exact: true }).first().click();
check((await page.locator("details[open] pre").first().textContent()).includes("state"), "an event opens in place to its details");
await look("audit-log");
const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "CSV" }).click()]);
check(download.suggestedFilename().endsWith(".csv"), `the export downloads as CSV: ${download.suggestedFilename()}`);
await page.getByRole("link", { name: "Check the chain" }).click();
check((await page.getByRole("status").first().textContent()).includes("Intact"), "the chain is intact");
await look("audit-chain");

// Identity protection: a user whose password turned up in a breach signs in and is at risk;
// the administrator sees why and dismisses it with a reason.
const breached = "correct horse battery staple 1842";
const risky = await api("POST", "/v1/users", { user_name: `risky-${stamp}` });
await api("PUT", `/v1/users/${risky.id}/password`, { password: breached, must_change: false });
await api("POST", "/v1/leaked-passwords", { hashes: [createHash("sha1").update(breached).digest("hex").toUpperCase()] });
const victim = await browser.newContext();
const victimPage = await victim.newPage();
await victimPage.goto(`${base}/t/operator/sign-in`);
await victimPage.getByLabel("User name").fill(`risky-${stamp}`);
await victimPage.getByLabel("Password", { exact: true }).fill(breached);
await victimPage.getByRole("button", { name: "Sign in", exact: true }).click();
await victimPage.waitForLoadState();
await victim.close();
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Identity protection" }).click();
const atRisk = await page.getByRole("table", { name: "Users at risk, riskiest first" }).textContent();
check(atRisk.includes(`risky-${stamp}`), `the breached user is at risk: ${atRisk}`);
await look("risk");
await page.getByText("Judge").first().click();
await page.getByLabel(/^Why/).first().fill("Password reset by the help desk");
await Promise.all([page.waitForURL(/done=dismissed/), page.getByRole("button", { name: "Dismiss" }).first().click()]);
check((await page.getByRole("status").first().textContent()).includes("no longer at risk"), "told the risk was dismissed");

// Import users from a CSV file: the report follows the import in place and lists the line
// that failed, by number.
const people = join(tmpdir(), `people-${stamp}.csv`);
writeFileSync(people, `user_name,email,display_name\nimp-a-${stamp},a-${stamp}@example.com,Imported A\nimp-b-${stamp},not-an-address,Imported B\nimp-c-${stamp},c-${stamp}@example.com,"Imported, C"\n`);
await page.goto(`${base}/t/operator/console/users`);
await page.getByRole("link", { name: "Import from CSV" }).click();
await page.getByLabel("CSV file").setInputFiles(people);
await look("import");
await Promise.all([page.waitForURL(/\/users\/import\/[0-9a-f-]+$/), page.getByRole("button", { name: "Import", exact: true }).click()]);
await page.getByText("Finished").waitFor();
const failedLine = await page.getByRole("table", { name: "Lines that failed" }).textContent();
check(failedLine.includes(`imp-b-${stamp}`) && failedLine.includes("3"), `the failed line is reported: ${failedLine}`);
await look("import-report");

// Settings: the organisation's name, colour and logo, uploaded as a file; the sign-in page
// wears them. Put back afterwards, so the journeys that follow see the defaults.
await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Settings" }).click();
await page.getByLabel("Name people see").fill("Operator Org");
await Promise.all([page.waitForURL(/done=organisation/), page.getByRole("button", { name: "Save the name" }).click()]);
await page.getByLabel("Colour of buttons and links").fill("#7b1fa2");
await page.getByLabel("Logo").setInputFiles(new URL("../../crates/cli/tests/it/logo.png", import.meta.url).pathname);
await Promise.all([page.waitForURL(/done=branding/), page.getByRole("button", { name: "Save the branding" }).click()]);
check((await page.getByRole("img", { name: "The current logo" }).count()) === 1, "the logo is shown back");
await look("settings");
const visitor = await browser.newContext({ bypassCSP: true });
const signInPage = await visitor.newPage();
await signInPage.goto(`${base}/t/operator/sign-in`);
check((await signInPage.getByRole("heading", { level: 1 }).textContent()).includes("Operator Org"), "the sign-in page has the name");
const button = await signInPage.getByRole("button", { name: "Sign in", exact: true }).evaluate((b) => getComputedStyle(b).backgroundColor);
check(button === "rgb(123, 31, 162)", `the sign-in button wears the colour: ${button}`);
for (const [width, height, label] of [[1280, 800, "desktop"], [320, 700, "phone"]]) {
  await signInPage.setViewportSize({ width, height });
  await accessible(signInPage, `branded sign-in at ${width}px`);
  await noSidewaysScroll(signInPage, `branded sign-in at ${width}px`);
  await signInPage.screenshot({ path: `${shots}/${shot}-console-branded-sign-in-${label}.png`, fullPage: true });
}
shot += 1;
await visitor.close();
await api("PUT", "/v1/branding", { colour: null, logo: null });

// Her own account: how she signs in (the passkey by name) and what she may do, and why.
await page.getByRole("navigation", { name: "Your account" }).getByRole("link", { name: admin.user_name }).click();
const held = await page.getByRole("table", { name: "The roles you hold" }).textContent();
check(held.includes("Security administrator") && held.includes("given to you"), `her roles are listed: ${held}`);
check((await page.locator("dl.facts").textContent()).includes("Console laptop"), "her passkey is named");
await look("account");

check(errors.length === 0, `no script or policy errors: ${errors.join("; ")}`);
await browser.close();
console.log(`browser: OK: console journey in Chromium, axe-clean at desktop and phone widths; screenshots ${30}-${shot - 1}`);
