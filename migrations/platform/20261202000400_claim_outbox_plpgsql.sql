-- claim_outbox was a SQL function: with SECURITY DEFINER and its own search path PostgreSQL
-- cannot inline it, and before version 18 it parses and plans a non-inlined SQL function's
-- body on every call. The relay calls it every few milliseconds under load, so that planning
-- showed as machine CPU per recorded service. The same statement in PL/pgSQL is planned once
-- per connection and its plan kept.
CREATE OR REPLACE FUNCTION platform.claim_outbox(batch bigint)
RETURNS TABLE (seq bigint, id uuid, tenant_id uuid, event_type text, source text, subject text,
               occurred_at timestamptz, payload bytea, traceparent text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    DELETE FROM platform.outbox o WHERE o.id IN (
        SELECT p.id FROM platform.outbox p WHERE p.published_at IS NULL
         ORDER BY p.seq LIMIT batch FOR UPDATE SKIP LOCKED
    )
    RETURNING o.seq, o.id, o.tenant_id, o.event_type, o.source, o.subject, o.occurred_at,
              o.payload, o.traceparent;
END
$$;
