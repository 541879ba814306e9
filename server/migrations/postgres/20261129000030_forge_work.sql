-- Webhook work accepted (answered 202) and not yet done, kept in the ledger so that a
-- delivery acknowledged just before a restart is still handled after it. Written in the
-- transaction that records the delivery; removed once the worker has handled it.
CREATE TABLE forge_work (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    forge       TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    -- The work as JSON: repository, forge project and what to do.
    work        TEXT    NOT NULL,
    received_at BIGINT NOT NULL
);
