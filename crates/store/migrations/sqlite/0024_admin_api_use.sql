-- When each principal last used the admin API, per way of authenticating (api_key,
-- access_token, session): written at most about once a minute per row, never audited.
CREATE TABLE admin_api_use (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    method TEXT NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, method)
);
CREATE INDEX admin_api_use_by_time ON admin_api_use (tenant_id, last_used_at);
