-- The content (by hex MD5) each version saved through the SDK holds, so that blobs no version
-- holds can be found and deleted (content is stored once and shared between versions).
CREATE TABLE version_files (
    version_id BIGINT  NOT NULL REFERENCES versions(id),
    md5        TEXT    NOT NULL,
    PRIMARY KEY (version_id, md5)
);
CREATE INDEX version_files_md5 ON version_files(md5);
CREATE INDEX versions_manifest ON versions(manifest_md5);
CREATE INDEX artifact_uploads_pending ON artifact_uploads(created_at) WHERE version_id IS NULL;
