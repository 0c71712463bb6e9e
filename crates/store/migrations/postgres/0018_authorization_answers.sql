-- When a kept authorization request was answered (a code issued, or the user declined). The
-- row is kept until a while after it expires, so a second use of its handle is told "already
-- answered" instead of "never issued".
ALTER TABLE authorization_requests ADD COLUMN answered_at BIGINT;
