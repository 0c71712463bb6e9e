-- Key rotation: a key signs from `signs_from` (published before that), until the next key of its
-- algorithm starts; an emergency rotation revokes keys, which are then neither used nor published.
ALTER TABLE signing_keys ADD COLUMN signs_from INTEGER NOT NULL DEFAULT 0;
UPDATE signing_keys SET signs_from = created_at;
ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;
