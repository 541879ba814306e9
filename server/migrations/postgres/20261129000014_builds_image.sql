-- The CI runs that built the images a deployment started running are found by image
-- (what an environment's changes and a rollback plan list); without an index each such
-- question read every build.
CREATE INDEX builds_image ON builds (image_id);
