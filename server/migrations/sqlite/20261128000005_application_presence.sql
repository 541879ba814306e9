-- Presence per application, kept up to date as deployments, builds and branch numbers
-- change, so that "where does commit C run?" seeks per application instead of fanning
-- out over every deployment that ever ran a later build.
--
-- Each (application, repository, branch) the application ever ran, with the base number
-- of what it runs now (NULL when its current deployment runs nothing from there).
CREATE TABLE application_sources (
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    ref_name       TEXT    NOT NULL,
    current_base   INTEGER,
    PRIMARY KEY (application_id, repository_id, ref_name)
);
CREATE INDEX application_sources_repository ON application_sources (repository_id, ref_name);

-- The deployments that raised an application's base on a branch above every earlier
-- one: the first deployment containing a commit that landed at L is the first of these
-- with base_position >= L.
CREATE TABLE application_highs (
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    ref_name       TEXT    NOT NULL,
    base_position  INTEGER NOT NULL,
    deployment_id  INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    PRIMARY KEY (application_id, repository_id, ref_name, base_position)
);
