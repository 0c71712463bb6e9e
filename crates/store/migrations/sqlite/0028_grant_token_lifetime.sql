-- A conditional access policy's maximum token lifetime, as judged when the grant was made:
-- the access tokens minted from the grant live no longer (NULL: the client's own lifetime).
ALTER TABLE oauth_grants ADD COLUMN token_seconds INTEGER;
