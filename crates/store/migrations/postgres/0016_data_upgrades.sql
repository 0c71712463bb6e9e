-- Upgrades of stored data that SQL alone cannot make (they need the server's code), each done
-- once: the server records its name here when it has made it.
CREATE TABLE data_upgrades (
    name TEXT COLLATE "C" PRIMARY KEY,
    done_at BIGINT NOT NULL
);
