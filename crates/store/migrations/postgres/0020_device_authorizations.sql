-- Device authorization requests (RFC 8628): a device (the CLI) holds the device code and polls;
-- the user types the user code on the sign-in pages and approves or denies. Both codes are
-- stored as keyed hashes only. On approval a grant is recorded whose one-time code is the
-- device code, so the device redeems it exactly as an application redeems an authorization code.
CREATE TABLE device_authorizations (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    device_code_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    user_code_hash TEXT COLLATE "C" NOT NULL,
    scopes TEXT NOT NULL,
    audience TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- The least seconds between polls; grows by five at each poll that comes too soon.
    interval_seconds BIGINT NOT NULL,
    polled_at BIGINT,
    -- approved | denied, once the user answered.
    decision TEXT,
    decided_at BIGINT,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX device_authorizations_by_user_code ON device_authorizations (tenant_id, user_code_hash);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations (expires_at);
