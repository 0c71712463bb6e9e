-- Terms of use: which version each user accepted and when, and the flag that holds a session
-- at the terms page until the current version is accepted.
CREATE TABLE terms_acceptances (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, version)
);
ALTER TABLE sessions ADD COLUMN must_accept_terms BOOLEAN NOT NULL DEFAULT FALSE;
