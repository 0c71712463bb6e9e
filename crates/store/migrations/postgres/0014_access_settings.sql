-- Per-tenant settings of the authorization engine's answers to applications. A tenant without
-- a row audits no allowed decision (denials are always audited).
CREATE TABLE tenant_access_settings (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    audit_allowed_one_in BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
