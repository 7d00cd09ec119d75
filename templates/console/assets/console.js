// keygate console: progressive enhancement only. Every action works without
// this file; it adds copy buttons, confirmation prompts, and passkeys
// (WebAuthn exists only in script: its buttons are rendered hidden and shown
// here when the browser has it).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons are rendered hidden: without script they would do nothing.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed: select and copy";
      }
      setTimeout(() => { button.textContent = label; }, 2000);
    });
  }

  // Forms that change something serious ask once more.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  if (window.PublicKeyCredential && navigator.credentials) setUpPasskeys();
});

// ------------------------------------------------------------------ passkeys

const b64url = {
  encode(buffer) {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  decode(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  },
};

// POSTs JSON with the page's CSRF token; the answer's JSON, or an Error
// holding keygate's message (and its error code as `code`).
async function postJson(url, body, csrf) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(answer.message || `keygate answered ${response.status}`);
    error.code = answer.error;
    throw error;
  }
  return answer;
}

function creationOptions(json) {
  const options = json.publicKey;
  options.challenge = b64url.decode(options.challenge);
  options.user.id = b64url.decode(options.user.id);
  for (const c of options.excludeCredentials || []) c.id = b64url.decode(c.id);
  return options;
}

function requestOptions(json) {
  const options = json.publicKey;
  options.challenge = b64url.decode(options.challenge);
  for (const c of options.allowCredentials || []) c.id = b64url.decode(c.id);
  return options;
}

function registrationJson(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: b64url.encode(credential.rawId),
    type: credential.type,
    extensions: credential.getClientExtensionResults(),
    response: {
      attestationObject: b64url.encode(response.attestationObject),
      clientDataJSON: b64url.encode(response.clientDataJSON),
      transports: response.getTransports ? response.getTransports() : undefined,
    },
  };
}

function assertionJson(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: b64url.encode(credential.rawId),
    type: credential.type,
    extensions: credential.getClientExtensionResults(),
    response: {
      authenticatorData: b64url.encode(response.authenticatorData),
      clientDataJSON: b64url.encode(response.clientDataJSON),
      signature: b64url.encode(response.signature),
      userHandle: response.userHandle ? b64url.encode(response.userHandle) : null,
    },
  };
}

function showError(id, error) {
  const box = document.getElementById(id);
  if (!box) return;
  box.textContent = error.name === "NotAllowedError"
    ? "The passkey request was cancelled or timed out. Try again."
    : error.message;
  box.hidden = false;
}

function setUpPasskeys() {
  for (const element of document.querySelectorAll("[data-passkey]")) element.hidden = false;

  // Security page: add a passkey.
  const add = document.getElementById("passkey-add");
  if (add) {
    add.addEventListener("submit", async (event) => {
      event.preventDefault();
      const csrf = add.dataset.csrf;
      try {
        const options = await postJson("/account/security/passkeys/options", {}, csrf);
        const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
        const done = await postJson("/account/security/passkeys", {
          name: add.elements.name.value,
          credential: registrationJson(credential),
        }, csrf);
        if (done.recovery_codes) {
          const list = document.getElementById("recovery-codes");
          list.replaceChildren(...done.recovery_codes.map((code) => {
            const item = document.createElement("li");
            const text = document.createElement("code");
            text.textContent = code;
            item.append(text);
            return item;
          }));
          for (const stale of ["no-passkeys", "recovery"]) {
            const element = document.getElementById(stale);
            if (element) element.hidden = true;
          }
          document.getElementById("passkey-codes").hidden = false;
          document.getElementById("passkey-codes").scrollIntoView();
          add.hidden = true;
        } else {
          window.location.assign(done.redirect);
        }
      } catch (error) {
        // Signed in too long ago: the sign-in page, then back here.
        if (error.code === "reauthentication_required") {
          window.location.assign(add.dataset.signInAgain);
          return;
        }
        showError("passkey-error", error);
      }
    });
  }

  // Sign-in page ("Sign in with a passkey") and the code step ("Use a passkey").
  for (const button of document.querySelectorAll("button[data-passkey-sign-in]")) {
    button.addEventListener("click", async () => {
      const csrf = button.dataset.csrf;
      try {
        const options = await postJson(button.dataset.passkeySignIn, {}, csrf);
        const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
        const done = await postJson("/sign-in/passkey", {
          credential: assertionJson(credential),
          next: button.dataset.next || "",
        }, csrf);
        window.location.assign(done.redirect);
      } catch (error) {
        showError("passkey-error", error);
      }
    });
  }
}
