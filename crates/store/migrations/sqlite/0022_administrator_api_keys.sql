-- Whether principals that hold privileged actions may call the admin API with an API key
-- (`allowed` or `unprivileged_only`).
ALTER TABLE administrator_policies ADD COLUMN api_keys TEXT NOT NULL DEFAULT 'allowed';
