-- A tenant's branding: the colour of its buttons and links and its logo (a raster image whose
-- type was checked from its bytes), shown on its sign-in pages, console and messages.
CREATE TABLE tenant_branding (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    colour TEXT,
    logo_type TEXT,
    logo BYTEA,
    logo_digest TEXT,
    updated_at BIGINT NOT NULL
);
