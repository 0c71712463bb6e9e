// Small conveniences on the sign-in and account pages, each of which works without them: a
// "Show password" button beside every password field, and copying or downloading the recovery
// codes shown once. Served from this server (the pages' CSP allows only script-src 'self').
"use strict";

for (const input of document.querySelectorAll('input[type="password"]')) {
  if (!input.id) continue;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "reveal link";
  button.textContent = "Show password";
  button.setAttribute("aria-controls", input.id);
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", () => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", String(show));
    input.focus();
  });
  // Typed passwords are never left visible when the form is sent.
  input.form?.addEventListener("submit", () => {
    input.type = "password";
  });
  input.after(button);
}

const codes = document.querySelector("[data-codes]");
const actions = document.querySelector("[data-codes-actions]");
if (codes && actions) {
  const status = actions.querySelector("[role=status]");
  const text = () =>
    [...codes.querySelectorAll("code")].map((code) => code.textContent.trim()).join("\n") + "\n";
  actions.hidden = false;
  actions.querySelector("[data-copy]")?.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      status.textContent = "Copied. Paste them somewhere safe.";
    } catch {
      status.textContent = "Your browser did not allow copying: select the codes and copy them.";
    }
  });
  const download = actions.querySelector("[data-download]");
  download?.addEventListener("click", () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text()], { type: "text/plain" }));
    link.download = download.dataset.download;
    link.click();
    URL.revokeObjectURL(link.href);
    status.textContent = "Downloaded. Keep the file somewhere safe, away from this device.";
  });
}
