-- What a deployment changed, stored so that "what entered production this afternoon?"
-- reads instead of diffing source commits on every request.
--
-- A diff between two sets of source commits (as landing numbers and extras), keyed by
-- a digest of both sets. Its body (JSON) names features and pull requests by key only;
-- their summaries and titles are read when answering, so Jira and forge updates show
-- at once. A diff never goes stale while the branch numbering stands; a force-push that
-- renumbers a branch deletes them all.
CREATE TABLE change_diffs (
    id      INTEGER PRIMARY KEY,
    sources TEXT NOT NULL UNIQUE,
    body    TEXT NOT NULL
);

-- Raised whenever what a deployment's source commits contain may have changed: its
-- images were reported again, a late build report named their commit, or a merge
-- landed a preview build. A stored link below is used only while both sides' versions
-- are the ones it was worked out with.
ALTER TABLE deployments ADD COLUMN sources_version INTEGER NOT NULL DEFAULT 0;

-- Which diff a deployment made relative to an earlier deployment of its application
-- (normally the previous one), and the source versions of both when it was worked out.
CREATE TABLE deployment_changes (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    previous_id   INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    diff_id       INTEGER NOT NULL REFERENCES change_diffs (id) ON DELETE CASCADE,
    deployment_version INTEGER NOT NULL,
    previous_version   INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, previous_id)
);
CREATE INDEX deployment_changes_previous ON deployment_changes (previous_id);
CREATE INDEX deployment_changes_diff ON deployment_changes (diff_id);
