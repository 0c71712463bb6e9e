-- Failed-attempt counts of the sign-in back-off, per account or source address (`key`): kept
-- here, not in each node's memory, so that every node counts the same attempts and a restart
-- forgets none. Rows quiet for 15 minutes are forgotten by the sweeper.
CREATE TABLE auth_backoff (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
CREATE INDEX auth_backoff_by_time ON auth_backoff (last_at);
