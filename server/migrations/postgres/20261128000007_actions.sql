-- Actions on Argo CD: every attempt, allowed or refused, succeeded or failed, and the
-- rollback plans users asked for, kept so that one can be executed as it was shown.

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    -- Who asked; "anonymous" until Landfall has users.
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    -- NULL when the attempt named no instance or application (a rollback plan's execution).
    instance    TEXT,
    namespace   TEXT,
    application TEXT,
    -- JSON: what was asked, never a secret.
    parameters  TEXT    NOT NULL DEFAULT '{}',
    outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    message     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at, id);

CREATE TABLE rollback_plans (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  BIGINT  NOT NULL,
    environment TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    -- JSON: the plan as `POST /api/v1/rollback-plans` answered it.
    plan        TEXT    NOT NULL,
    executed_at BIGINT
);
