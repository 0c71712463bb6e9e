-- The audit and sign-in logs are read newest first, filtered by actor, target or action. With
-- the sequence number in each index, the index gives the rows already in order and a page reads
-- as many rows as it returns; without it a planner with no statistics walked the whole trail
-- backwards looking for a user's few events.
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_target_idx;
CREATE INDEX audit_events_actor_idx ON audit_events (tenant_id, actor_id, seq);
CREATE INDEX audit_events_target_idx ON audit_events (tenant_id, target_id, seq);
CREATE INDEX audit_events_action_idx ON audit_events (tenant_id, action, seq);
