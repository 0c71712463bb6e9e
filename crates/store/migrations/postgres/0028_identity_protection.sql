-- Identity protection. `risk_detections` holds what was found, with its evidence, about a user
-- (user_id set) or about the tenant as a whole (a password spray not yet tied to an account).
-- `fingerprint` names what makes two findings one (the same spray, the same leaked password of
-- the same user), so a finding still open is updated rather than repeated.
CREATE TABLE risk_detections (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    evidence TEXT NOT NULL,
    source_ip TEXT,
    country TEXT,
    detected_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX risk_detections_by_user ON risk_detections (tenant_id, user_id, state);
CREATE INDEX risk_detections_by_time ON risk_detections (tenant_id, detected_at);
CREATE INDEX risk_detections_by_fingerprint ON risk_detections (tenant_id, fingerprint, state);

-- Where and how each user was seen signing in: the last few, to judge the next one against.
-- Coordinates are kept in millionths of a degree.
CREATE TABLE sign_in_sightings (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    country TEXT,
    asn BIGINT,
    latitude_micro BIGINT,
    longitude_micro BIGINT,
    platform TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, at)
);

-- Wrong passwords of the last hour: keyed hashes of the account name tried and of the password
-- (never either in clear, and no unkeyed hash that a list could reverse), and the address.
CREATE TABLE password_failures (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    at BIGINT NOT NULL,
    account_key TEXT NOT NULL,
    password_mac BYTEA NOT NULL,
    source TEXT
);
CREATE INDEX password_failures_by_password ON password_failures (tenant_id, password_mac, at);
CREATE INDEX password_failures_by_account ON password_failures (tenant_id, account_key, at);
CREATE INDEX password_failures_by_time ON password_failures (at);

-- The deployment's list of breached passwords, as the SHA-1 of each (the form the public
-- corpora publish). Shared by every tenant.
CREATE TABLE leaked_passwords (
    sha1 BYTEA PRIMARY KEY NOT NULL
);
