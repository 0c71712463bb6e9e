-- A user's authenticator-app (TOTP) secret, sealed under the KEK: the server must read it back
-- to check codes, so it cannot be hashed. Unconfirmed until the user enters a first code.
CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    secret_sealed BLOB NOT NULL,
    confirmed_at INTEGER,
    -- The newest time step accepted: a code is never accepted twice.
    last_used_step INTEGER,
    created_at INTEGER NOT NULL
);

-- One-time recovery codes, stored as keyed hashes; each usable once.
CREATE TABLE user_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
