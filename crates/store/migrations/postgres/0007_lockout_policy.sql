-- Per-tenant password back-off: failures allowed before waiting, and the longest wait.
ALTER TABLE tenant_sign_in_settings ADD COLUMN lockout_free_failures BIGINT NOT NULL DEFAULT 5;
ALTER TABLE tenant_sign_in_settings ADD COLUMN lockout_max_seconds BIGINT NOT NULL DEFAULT 900;
