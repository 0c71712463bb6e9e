-- Passkeys (WebAuthn credentials). `credential` is webauthn-rs's serialized passkey: the public
-- key, its algorithm and the signature counter; nothing in it is secret. A credential id is
-- unique across the whole server, so one credential can never belong to two accounts.
CREATE TABLE user_passkeys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX user_passkeys_by_user ON user_passkeys (tenant_id, user_id);

-- A WebAuthn ceremony between its start and the browser's answer: the challenge lives here, on
-- the server, and is taken (deleted) when the answer arrives, so an answer is accepted once.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    -- Registration: the signed-in user registering; sign-in: NULL (the passkey names the user).
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);

ALTER TABLE tenant_sign_in_settings ADD COLUMN allow_passkeys BOOLEAN NOT NULL DEFAULT TRUE;
