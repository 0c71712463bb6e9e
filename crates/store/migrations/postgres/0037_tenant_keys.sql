-- Every tenant-scoped table carries tenant_id, so that a tenant-sharded PostgreSQL (Citus) can
-- distribute it by tenant and every query can name the tenant it reads. These two reached
-- their tenant only through a join (the grant, the client).
ALTER TABLE refresh_tokens ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
UPDATE refresh_tokens r SET tenant_id = g.tenant_id FROM oauth_grants g WHERE g.id = r.grant_id;
ALTER TABLE refresh_tokens ALTER COLUMN tenant_id SET NOT NULL;

ALTER TABLE client_assertion_jtis ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
UPDATE client_assertion_jtis j SET tenant_id = s.tenant_id FROM service_principals s WHERE s.id = j.client_id;
ALTER TABLE client_assertion_jtis ALTER COLUMN tenant_id SET NOT NULL;
