-- The ledger: DESIGN.md's domain model. Times are INTEGER milliseconds since the Unix
-- epoch (UTC), identical on SQLite and PostgreSQL so one set of queries serves both;
-- commit times keep the author's offset in minutes beside them.

CREATE TABLE environments (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    rank        INTEGER NOT NULL DEFAULT 0,
    -- JSON: the rules that map applications here (labels, namespace, cluster, project, name pattern).
    match_rules TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE services (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE applications (
    id             INTEGER PRIMARY KEY,
    instance       TEXT    NOT NULL,
    namespace      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    project        TEXT    NOT NULL DEFAULT 'default',
    environment_id INTEGER REFERENCES environments (id) ON DELETE SET NULL,
    service_id     INTEGER REFERENCES services (id) ON DELETE SET NULL,
    -- JSON array of the application's sources (repoURL, path, chart, targetRevision).
    sources        TEXT    NOT NULL DEFAULT '[]',
    dest_server    TEXT,
    dest_name      TEXT,
    dest_namespace TEXT,
    sync_status    TEXT,
    health_status  TEXT,
    automated_sync BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at     INTEGER,
    updated_at     INTEGER NOT NULL,
    UNIQUE (instance, namespace, name)
);
CREATE INDEX applications_environment ON applications (environment_id);
CREATE INDEX applications_service ON applications (service_id);

-- Sync-status and health changes over time (timelines, DORA metrics).
CREATE TABLE application_status_changes (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    at             INTEGER NOT NULL,
    sync_status    TEXT,
    health_status  TEXT
);
CREATE INDEX application_status_changes_app_at ON application_status_changes (application_id, at);

CREATE TABLE repositories (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url  TEXT NOT NULL,
    -- 'source' (application code) or 'manifests' (GitOps repository).
    kind TEXT NOT NULL CHECK (kind IN ('source', 'manifests'))
);

CREATE TABLE commits (
    id                      INTEGER PRIMARY KEY,
    repository_id           INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha                     TEXT    NOT NULL,
    author_name             TEXT    NOT NULL,
    author_email            TEXT    NOT NULL,
    authored_at             INTEGER NOT NULL,
    author_offset_minutes   INTEGER NOT NULL DEFAULT 0,
    committer_name          TEXT    NOT NULL,
    committer_email         TEXT    NOT NULL,
    committed_at            INTEGER NOT NULL,
    committer_offset_minutes INTEGER NOT NULL DEFAULT 0,
    message                 TEXT    NOT NULL,
    pull_request_number     INTEGER,
    -- False once a force-push leaves the commit unreachable; commits are never deleted.
    reachable               BOOLEAN NOT NULL DEFAULT TRUE,
    UNIQUE (repository_id, sha)
);
CREATE INDEX commits_sha ON commits (sha);
CREATE INDEX commits_repo_committed_at ON commits (repository_id, committed_at);
CREATE INDEX commits_pull_request ON commits (repository_id, pull_request_number);

CREATE TABLE commit_parents (
    commit_id  INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    parent_sha TEXT    NOT NULL,
    PRIMARY KEY (commit_id, position)
);
CREATE INDEX commit_parents_parent ON commit_parents (parent_sha);

CREATE TABLE pull_requests (
    id               INTEGER PRIMARY KEY,
    repository_id    INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    title            TEXT,
    body             TEXT,
    author           TEXT,
    head_branch      TEXT,
    merged_at        INTEGER,
    merge_commit_sha TEXT,
    fetched_at       INTEGER,
    UNIQUE (repository_id, number)
);
CREATE INDEX pull_requests_merge_commit ON pull_requests (merge_commit_sha);

CREATE TABLE features (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    summary     TEXT,
    issue_type  TEXT,
    status      TEXT,
    assignee    TEXT,
    url         TEXT,
    fetched_at  INTEGER
);

CREATE TABLE commit_features (
    commit_id  INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    feature_id INTEGER NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    PRIMARY KEY (commit_id, feature_id)
);
CREATE INDEX commit_features_feature ON commit_features (feature_id);

CREATE TABLE pull_request_features (
    pull_request_id INTEGER NOT NULL REFERENCES pull_requests (id) ON DELETE CASCADE,
    feature_id      INTEGER NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    PRIMARY KEY (pull_request_id, feature_id)
);
CREATE INDEX pull_request_features_feature ON pull_request_features (feature_id);

CREATE TABLE pipeline_runs (
    id                  INTEGER PRIMARY KEY,
    ci_system           TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    url                 TEXT,
    status              TEXT    NOT NULL,
    repository_id       INTEGER REFERENCES repositories (id) ON DELETE SET NULL,
    commit_sha          TEXT,
    pull_request_number INTEGER,
    started_at          INTEGER,
    finished_at         INTEGER,
    UNIQUE (ci_system, run_id)
);
CREATE INDEX pipeline_runs_commit ON pipeline_runs (commit_sha);
CREATE INDEX pipeline_runs_pull_request ON pipeline_runs (repository_id, pull_request_number);

CREATE TABLE pipeline_steps (
    id              INTEGER PRIMARY KEY,
    pipeline_run_id INTEGER NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('build', 'test', 'scan', 'pre-sync', 'post-sync', 'deploy', 'other')),
    status          TEXT    NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    UNIQUE (pipeline_run_id, position)
);

-- An image reference as Argo CD reports it (repository:tag); the digest once known.
CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT,
    UNIQUE (repository, tag)
);
CREATE INDEX images_digest ON images (digest);

