-- E-mail: whether a user's address is proven theirs, what each single-use link is for and where
-- it was mailed, and the outbox of messages waiting for (or past) delivery.

ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- enrol: the first password (an invitation); reset: a forgotten password; verify: the address.
ALTER TABLE enrolment_links ADD COLUMN purpose TEXT NOT NULL DEFAULT 'enrol';
-- The address the link was mailed to (NULL when it was shown to an administrator): using it
-- proves that address is the user's, if it still is.
ALTER TABLE enrolment_links ADD COLUMN sent_to TEXT;

-- One row per message, written in the transaction of the change it tells of (a link, a new
-- sign-in method), so none is lost to a crash and none tells of a change that rolled back.
-- The link a message carries is sealed with the key-encryption key and wiped once delivered.
CREATE TABLE mail_outbox (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    sealed_link TEXT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When the sender may next try it; NULL once delivered or given up.
    next_attempt_at BIGINT,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX mail_outbox_by_user ON mail_outbox (tenant_id, user_id, kind, created_at);
CREATE INDEX mail_outbox_by_age ON mail_outbox (created_at);
