-- Artifacts saved by W&B's SDK arrive in steps: CreateArtifact reserves an upload, the files and
-- the manifest are PUT to blob storage, and CommitArtifact turns the upload into a version. Only
-- committed versions are in `versions`; an upload that is never committed stays here, unseen.
CREATE TABLE artifact_uploads (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    collection_name TEXT    NOT NULL,
    artifact_type   TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    description     TEXT,
    metadata        TEXT    NOT NULL,
    aliases         TEXT    NOT NULL,   -- JSON array of alias names, `latest` left out
    run_name        TEXT,
    created_by      INTEGER NOT NULL REFERENCES users(id),
    manifest_md5    TEXT,               -- hex MD5 of the manifest the SDK said it will PUT
    version_id      INTEGER REFERENCES versions(id),  -- set by the commit
    created_at      INTEGER NOT NULL
);

-- What a version holds, when herald knows: its manifest (a content-addressed blob) and the
-- number and total size of the files the manifest names.
ALTER TABLE versions ADD COLUMN manifest_md5 TEXT;
ALTER TABLE versions ADD COLUMN file_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0;
CREATE INDEX versions_digest ON versions(collection_id, digest);

-- The versions a run used (`run.use_artifact`).
CREATE TABLE run_inputs (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    version_id INTEGER NOT NULL REFERENCES versions(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, version_id)
);
