-- An application deleted in Argo CD and created again under the same name is a new
-- incarnation: Argo CD gives it a new `metadata.uid` and starts its history ids at 0
-- again. Its deployments are kept beside the old incarnation's, never over them.
ALTER TABLE applications ADD COLUMN uid TEXT;
ALTER TABLE applications ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX deployments_incarnation_history ON deployments (application_id, incarnation, history_id);
-- The table's own UNIQUE (application_id, history_id) cannot be dropped by ALTER TABLE,
-- and sqlx runs this file inside a transaction, where SQLite ignores
-- `PRAGMA foreign_keys = OFF`. `Ledger::migrate` therefore rebuilds `deployments`
-- without it right after this migration, on a connection of its own
-- (server/src/ledger/rebuild.rs).
