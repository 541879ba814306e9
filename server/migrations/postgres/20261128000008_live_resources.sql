-- Which of a resource's facts came from reading its cluster directly rather than from Argo
-- CD's resource tree: the cluster fills only what the tree left out, and refreshes only
-- what it filled itself. Rewriting the resources from a new tree clears both.

ALTER TABLE resources ADD COLUMN health_from_cluster BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE resources ADD COLUMN images_from_cluster BOOLEAN NOT NULL DEFAULT FALSE;
