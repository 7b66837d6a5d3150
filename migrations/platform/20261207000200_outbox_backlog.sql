-- What an operator watches of the outbox: how many events wait (counted up to a cap, so a
-- large backlog costs a bounded scan) and when the oldest of them was written. Across
-- tenants, so through the platform's own role as the relay's claim is.
CREATE FUNCTION platform.outbox_backlog(cap bigint)
RETURNS TABLE (events bigint, oldest timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT (SELECT count(*) FROM (SELECT 1 FROM platform.outbox o
                                   WHERE o.published_at IS NULL LIMIT cap) waiting),
           (SELECT o.occurred_at FROM platform.outbox o
             WHERE o.published_at IS NULL ORDER BY o.seq LIMIT 1);
END
$$;
ALTER FUNCTION platform.outbox_backlog(bigint) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION platform.outbox_backlog(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform.outbox_backlog(bigint) TO caseway_app;
