-- Server-side sign-in sessions, shared by every node. The cookie holds a random token; only its
-- keyed hash is stored, so a copy of this table opens no session.
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    strength TEXT NOT NULL,
    -- JSON: [{"method": "pwd", "at": <microseconds>}, ...]
    methods TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL,
    source_ip TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id);
CREATE INDEX sessions_expiry_idx ON sessions (absolute_expires_at);
