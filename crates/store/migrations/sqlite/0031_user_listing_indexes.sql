-- The console and the API list a tenant's users in creation order, filtered by state or kind,
-- and search them by the start of their user name or e-mail address. These indexes make a page
-- cost time that grows with the page, not with the tenant. (SQLite compares text bytewise, so
-- the name and e-mail indexes already serve prefix ranges.)
CREATE INDEX users_tenant_order_idx ON users (tenant_id, id);
CREATE INDEX users_tenant_state_idx ON users (tenant_id, state, id);
CREATE INDEX users_tenant_kind_idx ON users (tenant_id, kind, id);
