-- The jti of every client assertion (RFC 7523) accepted, until it expires: an assertion is
-- accepted once.
CREATE TABLE client_assertion_jtis (
    client_id TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_by_expiry ON client_assertion_jtis (expires_at);
