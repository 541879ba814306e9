-- How many times a worker has taken each piece of webhook work. Work is removed only
-- once handled, so work that makes the process stop (a crash, an out-of-memory kill)
-- would otherwise be taken again at every start, forever, with the rest behind it.
ALTER TABLE forge_work ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
