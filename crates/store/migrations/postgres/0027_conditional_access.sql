-- Conditional access: named locations, policies and the tenant's settings (its emergency
-- access accounts). Each object is kept whole as a JSON document, as the API reads and writes
-- it; name and state are columns for uniqueness and listing.
CREATE TABLE named_locations (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX named_locations_name_key_idx ON named_locations (tenant_id, name_key);

CREATE TABLE access_policies (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    state TEXT NOT NULL,
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX access_policies_name_key_idx ON access_policies (tenant_id, name_key);

CREATE TABLE access_policy_settings (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
