-- Authorization requests kept while the user signs in or approves them, and pushed requests
-- (RFC 9126). Found by the keyed hash of their handle; used once.
CREATE TABLE authorization_requests (
    handle_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    -- JSON of the checked request.
    request TEXT NOT NULL,
    pushed INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX authorization_requests_by_expiry ON authorization_requests (expires_at);

-- A user's authorization of a client: the one-time code, then every token issued from it. A
-- reused code or refresh token revokes the whole grant.
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The sign-in session; sessions are deleted when they end, so no foreign key.
    session_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    audience TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    acr TEXT NOT NULL,
    -- JSON array of RFC 8176 method names.
    amr TEXT NOT NULL,
    nonce TEXT,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    code_hash TEXT NOT NULL UNIQUE,
    code_expires_at INTEGER NOT NULL,
    code_used_at INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
);
CREATE INDEX oauth_grants_by_user ON oauth_grants (tenant_id, user_id);
CREATE INDEX oauth_grants_by_expiry ON oauth_grants (expires_at);

-- Refresh tokens, by keyed hash. Each use marks the token used and issues the next one.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);

-- Access tokens revoked before they expire (RFC 7009), until they would have expired.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_at);

-- What each user approved for each client that asks for consent, until withdrawn.
CREATE TABLE oauth_consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    scopes TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
