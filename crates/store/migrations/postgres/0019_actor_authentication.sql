-- How the actor of an event authenticated (JSON: method, API key prefix or token id, client,
-- session, amr, acr, auth_time), so a change made by a person names their sign-in session.
ALTER TABLE audit_events ADD COLUMN actor_authentication TEXT;
