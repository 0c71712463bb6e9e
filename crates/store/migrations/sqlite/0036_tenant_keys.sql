-- Every tenant-scoped table carries tenant_id (see the PostgreSQL twin). SQLite cannot add a
-- NOT NULL column to rows that exist, so each table is rebuilt with it, filled from the row's
-- grant or client. Neither table is referenced by another, and neither has triggers.
CREATE TABLE refresh_tokens_with_tenant (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    tenant_id TEXT NOT NULL REFERENCES tenants (id)
);
INSERT INTO refresh_tokens_with_tenant (token_hash, grant_id, created_at, expires_at, used_at, tenant_id)
    SELECT r.token_hash, r.grant_id, r.created_at, r.expires_at, r.used_at, g.tenant_id
    FROM refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_with_tenant RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);

CREATE TABLE client_assertion_jtis_with_tenant (
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    PRIMARY KEY (client_id, jti)
);
INSERT INTO client_assertion_jtis_with_tenant (client_id, jti, expires_at, tenant_id)
    SELECT j.client_id, j.jti, j.expires_at, s.tenant_id
    FROM client_assertion_jtis j JOIN service_principals s ON s.id = j.client_id;
DROP TABLE client_assertion_jtis;
ALTER TABLE client_assertion_jtis_with_tenant RENAME TO client_assertion_jtis;
CREATE INDEX client_assertion_jtis_by_expiry ON client_assertion_jtis (expires_at);
