-- A user's authenticator-app (TOTP) secret, sealed under the KEK: the server must read it back
-- to check codes, so it cannot be hashed. Unconfirmed until the user enters a first code.
CREATE TABLE user_totp (
    user_id TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    secret_sealed BYTEA NOT NULL,
    confirmed_at BIGINT,
    -- The newest time step accepted: a code is never accepted twice.
    last_used_step BIGINT,
    created_at BIGINT NOT NULL
);

-- One-time recovery codes, stored as keyed hashes; each usable once.
CREATE TABLE user_recovery_codes (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
