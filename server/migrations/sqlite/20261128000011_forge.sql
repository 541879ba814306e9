-- Webhook deliveries from GitHub and GitLab already accepted, by forge and delivery id
-- (`X-GitHub-Delivery`, `Idempotency-Key`, `X-Gitlab-Event-UUID`), so a replayed or
-- redelivered one is processed once. Kept a week (GitHub redelivers within 72 hours);
-- older rows are pruned as new deliveries arrive.
CREATE TABLE forge_deliveries (
    forge       TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);
CREATE INDEX forge_deliveries_received_at ON forge_deliveries (received_at);

-- Pull requests known only from commit messages, whose details a forge can fill in.
CREATE INDEX pull_requests_unfetched ON pull_requests (repository_id, number) WHERE fetched_at IS NULL;
