-- Per-tenant sign-in rules. A tenant without a row uses the defaults (MFA required for nobody,
-- authenticator apps allowed, passwords of at least 12 characters and zxcvbn score 3).
CREATE TABLE tenant_sign_in_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    mfa_required TEXT NOT NULL,
    allow_totp INTEGER NOT NULL,
    password_min_length INTEGER NOT NULL,
    password_min_strength INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A session that may only be used to set up an authenticator app, because the tenant requires
-- one and the user has none yet.
ALTER TABLE sessions ADD COLUMN must_enrol_mfa INTEGER NOT NULL DEFAULT 0;
