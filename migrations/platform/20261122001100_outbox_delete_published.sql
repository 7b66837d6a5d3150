-- The relay deletes what it published instead of marking it: a published event lives in the
-- broker (and a consumer's dead-letter queue), and a delete writes less than an update that
-- copies the row. Rows published before this change go now.
GRANT DELETE ON platform.outbox TO caseway_app;
DELETE FROM platform.outbox WHERE published_at IS NOT NULL;
