-- The catalog and its event log. Times are microseconds since the Unix epoch (UTC) and JSON
-- is stored as text, so the same queries run on SQLite and PostgreSQL.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT    NOT NULL UNIQUE,
    email       TEXT,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE entities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE members (
    entity_id   INTEGER NOT NULL REFERENCES entities(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    role        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (entity_id, user_id)
);
CREATE INDEX members_user ON members(user_id);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id   INTEGER NOT NULL REFERENCES entities(id),
    name        TEXT    NOT NULL,
    description TEXT,
    is_registry INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE collections (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    artifact_type TEXT    NOT NULL,
    next_index    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE collection_tags (
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    tag           TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (collection_id, tag)
);

-- A version lives in its home sequence (collection_id, version_index).
CREATE TABLE versions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    version_index INTEGER NOT NULL,
    digest        TEXT,
    description   TEXT,
    metadata      TEXT    NOT NULL,
    created_by    INTEGER NOT NULL REFERENCES users(id),
    run_name      TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (collection_id, version_index)
);

CREATE TABLE version_tags (
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    tag         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (version_id, tag)
);

-- A version's place in a collection: its home sequence, and each portfolio it is linked into.
CREATE TABLE memberships (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    version_id    INTEGER NOT NULL REFERENCES versions(id),
    version_index INTEGER NOT NULL,
    created_by    INTEGER NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    UNIQUE (collection_id, version_id),
    UNIQUE (collection_id, version_index)
);

-- Aliases are unique per collection; `latest` is kept here too, moved by herald.
CREATE TABLE aliases (
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    alias         TEXT    NOT NULL,
    membership_id INTEGER NOT NULL REFERENCES memberships(id),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (collection_id, alias)
);
CREATE INDEX aliases_membership ON aliases(membership_id);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    name         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    state        TEXT    NOT NULL,
    tags         TEXT    NOT NULL,
    config       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

-- One row per logged step, values as a JSON object; id gives the logging order.
CREATE TABLE run_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    step        INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX run_history_run ON run_history(run_id, id);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type      TEXT    NOT NULL,
    entity_id       INTEGER NOT NULL REFERENCES entities(id),
    entity_name     TEXT    NOT NULL,
    project_name    TEXT,
    collection_name TEXT,
    artifact_type   TEXT,
    version_id      INTEGER,
    version_index   INTEGER,
    alias           TEXT,
    tag             TEXT,
    run_name        TEXT,
    author          TEXT,
    created_at      INTEGER NOT NULL,
    body            TEXT    NOT NULL
);
CREATE INDEX events_entity ON events(entity_id, id);
