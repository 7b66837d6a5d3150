-- What an operator watches of the outbox: how many events wait (counted up to a cap, so a
-- large backlog costs a bounded scan) and how old the oldest of them is, in seconds by the
-- database's clock (the one that stamped it; 0 when none waits). Across tenants, so through
-- the platform's own role as the relay's claim is.
CREATE FUNCTION platform.outbox_backlog(cap bigint)
RETURNS TABLE (events bigint, oldest_age_seconds double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT (SELECT count(*) FROM (SELECT 1 FROM platform.outbox o
                                   WHERE o.published_at IS NULL LIMIT cap) waiting),
           coalesce((SELECT extract(epoch FROM clock_timestamp() - o.occurred_at)::double precision
                       FROM platform.outbox o
                      WHERE o.published_at IS NULL ORDER BY o.seq LIMIT 1), 0);
END
$$;
ALTER FUNCTION platform.outbox_backlog(bigint) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION platform.outbox_backlog(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform.outbox_backlog(bigint) TO caseway_app;
