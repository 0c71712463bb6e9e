-- A user's password, as an Argon2id PHC string (the parameters travel with the hash). At most
-- one per user; removed with the user.
CREATE TABLE user_passwords (
    user_id TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    hash TEXT NOT NULL,
    -- Set by an administrator's reset: the user must choose a new one at next sign-in.
    must_change BOOLEAN NOT NULL,
    changed_at BIGINT NOT NULL
);
