-- Claims need only the executions still queued (PENDING) or in flight (RUNNING); finished ones
-- are almost all of the table. Partial indexes hold just the queued and in-flight rows, so they
-- stay small and in cache, and an execution leaving the queue drops out of them instead of
-- being moved to another spot of a large index.
DROP INDEX executions_due;
DROP INDEX executions_lease;
CREATE INDEX executions_due ON executions(next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX executions_lease ON executions(lease_until) WHERE status = 'RUNNING';
