-- Claims look for RUNNING executions whose lease ran out (their process died); without this
-- index that means reading every execution in flight on every claim.
CREATE INDEX executions_lease ON executions(status, lease_until);
