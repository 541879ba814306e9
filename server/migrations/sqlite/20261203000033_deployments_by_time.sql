-- An environment's changes are read a page at a time, in the order of this index. For an
-- environment that holds many of the applications, walking it through the window meets
-- the environment's deployments soon and stops once the page is full, where
-- `deployments_app_time` costs one seek per application of the environment even for an
-- empty window (2,500 seeks, 1.6 ms). SQLite has no statistics here, so the ledger picks
-- the index itself (`Ledger::environment_changes`).
CREATE INDEX deployments_succeeded_time
    ON deployments (COALESCE(finished_at, started_at), id) WHERE phase = 'Succeeded';
