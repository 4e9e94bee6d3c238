-- Values a secret held before it was rotated, kept (sealed) for a grace period so deliveries
-- can be signed under the old and the new value while receivers move to the new one.
CREATE TABLE previous_secrets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_id   INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    sealed      TEXT    NOT NULL,   -- as secrets.sealed: bound to the same entity and name
    retired_at  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL
);
CREATE INDEX previous_secrets_secret ON previous_secrets(secret_id, valid_until);
