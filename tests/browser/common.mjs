// What the browser tests share: the server under test, where screenshots go, failures, the
// admin API for setting up, and launching Debian's Chromium.
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

export const base = process.env.PORTCULLIS_URL;
export const key = process.env.PORTCULLIS_API_KEY;
export const shots = process.env.SCREENSHOT_DIR ?? "target/screenshots";
export const password = "violet tugboat parsley orbit";
mkdirSync(shots, { recursive: true });

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Calls the admin API (with the administrator's key unless `bearer` is given); the JSON answer. */
export async function api(method, path, body, bearer = key) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

/** Headless Chromium: Debian's, or the one `CHROMIUM` names. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page as it is now (WCAG 2.1 A and AA, and axe's best practices) and fails
 * on any violation, naming the rule and the elements. The page's context must bypass the CSP
 * (`newContext({ bypassCSP: true })`), since axe is injected as an inline script.
 */
export async function accessible(page, name) {
  await page.addScriptTag({ content: axeSource });
  const { violations } = await page.evaluate(() =>
    globalThis.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    }),
  );
  const found = violations.map((v) => `${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  check(found.length === 0, `${name}: accessibility violations: ${found.join("; ")}`);
}

/** Fails when the page scrolls sideways (at a phone's 320 px, say). */
export async function noSidewaysScroll(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  // Name the outermost elements that reach past the edge, so the fix is obvious.
  const culprits = overflow <= 0 ? [] : await page.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
      .filter((e) => !(e.parentElement && e.parentElement.getBoundingClientRect().right > window.innerWidth + 1))
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}${e.className ? "." + e.className : ""}`),
  );
  check(overflow <= 0, `${name}: scrolls sideways by ${overflow}px (${culprits.join(", ")})`);
}
