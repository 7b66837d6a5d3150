-- The HUD HMIS CSV export: the tenant administrator's mappings from the tenant's codes to HUD's
-- values, the settings no code list holds, and the exports run as jobs.

CREATE SCHEMA hmis;
GRANT USAGE ON SCHEMA hmis TO caseway_app;

-- subject: 1 gender, 2 race, 3 ethnicity, 4 service, 5 program, 6 grant, 7 exit destination
-- (the proto's Subject).
CREATE TABLE hmis.mappings (
    tenant_id         uuid        NOT NULL,
    subject           smallint    NOT NULL CHECK (subject BETWEEN 1 AND 7),
    code              text        NOT NULL,
    value             integer     NOT NULL,
    record_type       integer     NOT NULL DEFAULT 0,
    continuum_project boolean     NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject, code)
);

CREATE TABLE hmis.settings (
    tenant_id               uuid        NOT NULL PRIMARY KEY,
    coc_code                text        NOT NULL,
    victim_service_provider boolean     NOT NULL,
    source_name             text        NOT NULL DEFAULT '',
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hmis.exports (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    start_date    date        NOT NULL,
    end_date      date        NOT NULL,
    include_ssn   boolean     NOT NULL,
    state         text        NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    files_written integer     NOT NULL DEFAULT 0,
    rows_written  bigint      NOT NULL DEFAULT 0,
    -- [{name, rows, bytes, sha256}], [{subject, code, rows}], [{reason, rows}]
    files         jsonb       NOT NULL DEFAULT '[]',
    unmapped      jsonb       NOT NULL DEFAULT '[]',
    skipped       jsonb       NOT NULL DEFAULT '[]',
    error         text        NOT NULL DEFAULT '',
    started_by    text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    -- A running export's node writes this as it goes; one silent for a minute has died.
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (end_date >= start_date)
);
-- One running export per range and SSN choice: a second start joins it.
CREATE UNIQUE INDEX exports_one_running ON hmis.exports (tenant_id, start_date, end_date, include_ssn)
    WHERE state = 'running';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['mappings', 'settings', 'exports'] LOOP
        EXECUTE format('ALTER TABLE hmis.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE hmis.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON hmis.%I '
            'USING (tenant_id = platform.current_tenant()) '
            'WITH CHECK (tenant_id = platform.current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON hmis.%I TO caseway_app', t);
    END LOOP;
END
$$;
GRANT DELETE ON hmis.mappings TO caseway_app;
