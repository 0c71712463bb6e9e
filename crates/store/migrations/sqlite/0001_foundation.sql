-- Foundation schema (SQLite). Kept column-for-column identical to migrations/postgres so one
-- set of queries serves both: ids are TEXT (UUIDv7), times are INTEGER microseconds since the
-- Unix epoch, JSON is TEXT. Every table carries tenant_id and every query is tenant-scoped.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    display_name TEXT,
    operator BOOLEAN NOT NULL DEFAULT FALSE,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX tenants_name_key_idx ON tenants (name_key);

-- The head of each tenant's audit hash chain and change feed. Every write transaction updates
-- its tenant's row last, which serializes a tenant's writers so sequence numbers are assigned
-- in commit order.
CREATE TABLE tenant_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    audit_seq INTEGER NOT NULL,
    audit_hash TEXT NOT NULL,
    change_seq INTEGER NOT NULL
);

CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX environments_name_key_idx ON environments (tenant_id, name_key);

CREATE TABLE business_units (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    parent_id TEXT REFERENCES business_units (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX business_units_name_key_idx ON business_units (tenant_id, name_key);
CREATE INDEX business_units_parent_idx ON business_units (tenant_id, parent_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_name TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    email TEXT,
    email_key TEXT,
    display_name TEXT,
    kind TEXT NOT NULL,
    sponsor_id TEXT,
    expires_at INTEGER,
    business_unit_id TEXT NOT NULL REFERENCES business_units (id),
    state TEXT NOT NULL,
    state_before_delete TEXT,
    deleted_at INTEGER,
    last_sign_in_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_user_name_key_idx ON users (tenant_id, user_name_key);
CREATE UNIQUE INDEX users_email_key_idx ON users (tenant_id, email_key);
CREATE INDEX users_deleted_idx ON users (state, deleted_at);
CREATE INDEX users_expires_idx ON users (state, expires_at);
CREATE INDEX users_business_unit_idx ON users (tenant_id, business_unit_id);

CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX groups_name_key_idx ON groups (tenant_id, name_key);

CREATE TABLE group_members (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_kind TEXT NOT NULL,
    member_id TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_kind, member_id)
);
CREATE INDEX group_members_member_idx ON group_members (tenant_id, member_kind, member_id);

CREATE TABLE service_principals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE UNIQUE INDEX service_principals_name_key_idx ON service_principals (tenant_id, name_key);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    service_principal_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_keys_prefix_idx ON api_keys (prefix);
CREATE INDEX api_keys_owner_idx ON api_keys (tenant_id, service_principal_id);

CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    starts_at INTEGER,
    ends_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX role_assignments_unique_idx
    ON role_assignments (tenant_id, principal_kind, principal_id, role, scope);
CREATE INDEX role_assignments_scope_idx ON role_assignments (tenant_id, scope);

CREATE TABLE audit_events (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_display TEXT,
    action TEXT NOT NULL,
    target_kind TEXT,
    target_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    source_ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_at_idx ON audit_events (tenant_id, at);
CREATE INDEX audit_events_actor_idx ON audit_events (tenant_id, actor_id);
CREATE INDEX audit_events_target_idx ON audit_events (tenant_id, target_id);

-- The audit log is append-only: the server never updates or deletes a record, and the
-- database refuses to. (Someone with direct write access can drop these triggers; the hash
-- chain is what detects that.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The change feed: one row per committed change, numbered per tenant in commit order. Nodes
-- tail it to keep their caches and authorization snapshots current.
CREATE TABLE changes (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- Server secrets that must be recoverable, encrypted under the key-encryption key (which is
-- never stored here).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    ciphertext BLOB NOT NULL,
    kek_fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- At most one operator tenant, even when several nodes bootstrap an empty database at once.
CREATE UNIQUE INDEX tenants_operator_idx ON tenants (operator) WHERE operator;
