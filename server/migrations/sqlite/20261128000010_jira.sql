-- What Jira says of each feature beyond the first ledger's columns. Lists are JSON arrays
-- of names. A key Jira does not know is flagged, not removed; an issue deleted in Jira
-- keeps its row and its history, with the time the deletion was reported.

ALTER TABLE features ADD COLUMN status_category TEXT;
ALTER TABLE features ADD COLUMN priority TEXT;
ALTER TABLE features ADD COLUMN reporter TEXT;
ALTER TABLE features ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE features ADD COLUMN components TEXT NOT NULL DEFAULT '[]';
ALTER TABLE features ADD COLUMN fix_versions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE features ADD COLUMN parent_key TEXT;
-- Jira's own `updated` time of the issue, in milliseconds.
ALTER TABLE features ADD COLUMN jira_updated_at INTEGER;
-- The newest webhook applied (its `timestamp`), so an older delivery arriving late, or a
-- replay, never overwrites newer details.
ALTER TABLE features ADD COLUMN webhook_at INTEGER;
ALTER TABLE features ADD COLUMN not_found BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE features ADD COLUMN deleted_at INTEGER;

-- Webhook deliveries already applied: `X-Atlassian-Webhook-Identifier`, or the issue key
-- and the event's timestamp when Jira sends no identifier.
CREATE TABLE jira_webhook_deliveries (
    delivery    TEXT    NOT NULL PRIMARY KEY,
    received_at INTEGER NOT NULL
);
CREATE INDEX jira_webhook_deliveries_received_at ON jira_webhook_deliveries (received_at);
