// What the browser tests share: the server under test, where screenshots go, failures, the
// admin API for setting up, and launching Debian's Chromium.
import { mkdirSync } from "node:fs";
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
