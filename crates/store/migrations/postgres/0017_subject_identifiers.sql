-- Identifiers enforcement points know principals by: an external id per user and service
-- principal (SCIM's externalId: an upstream directory's or identity provider's id), unique in
-- its tenant, and the tenant's own names for subject types (`identity` → users and service
-- principals), as a JSON object.
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external_id_idx ON users (tenant_id, external_id);
ALTER TABLE service_principals ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX service_principals_external_id_idx ON service_principals (tenant_id, external_id);
ALTER TABLE tenant_access_settings ADD COLUMN subject_types TEXT NOT NULL DEFAULT '{}';
