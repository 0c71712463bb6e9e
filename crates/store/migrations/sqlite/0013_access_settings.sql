-- Per-tenant settings of the authorization engine's answers to applications. A tenant without
-- a row audits no allowed decision (denials are always audited).
CREATE TABLE tenant_access_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    audit_allowed_one_in INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
