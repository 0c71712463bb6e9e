// Passkeys: the only script on Portcullis pages, because WebAuthn has no form-only form.
// A button with data-passkey="sign-in" or data-passkey="register" inside a form starts the
// ceremony: the script asks the server for options, lets the browser talk to the
// authenticator, then puts the answer into the form's hidden "credential" field and submits
// it, so the server's answer is an ordinary page.
"use strict";

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withBinaryIds(list) {
  return (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));
}

const ceremonies = {
  register: {
    async run(options) {
      const publicKey = {
        ...options,
        challenge: fromBase64url(options.challenge),
        user: { ...options.user, id: fromBase64url(options.user.id) },
        excludeCredentials: withBinaryIds(options.excludeCredentials),
      };
      const credential = await navigator.credentials.create({ publicKey });
      const response = credential.response;
      return {
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        response: {
          attestationObject: toBase64url(response.attestationObject),
          clientDataJSON: toBase64url(response.clientDataJSON),
          transports: response.getTransports ? response.getTransports() : [],
        },
        clientExtensionResults: credential.getClientExtensionResults(),
      };
    },
  },
  "sign-in": {
    async run(options) {
      const publicKey = {
        ...options,
        challenge: fromBase64url(options.challenge),
        allowCredentials: withBinaryIds(options.allowCredentials),
      };
      const credential = await navigator.credentials.get({ publicKey });
      const response = credential.response;
      return {
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        response: {
          authenticatorData: toBase64url(response.authenticatorData),
          clientDataJSON: toBase64url(response.clientDataJSON),
          signature: toBase64url(response.signature),
          userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
        },
        clientExtensionResults: credential.getClientExtensionResults(),
      };
    },
  },
};

function say(form, message) {
  const status = form.querySelector("[data-passkey-status]");
  if (status) status.textContent = message;
}

async function start(button) {
  const form = button.form;
  const ceremony = ceremonies[button.dataset.passkey];
  if (!window.PublicKeyCredential) {
    say(form, "This browser cannot use passkeys. Use another sign-in method.");
    return;
  }
  if (!form.reportValidity()) return;
  button.disabled = true;
  try {
    const started = await fetch(button.dataset.options, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf: form.elements.csrf.value }),
    });
    const body = await started.json();
    if (!started.ok) {
      say(form, body.detail || "Passkeys are not available right now.");
      return;
    }
    const answer = await ceremony.run(body.publicKey);
    form.elements.ceremony.value = body.ceremony;
    form.elements.credential.value = JSON.stringify(answer);
    form.submit();
  } catch (error) {
    // The person cancelled, or no authenticator answered in time.
    say(form, "No passkey was used. Try again, or use another sign-in method.");
  } finally {
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll("button[data-passkey]")) {
  button.hidden = false;
  button.addEventListener("click", () => start(button));
}
