-- A build report names the CI run that built the image by CI system and run id; the
-- run itself may be reported later (or never), so the reference is kept as reported.
ALTER TABLE builds ADD COLUMN ci_system TEXT;
ALTER TABLE builds ADD COLUMN run_id TEXT;
ALTER TABLE builds ADD COLUMN run_url TEXT;
CREATE INDEX builds_run ON builds (ci_system, run_id);
