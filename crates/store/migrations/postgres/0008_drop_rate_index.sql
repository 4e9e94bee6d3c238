-- The rate limiter counts an automation's recent executions only when it first meets the
-- automation after a start, and walks executions_automation (newest first) for that; an index
-- by creation time cost every execution an insert to serve that one query.
DROP INDEX executions_rate;
