-- The tenant's built-in OAuth client for the `portcullis` command line (a public client with
-- the device grant, for the admin API), made on first use. No foreign key: a deleted client is
-- noticed and made again.
ALTER TABLE tenants ADD COLUMN cli_client_id TEXT;
