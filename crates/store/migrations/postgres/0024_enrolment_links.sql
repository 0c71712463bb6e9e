-- Enrolment links: an administrator hands a user a single-use, expiring link with which they
-- choose their own first password (and then add a passkey), instead of being told one. Only
-- the keyed hash of the link's secret is stored. A user has at most one unused link: a new
-- one replaces it.
CREATE TABLE enrolment_links (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX enrolment_links_by_user ON enrolment_links (tenant_id, user_id);
CREATE INDEX enrolment_links_by_expiry ON enrolment_links (expires_at);
