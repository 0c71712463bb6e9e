-- Per-tenant sign-in rules. A tenant without a row uses the defaults (MFA required for nobody,
-- authenticator apps allowed, passwords of at least 12 characters and zxcvbn score 3).
CREATE TABLE tenant_sign_in_settings (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    mfa_required TEXT NOT NULL,
    allow_totp BOOLEAN NOT NULL,
    password_min_length BIGINT NOT NULL,
    password_min_strength BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A session that may only be used to set up an authenticator app, because the tenant requires
-- one and the user has none yet.
ALTER TABLE sessions ADD COLUMN must_enrol_mfa BOOLEAN NOT NULL DEFAULT FALSE;
