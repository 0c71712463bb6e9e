-- Row triggers do not fire on TRUNCATE; refuse it on the audit log as well. (SQLite has no
-- TRUNCATE: its DELETE without WHERE fires the row trigger of 0001.)
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
