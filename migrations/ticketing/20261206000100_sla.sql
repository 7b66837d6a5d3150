-- Service levels and closing: an escalated ticket's two clocks (time to first response and to
-- resolution, standing still while support waits on the customer), the breach of each, and
-- CLOSED, which a resolved ticket becomes after the provider's number of days. Expand only:
-- the previous release writes none of these columns and never status 7.

ALTER TABLE ticketing.tickets
    ADD COLUMN first_responded_at         timestamptz,
    ADD COLUMN first_response_due         timestamptz,
    ADD COLUMN resolution_due             timestamptz,
    -- Since when the clocks stand still, and the business time they stood still before (in
    -- microseconds).
    ADD COLUMN sla_paused_at              timestamptz,
    ADD COLUMN sla_paused_micros          bigint      NOT NULL DEFAULT 0,
    ADD COLUMN first_response_breached_at timestamptz,
    ADD COLUMN resolution_breached_at     timestamptz,
    -- When a running clock runs out next; null when none runs (what the breach sweep reads).
    ADD COLUMN sla_next_due               timestamptz,
    ADD COLUMN closed_at                  timestamptz;

-- Tickets escalated before this change start their clocks at their next change, from their
-- escalation; one support waits on, or one resolved, stands still from when it last changed.
UPDATE ticketing.tickets SET sla_paused_at = updated_at
 WHERE escalated_at IS NOT NULL AND status IN (5, 6);

-- 7 closed. The check of 1 to 6 goes, and expanding cannot add its wider successor (a
-- constraint added while the previous release serves is refused by the expand-only rule):
-- the services refuse a code they do not know on every read, and the contract step after
-- this release restores the check as CHECK (status BETWEEN 1 AND 7).
ALTER TABLE ticketing.tickets DROP CONSTRAINT tickets_status_check;

-- The support queue: by tier, the most urgent priority first, then what is due soonest
-- (tickets whose clocks stand still last), the longest escalated first.
DROP INDEX ticketing.tickets_support;
CREATE INDEX tickets_support ON ticketing.tickets
    (coalesce(tier, 0), (-coalesce(priority, 0)),
     coalesce(sla_next_due, '9999-12-31 00:00:00+00'::timestamptz), escalated_at, id)
    WHERE escalated_at IS NOT NULL;
-- The sweeps: running clocks by when they run out, resolved tickets by when they were.
CREATE INDEX tickets_sla_next_due ON ticketing.tickets (sla_next_due) WHERE sla_next_due IS NOT NULL;
CREATE INDEX tickets_resolved ON ticketing.tickets (resolved_at) WHERE status = 6;

-- The sweeps find their tickets across tenants through functions owned by caseway_system (see
-- the platform's system role migration), then change each in its tenant's own scope.
GRANT USAGE, CREATE ON SCHEMA ticketing TO caseway_system;
-- SELECT ... FOR UPDATE takes the UPDATE privilege.
GRANT SELECT, UPDATE ON ticketing.tickets TO caseway_system;
CREATE POLICY system_role ON ticketing.tickets TO caseway_system USING (true);

-- Tickets of every tenant with a clock run out by `now`, soonest first, locked for the
-- caller's transaction and skipped when another holds them.
CREATE FUNCTION ticketing.sla_run_out(now timestamptz, page bigint)
RETURNS TABLE (tenant_id uuid, id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_id, t.id FROM ticketing.tickets t
     WHERE t.sla_next_due <= now
     ORDER BY t.sla_next_due LIMIT page FOR UPDATE SKIP LOCKED
$$;

-- Tickets of every tenant resolved before `before` and not reopened, oldest first, locked
-- likewise.
CREATE FUNCTION ticketing.resolved_before(before timestamptz, page bigint)
RETURNS TABLE (tenant_id uuid, id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_id, t.id FROM ticketing.tickets t
     WHERE t.status = 6 AND t.resolved_at < before
     ORDER BY t.resolved_at LIMIT page FOR UPDATE SKIP LOCKED
$$;

ALTER FUNCTION ticketing.sla_run_out(timestamptz, bigint) OWNER TO caseway_system;
ALTER FUNCTION ticketing.resolved_before(timestamptz, bigint) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION ticketing.sla_run_out(timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION ticketing.resolved_before(timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ticketing.sla_run_out(timestamptz, bigint) TO caseway_app;
GRANT EXECUTE ON FUNCTION ticketing.resolved_before(timestamptz, bigint) TO caseway_app;
