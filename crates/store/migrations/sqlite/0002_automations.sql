-- Secrets, integrations, automations, and their executions with every delivery attempt.

CREATE TABLE secrets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id   INTEGER NOT NULL REFERENCES entities(id),
    name        TEXT    NOT NULL,
    sealed      TEXT    NOT NULL,   -- AEAD ciphertext (nonce || ciphertext), base64
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE integrations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id           INTEGER NOT NULL REFERENCES entities(id),
    kind                TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    url                 TEXT    NOT NULL,
    access_token_secret TEXT,
    signing_secret      TEXT,
    enabled             INTEGER NOT NULL DEFAULT 1,
    disabled_reason     TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE automations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id      INTEGER NOT NULL REFERENCES entities(id),
    name           TEXT    NOT NULL,
    description    TEXT,
    enabled        INTEGER NOT NULL,
    scope_type     TEXT    NOT NULL,
    scope_path     TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    filter         TEXT    NOT NULL,
    action         TEXT    NOT NULL,   -- JSON: {"type": ..., "integration_id": ..., "payload": ...}
    integration_id INTEGER REFERENCES integrations(id),
    rate_limit     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

-- Bumped on every automation change, so matchers can tell cheaply that their index is stale.
CREATE TABLE automation_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO automation_epoch (id, epoch) VALUES (1, 0);

-- How far the matcher has read the event log.
CREATE TABLE matcher_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
INSERT INTO matcher_cursor (id, last_event_id) VALUES (1, 0);

CREATE TABLE executions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id       INTEGER NOT NULL REFERENCES entities(id),
    automation_id   INTEGER NOT NULL,
    automation_name TEXT    NOT NULL,
    event_id        INTEGER NOT NULL REFERENCES events(id),
    event_type      TEXT    NOT NULL,
    action_type     TEXT    NOT NULL,
    integration_id  INTEGER,
    status          TEXT    NOT NULL,
    reason          TEXT,
    action          TEXT    NOT NULL,   -- the action as it was when the event matched
    variables       TEXT    NOT NULL,   -- template variables taken from the event
    request         TEXT    NOT NULL,   -- the rendered request, secrets masked
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    round_attempts  INTEGER NOT NULL DEFAULT 0,   -- attempts since the last (re)delivery began
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (automation_id, event_id)
);
CREATE INDEX executions_due ON executions(status, next_attempt_at);
CREATE INDEX executions_automation ON executions(automation_id, id);
CREATE INDEX executions_entity ON executions(entity_id, id);
CREATE INDEX executions_rate ON executions(automation_id, created_at);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    number       INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL,
    status_code  INTEGER,
    error_class  TEXT,
    error        TEXT,
    response     TEXT
);
CREATE INDEX attempts_execution ON attempts(execution_id, number);
