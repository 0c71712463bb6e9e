-- Devices registered for users: the public half of a key pair each device keeps, found by
-- its RFC 7638 thumbprint when the device proves itself at sign-in, and whether an
-- administrator or an MDM marked it compliant.
CREATE TABLE registered_devices (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    public_key TEXT NOT NULL,
    key_thumbprint TEXT NOT NULL,
    compliant BOOLEAN NOT NULL,
    compliance_note TEXT,
    registered_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX registered_devices_by_key ON registered_devices (tenant_id, key_thumbprint);
CREATE INDEX registered_devices_by_user ON registered_devices (tenant_id, user_id);
