-- Totals by day, so GetServiceTotals reads a few rows a day instead of every record in its
-- range. A trigger on service_records writes each change of what the totals count (a record
-- added, or its day, kind, service, group, grant, program, client, units, value, people or
-- deletion changed) to records.totals_changes in the writing transaction: an insert, never an
-- update of a shared row, so writers never wait on one another for it. records.fold_totals
-- folds those changes into records.daily_totals (a worker of the records target does it
-- every second, and GetServiceTotals before it reads, so its answer counts every record
-- committed before the call).
--
-- A row of daily_totals sums one day's records of one kind, service, service group, grant
-- and program (the nil UUID standing for none, so the key has no NULLs), and holds the
-- numbers of the distinct clients among them (records.client_numbers numbers each client of
-- a tenant once), each with how many of the records are theirs: unduplicated counts over any
-- range and grouping are the size of the union of those sets, which the service takes.

CREATE TABLE records.client_numbers (
    tenant_id uuid    NOT NULL,
    client_id uuid    NOT NULL,
    number    integer NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
CREATE SEQUENCE records.client_number AS integer;

CREATE TABLE records.totals_changes (
    seq              bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        uuid          NOT NULL,
    service_date     date          NOT NULL,
    kind             smallint      NOT NULL,
    service_id       uuid          NOT NULL,
    service_group_id uuid          NOT NULL,
    grant_id         uuid          NOT NULL,
    program_id       uuid          NOT NULL,
    client_id        uuid,
    -- 1 adds the record's figures, -1 takes them away.
    sign             smallint      NOT NULL CHECK (sign IN (-1, 1)),
    units            numeric(18, 4) NOT NULL,
    value            numeric(18, 4) NOT NULL,
    people_reached   integer       NOT NULL
);

CREATE TABLE records.daily_totals (
    tenant_id        uuid      NOT NULL,
    service_date     date      NOT NULL,
    kind             smallint  NOT NULL,
    service_id       uuid      NOT NULL,
    service_group_id uuid      NOT NULL,
    grant_id         uuid      NOT NULL,
    program_id       uuid      NOT NULL,
    records          bigint    NOT NULL,
    units            numeric   NOT NULL,
    value            numeric   NOT NULL,
    people_reached   bigint    NOT NULL,
    -- The clients' numbers, ascending, and how many of the records each has (never 0).
    clients          integer[] NOT NULL,
    client_records   integer[] NOT NULL,
    -- The same numbers as 4-byte big-endian integers: what GetServiceTotals reads (PostgreSQL
    -- sends an array one element at a time, ten times slower for a year of a large tenant).
    client_set       bytea     NOT NULL,
    PRIMARY KEY (tenant_id, service_date, kind, service_id, service_group_id, grant_id,
                 program_id)
);

ALTER TABLE records.client_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE records.client_numbers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records.client_numbers
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
ALTER TABLE records.totals_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE records.totals_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records.totals_changes
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
ALTER TABLE records.daily_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE records.daily_totals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records.daily_totals
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

-- The services' role writes changes (through the trigger) and reads the totals; the fold
-- alone, as the platform's own role, writes the totals and numbers clients.
GRANT SELECT, INSERT ON records.totals_changes TO caseway_app;
GRANT SELECT ON records.daily_totals, records.client_numbers TO caseway_app;
GRANT USAGE ON SCHEMA records TO caseway_system;
GRANT SELECT, UPDATE, DELETE ON records.totals_changes TO caseway_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON records.daily_totals TO caseway_system;
GRANT SELECT, INSERT ON records.client_numbers TO caseway_system;
GRANT SELECT ON records.service_records TO caseway_system;
GRANT USAGE ON SEQUENCE records.client_number TO caseway_system;
CREATE POLICY system_role ON records.totals_changes TO caseway_system USING (true);
CREATE POLICY system_role ON records.daily_totals TO caseway_system USING (true);
CREATE POLICY system_role ON records.client_numbers TO caseway_system USING (true);
CREATE POLICY system_role ON records.service_records TO caseway_system USING (true);

-- What a service record adds to the totals: its changes when it is written.
CREATE FUNCTION records.record_totals_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    none CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    -- An update of nothing the totals count (comments, say) changes nothing.
    IF TG_OP = 'UPDATE' AND
       (OLD.service_date, OLD.kind, OLD.service_id, OLD.service_group_id, OLD.grant_id,
        OLD.program_id, OLD.client_id, OLD.units, OLD.value, OLD.people_reached,
        OLD.deleted_at IS NULL)
       IS NOT DISTINCT FROM
       (NEW.service_date, NEW.kind, NEW.service_id, NEW.service_group_id, NEW.grant_id,
        NEW.program_id, NEW.client_id, NEW.units, NEW.value, NEW.people_reached,
        NEW.deleted_at IS NULL) THEN
        RETURN NULL;
    END IF;
    -- The record as it was taken away (an update of a live record) and as it is added (a
    -- live record written); OLD is NULL on an insert.
    INSERT INTO records.totals_changes (tenant_id, service_date, kind, service_id,
        service_group_id, grant_id, program_id, client_id, sign, units, value, people_reached)
    SELECT (c.r).tenant_id, (c.r).service_date, (c.r).kind, (c.r).service_id,
           coalesce((c.r).service_group_id, none), coalesce((c.r).grant_id, none),
           coalesce((c.r).program_id, none), (c.r).client_id, c.sign,
           coalesce((c.r).units, 0), coalesce((c.r).value, 0),
           coalesce((c.r).people_reached, 0)
      FROM (VALUES (OLD, -1::smallint), (NEW, 1::smallint)) AS c(r, sign)
     WHERE (c.r).id IS NOT NULL AND (c.r).deleted_at IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER keep_totals AFTER INSERT OR UPDATE ON records.service_records
    FOR EACH ROW EXECUTE FUNCTION records.record_totals_change();

-- Folds the oldest `batch` changes of every tenant into daily_totals, one fold at a time
-- (a second waits for the first, then folds what is left); how many it folded.
CREATE FUNCTION records.fold_totals(batch integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    folded bigint;
BEGIN
    -- Nothing waiting (nor held by a fold still running, whose claimed rows are visible until
    -- it commits): no need to wait for the lock.
    IF NOT EXISTS (SELECT 1 FROM records.totals_changes) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7262101);
    -- The changes folded, in a table of the session's own, made once a connection.
    IF to_regclass('pg_temp.folding') IS NULL THEN
    CREATE TEMP TABLE folding (
        tenant_id uuid, service_date date, kind smallint, service_id uuid,
        service_group_id uuid, grant_id uuid, program_id uuid, client_id uuid, sign smallint,
        units numeric, value numeric, people_reached integer
    ) ON COMMIT DELETE ROWS;
    END IF;
    WITH claimed AS (
        DELETE FROM records.totals_changes c WHERE c.seq IN (
            SELECT p.seq FROM records.totals_changes p ORDER BY p.seq LIMIT batch
        )
        RETURNING c.tenant_id, c.service_date, c.kind, c.service_id, c.service_group_id,
                  c.grant_id, c.program_id, c.client_id, c.sign, c.units, c.value,
                  c.people_reached
    )
    INSERT INTO folding SELECT * FROM claimed;
    GET DIAGNOSTICS folded = ROW_COUNT;
    IF folded = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO records.client_numbers (tenant_id, client_id, number)
    SELECT DISTINCT ON (f.tenant_id, f.client_id) f.tenant_id, f.client_id,
           nextval('records.client_number')
      FROM folding f
     WHERE f.client_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM records.client_numbers n
                        WHERE n.tenant_id = f.tenant_id AND n.client_id = f.client_id)
    ON CONFLICT DO NOTHING;

    WITH sums AS (
        SELECT f.tenant_id, f.service_date, f.kind, f.service_id, f.service_group_id,
               f.grant_id, f.program_id, sum(f.sign) AS records,
               sum(f.sign * f.units) AS units, sum(f.sign * f.value) AS value,
               sum(f.sign * f.people_reached) AS people_reached
          FROM folding f
         GROUP BY 1, 2, 3, 4, 5, 6, 7
    ),
    members AS (
        SELECT k.tenant_id, k.service_date, k.kind, k.service_id, k.service_group_id,
               k.grant_id, k.program_id,
               array_agg(k.number ORDER BY k.number) FILTER (WHERE k.n <> 0) AS clients,
               array_agg(k.n ORDER BY k.number) FILTER (WHERE k.n <> 0) AS client_records,
               string_agg(int4send(k.number), ''::bytea ORDER BY k.number)
                 FILTER (WHERE k.n <> 0) AS client_set
          FROM (
            SELECT m.tenant_id, m.service_date, m.kind, m.service_id, m.service_group_id,
                   m.grant_id, m.program_id, m.number, sum(m.n)::integer AS n
              FROM (
                SELECT t.tenant_id, t.service_date, t.kind, t.service_id, t.service_group_id,
                       t.grant_id, t.program_id, u.number, u.n
                  FROM records.daily_totals t
                  JOIN sums s USING (tenant_id, service_date, kind, service_id,
                                     service_group_id, grant_id, program_id)
                 CROSS JOIN LATERAL unnest(t.clients, t.client_records) AS u(number, n)
                UNION ALL
                SELECT f.tenant_id, f.service_date, f.kind, f.service_id, f.service_group_id,
                       f.grant_id, f.program_id, n.number, f.sign
                  FROM folding f
                  JOIN records.client_numbers n
                    ON n.tenant_id = f.tenant_id AND n.client_id = f.client_id
              ) m
             GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
          ) k
         GROUP BY 1, 2, 3, 4, 5, 6, 7
    )
    INSERT INTO records.daily_totals AS t (tenant_id, service_date, kind, service_id,
        service_group_id, grant_id, program_id, records, units, value, people_reached,
        clients, client_records, client_set)
    SELECT s.tenant_id, s.service_date, s.kind, s.service_id, s.service_group_id, s.grant_id,
           s.program_id, s.records, s.units, s.value, s.people_reached,
           coalesce(m.clients, '{}'), coalesce(m.client_records, '{}'),
           coalesce(m.client_set, ''::bytea)
      FROM sums s
      LEFT JOIN members m USING (tenant_id, service_date, kind, service_id, service_group_id,
                                 grant_id, program_id)
    ON CONFLICT (tenant_id, service_date, kind, service_id, service_group_id, grant_id,
                 program_id)
    DO UPDATE SET records = t.records + excluded.records,
                  units = t.units + excluded.units,
                  value = t.value + excluded.value,
                  people_reached = t.people_reached + excluded.people_reached,
                  clients = excluded.clients,
                  client_records = excluded.client_records,
                  client_set = excluded.client_set;

    DELETE FROM records.daily_totals t
     USING (SELECT DISTINCT tenant_id, service_date, kind, service_id, service_group_id,
                   grant_id, program_id FROM folding) f
     WHERE t.tenant_id = f.tenant_id AND t.service_date = f.service_date AND t.kind = f.kind
       AND t.service_id = f.service_id AND t.service_group_id = f.service_group_id
       AND t.grant_id = f.grant_id AND t.program_id = f.program_id
       AND t.records = 0 AND cardinality(t.clients) = 0;
    TRUNCATE folding;
    RETURN folded;
