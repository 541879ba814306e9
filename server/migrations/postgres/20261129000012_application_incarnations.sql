-- An application deleted in Argo CD and created again under the same name is a new
-- incarnation: Argo CD gives it a new `metadata.uid` and starts its history ids at 0
-- again. Its deployments are kept beside the old incarnation's, never over them.
ALTER TABLE applications ADD COLUMN uid TEXT;
ALTER TABLE applications ADD COLUMN incarnation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN incarnation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments DROP CONSTRAINT deployments_application_id_history_id_key;
ALTER TABLE deployments ADD CONSTRAINT deployments_incarnation_history UNIQUE (application_id, incarnation, history_id);
