-- Where each application reads its manifests: the repository (its URL normalised, as
-- manifest repositories are matched) and the path inside it, one row per source. The
-- manifests question looks up the applications a changed file lies under here instead
-- of parsing every application's source list on each request. `source_paths_indexed`
-- is false for applications whose rows are not written yet (those recorded before this
-- table existed); `landfall serve` writes them at start-up.
CREATE TABLE application_source_paths (
    application_id BIGINT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    repo_url       TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    PRIMARY KEY (application_id, repo_url, path)
);
CREATE INDEX application_source_paths_by_path ON application_source_paths (repo_url, path);
ALTER TABLE applications ADD COLUMN source_paths_indexed BOOLEAN NOT NULL DEFAULT FALSE;
