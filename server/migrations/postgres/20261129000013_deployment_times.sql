-- A deployment's time is when its sync finished, or started when it has no finish time;
-- questions order an application's deployments by it (then by incarnation and history
-- id) to find the one before another, and select an environment's deployments in a
-- window by it. An index on the expression itself lets both seek instead of reading
-- every deployment of every application of the environment (250,000 rows for 2,500
-- applications).
CREATE INDEX deployments_app_time
    ON deployments (application_id, phase, (COALESCE(finished_at, started_at)), incarnation, history_id);
