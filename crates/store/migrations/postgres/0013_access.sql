-- The authorization engine's data plane: resource types with their actions, a tenant's own
-- roles, records, shares and deny assignments. Lists are JSON arrays; the engine reads them
-- whole into its snapshot, never by query.
CREATE TABLE resource_types (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT COLLATE "C" NOT NULL,
    description TEXT,
    actions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE custom_roles (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    permissions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX custom_roles_name_key_idx ON custom_roles (tenant_id, name_key);

CREATE TABLE records (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    resource_type TEXT COLLATE "C" NOT NULL,
    external_id TEXT COLLATE "C" NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    business_unit_id TEXT NOT NULL REFERENCES business_units (id),
    environment_id TEXT REFERENCES environments (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, resource_type) REFERENCES resource_types (tenant_id, name)
);
CREATE UNIQUE INDEX records_external_id_idx ON records (tenant_id, resource_type, external_id);

CREATE TABLE shares (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    record_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    actions TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX shares_unique_idx ON shares (record_id, principal_kind, principal_id);
CREATE INDEX shares_tenant_idx ON shares (tenant_id);

CREATE TABLE deny_assignments (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    principals TEXT NOT NULL,
    excluded TEXT NOT NULL,
    actions TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX deny_assignments_name_key_idx ON deny_assignments (tenant_id, name_key);
