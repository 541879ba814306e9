-- Rollback plans move to the database attached as `plans` (the ledger's file with
-- `-plans` appended; see SQLITE_PLANS_SCHEMA in ledger.rs, which creates the table at
-- every connection). Writing a plan there leaves the ledger's own file, and what every
-- connection has read of it, untouched. The ids stay, so stored plans still execute.
INSERT OR REPLACE INTO plans.rollback_plans (id, created_at, environment, target, plan, executed_at)
    SELECT id, created_at, environment, target, plan, executed_at FROM main.rollback_plans;
DROP TABLE main.rollback_plans;
