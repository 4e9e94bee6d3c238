-- Run-metric automations: a per-automation cooldown, and when each automation last fired for
-- each run (written with the execution, so cooldowns survive restarts).

ALTER TABLE automations ADD COLUMN cooldown_seconds BIGINT;

CREATE TABLE run_trigger_state (
    automation_id BIGINT NOT NULL,
    run_id        BIGINT NOT NULL REFERENCES runs(id),
    last_fired_at BIGINT NOT NULL,
    PRIMARY KEY (automation_id, run_id)
);
