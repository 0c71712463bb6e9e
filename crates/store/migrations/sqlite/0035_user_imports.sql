-- Bulk imports of users from CSV: how far each got and what was wrong with which line, so the
-- person who started one (or anyone allowed to read users) can follow it from any node.
CREATE TABLE user_imports (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    started_by TEXT NOT NULL,
    file_name TEXT,
    total INTEGER NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    -- JSON array of {"line", "user_name", "error"}, at most the first 1000 failures.
    failures TEXT NOT NULL DEFAULT '[]',
    finished_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX user_imports_tenant ON user_imports (tenant_id, id);