-- What CI reported building: an image digest from a commit.
CREATE TABLE builds (
    id                  INTEGER PRIMARY KEY,
    digest              TEXT    NOT NULL UNIQUE,
    image_id            INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    repository_id       INTEGER REFERENCES repositories (id) ON DELETE SET NULL,
    commit_sha          TEXT    NOT NULL,
    branch              TEXT,
    pull_request_number INTEGER,
    pipeline_run_id     INTEGER REFERENCES pipeline_runs (id) ON DELETE SET NULL,
    built_at            INTEGER NOT NULL
);
CREATE INDEX builds_commit ON builds (commit_sha);
CREATE INDEX builds_pull_request ON builds (repository_id, pull_request_number);

CREATE TABLE deployments (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    history_id     INTEGER NOT NULL,
    -- The first source's revision; all of them, for multi-source apps, in `revisions` (JSON).
    revision       TEXT    NOT NULL,
    revisions      TEXT    NOT NULL DEFAULT '[]',
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    phase          TEXT    NOT NULL,
    message        TEXT,
    initiated_by   TEXT,
    automated      BOOLEAN NOT NULL DEFAULT FALSE,
    is_rollback    BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (application_id, history_id)
);
CREATE INDEX deployments_finished_at ON deployments (finished_at);
CREATE INDEX deployments_app_finished_at ON deployments (application_id, finished_at);

-- The images an application ran before and after a deployment.
CREATE TABLE deployment_images (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    side          TEXT    NOT NULL CHECK (side IN ('before', 'after')),
    PRIMARY KEY (deployment_id, image_id, side)
);
CREATE INDEX deployment_images_image ON deployment_images (image_id, side);

CREATE TABLE resources (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    api_group      TEXT    NOT NULL DEFAULT '',
    kind           TEXT    NOT NULL,
    namespace      TEXT    NOT NULL DEFAULT '',
    name           TEXT    NOT NULL,
    health_status  TEXT,
    updated_at     INTEGER NOT NULL,
    UNIQUE (application_id, api_group, kind, namespace, name)
);

CREATE TABLE resource_images (
    resource_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    PRIMARY KEY (resource_id, image_id)
);
CREATE INDEX resource_images_image ON resource_images (image_id);
