-- A check is stored whole, in one row: each of its decisions (service, rule version, outcome
-- and every criterion's outcome) in arrays, its n-th decision named by the check's id ending
-- in n. Its decisions were all taken on one snapshot of what their rules read of the client's
-- facts, stored once under its SHA-256 (later checks on the same facts find it stored); the
-- facts each criterion read are read off the snapshot again by its rule version. One row and
-- one snapshot where `decisions` took a row, three index entries, a key check and a copy of
-- the facts per decision. Decisions stored before stay in `decisions` and are read there.
CREATE TABLE eligibility.fact_snapshots (
    tenant_id  uuid        NOT NULL,
    digest     bytea       NOT NULL,
    client_id  uuid        NOT NULL,
    facts      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, digest)
);

CREATE TABLE eligibility.checks (
    tenant_id     uuid        NOT NULL,
    -- A v7 UUID ending in 16 zero bits; decision n (from 1) is this id ending in n.
    id            uuid        NOT NULL,
    client_id     uuid        NOT NULL,
    as_of         date        NOT NULL,
    facts_digest  bytea       NOT NULL,
    -- Decision n: service_ids[n], rule_ids[n] at rule_versions[n], outcomes[n] (1 eligible,
    -- 2 not eligible, 3 undetermined), results->(n-1) its criteria's [{outcome, reason}].
    service_ids   uuid[]      NOT NULL,
    rule_ids      uuid[]      NOT NULL,
    rule_versions integer[]   NOT NULL,
    outcomes      smallint[]  NOT NULL,
    results       jsonb       NOT NULL,
    decided_by    text        NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of the client, the date, the snapshot and every decision: the same check taken
    -- again on the same facts is stored once, and answers as first stored.
    digest        bytea       NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, digest),
    CHECK (cardinality(service_ids) BETWEEN 1 AND 65535
           AND cardinality(rule_ids) = cardinality(service_ids)
           AND cardinality(rule_versions) = cardinality(service_ids)
           AND cardinality(outcomes) = cardinality(service_ids))
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['fact_snapshots', 'checks']
    LOOP
        EXECUTE format('ALTER TABLE eligibility.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE eligibility.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON eligibility.%I '
                       'USING (tenant_id = platform.current_tenant()) '
                       'WITH CHECK (tenant_id = platform.current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT ON eligibility.%I TO caseway_app', t);
    END LOOP;
END
$$;

-- Snapshots and checks run to kilobytes; lz4 compresses them several times faster than pglz
-- (PostgreSQL 14 and a server built with lz4; otherwise they stay pglz).
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE eligibility.fact_snapshots ALTER COLUMN facts SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE eligibility.checks ALTER COLUMN results SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available; snapshots and checks stay compressed with pglz';
END
$$;
