-- Presence by ancestry, precomputed so that "is commit C in what application A runs?"
-- is an index lookup rather than a walk of the history.
--
-- Each ingested branch gets a chain of its tips, numbered 1, 2, 3, ... in ancestry order
-- (each an ancestor of the next; the first-parent line where it can be). A commit's
-- landing on that branch is the number of the first chain commit that contains it, so
-- commit C is an ancestor of chain commit N exactly when landing(C) <= N.
CREATE TABLE commit_landings (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    ref_name      TEXT    NOT NULL,
    sha           TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    -- True for the chain commits themselves.
    on_chain      BOOLEAN NOT NULL,
    PRIMARY KEY (repository_id, ref_name, sha)
);
CREATE INDEX commit_landings_position ON commit_landings (repository_id, ref_name, position);
CREATE INDEX commit_landings_sha ON commit_landings (repository_id, sha);

-- Where a commit that images are built from stands on each branch: it contains every
-- commit that landed at or before base_position, and the extra commits listed beside
-- (its own branch's commits, not yet or never merged).
CREATE TABLE source_points (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha           TEXT    NOT NULL,
    ref_name      TEXT    NOT NULL,
    base_position INTEGER NOT NULL,
    PRIMARY KEY (repository_id, sha, ref_name)
);
CREATE INDEX source_points_base ON source_points (repository_id, ref_name, base_position);

CREATE TABLE source_point_extras (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha           TEXT    NOT NULL,
    ref_name      TEXT    NOT NULL,
    extra_sha     TEXT    NOT NULL,
    PRIMARY KEY (repository_id, sha, ref_name, extra_sha)
);
CREATE INDEX source_point_extras_extra ON source_point_extras (repository_id, extra_sha);

-- The source commits of the images a deployment left running (through the builds CI
-- reported for those images).
CREATE TABLE deployment_sources (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha           TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, image_id)
);
CREATE INDEX deployment_sources_source ON deployment_sources (repository_id, sha);

-- The deployment whose images the application runs now: its latest succeeded one.
ALTER TABLE applications ADD COLUMN current_deployment_id INTEGER REFERENCES deployments (id) ON DELETE SET NULL;
CREATE INDEX deployments_app_history ON deployments (application_id, phase, finished_at);

-- The files each commit of a manifests repository touched, so that its commits map to
-- the applications whose source paths they changed ("who changed production").
CREATE TABLE commit_paths (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha           TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    PRIMARY KEY (repository_id, sha, path)
);
