-- Secondary indexes of the history tables that a first ingest into an empty ledger drops
-- while it stores a whole history, and builds once at the end: keeping them up to date
-- row by row took a third of a first ingest (`Ledger::defer_history_indexes`). A row is
-- written in the transaction that drops its index and deleted in the one that builds it
-- again, so an index is either in place or named here; `landfall` builds what is named
-- here at every start, after a process stopped half-way.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