END
$$;
ALTER FUNCTION records.fold_totals(integer) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION records.fold_totals(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION records.fold_totals(integer) TO caseway_app;

-- Builds daily_totals again from the records of every tenant, with the changes waiting
-- dropped (they are in the records already): after a bulk load with the trigger off, and
-- below for the records stored before this migration.
CREATE FUNCTION records.rebuild_totals()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    none CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    PERFORM pg_advisory_xact_lock(7262101);
    DELETE FROM records.totals_changes;
    DELETE FROM records.daily_totals;
    INSERT INTO records.client_numbers (tenant_id, client_id, number)
    SELECT c.tenant_id, c.client_id, nextval('records.client_number')
      FROM (SELECT DISTINCT r.tenant_id, r.client_id FROM records.service_records r
             WHERE r.client_id IS NOT NULL AND r.deleted_at IS NULL) c
     WHERE NOT EXISTS (SELECT 1 FROM records.client_numbers n
                        WHERE n.tenant_id = c.tenant_id AND n.client_id = c.client_id);
    INSERT INTO records.daily_totals (tenant_id, service_date, kind, service_id,
        service_group_id, grant_id, program_id, records, units, value, people_reached,
        clients, client_records, client_set)
    SELECT k.tenant_id, k.service_date, k.kind, k.service_id, k.service_group_id, k.grant_id,
           k.program_id, sum(k.records), sum(k.units), sum(k.value), sum(k.people_reached),
           coalesce(array_agg(k.number ORDER BY k.number) FILTER (WHERE k.number IS NOT NULL),
                    '{}'),
           coalesce(array_agg(k.records ORDER BY k.number) FILTER (WHERE k.number IS NOT NULL),
                    '{}'),
           coalesce(string_agg(int4send(k.number), ''::bytea ORDER BY k.number)
                      FILTER (WHERE k.number IS NOT NULL), ''::bytea)
      FROM (
        SELECT r.tenant_id, r.service_date, r.kind, r.service_id,
               coalesce(r.service_group_id, none) AS service_group_id,
               coalesce(r.grant_id, none) AS grant_id,
               coalesce(r.program_id, none) AS program_id, n.number,
               count(*)::integer AS records, coalesce(sum(r.units), 0) AS units,
               coalesce(sum(r.value), 0) AS value,
               coalesce(sum(r.people_reached), 0) AS people_reached
          FROM records.service_records r
          LEFT JOIN records.client_numbers n
            ON n.tenant_id = r.tenant_id AND n.client_id = r.client_id
         WHERE r.deleted_at IS NULL
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
      ) k
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
END
$$;
ALTER FUNCTION records.rebuild_totals() OWNER TO caseway_system;
REVOKE ALL ON FUNCTION records.rebuild_totals() FROM PUBLIC;

SELECT records.rebuild_totals();
