-- The branch tips each repository was last ingested at: the next sync walks only the
-- commits between these and the new tips, and finds what a force-push left behind.
CREATE TABLE repository_refs (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    ref_name      TEXT    NOT NULL,
    sha           TEXT    NOT NULL,
    PRIMARY KEY (repository_id, ref_name)
);

ALTER TABLE repositories ADD COLUMN synced_at BIGINT;
