-- How strongly and how recently a person must have signed in to administer the tenant (the
-- defaults when a tenant has no row). `recent_actions` is a space-separated list of actions.
CREATE TABLE administrator_policies (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    mfa TEXT NOT NULL,
    mfa_strength TEXT NOT NULL,
    recent_actions TEXT NOT NULL,
    recent_minutes INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- What a device sign-in asked of the person's sign-in (`acr_values`, `max_age`): the
-- verification page steps the session up before it may be approved.
ALTER TABLE device_authorizations ADD COLUMN need_strength TEXT;
ALTER TABLE device_authorizations ADD COLUMN need_max_age_seconds INTEGER;
