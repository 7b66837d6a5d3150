-- Service records: deliveries to clients, turn-aways and indirect services. The catalog's and
-- the clients service's ids are kept as they were checked at recording (no foreign keys across
-- services); the service's group and the enrollment's program are copied for totals.

CREATE SCHEMA records;
GRANT USAGE ON SCHEMA records TO caseway_app;

CREATE TABLE records.service_records (
    tenant_id           uuid          NOT NULL,
    id                  uuid          NOT NULL,
    -- 1 delivered, 2 turn-away, 3 indirect.
    kind                smallint      NOT NULL CHECK (kind IN (1, 2, 3)),
    client_id           uuid,
    service_id          uuid          NOT NULL,
    service_group_id    uuid,
    service_date        date          NOT NULL,
    grant_id            uuid,
    enrollment_id       uuid,
    program_id          uuid,
    provider_id         uuid,
    units               numeric(18, 4),
    unit_value          numeric(18, 4),
    value               numeric(18, 4),
    reason_id           uuid,
    goal_id             uuid,
    referral_plan_id    uuid,
    barrier_id          uuid,
    comments            text          NOT NULL DEFAULT '',
    turn_away_reason_id uuid,
    people_reached      integer,
    authorization_id    uuid,
    recorded_by         text          NOT NULL,
    version             bigint        NOT NULL DEFAULT 1,
    created_at          timestamptz   NOT NULL DEFAULT now(),
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    deleted_reason      text,
    PRIMARY KEY (tenant_id, id),
    -- A delivery has a client and units; a turn-away a client and a reason, no units; an
    -- indirect service no client and a count of people.
    CHECK (kind <> 1 OR (client_id IS NOT NULL AND units > 0 AND turn_away_reason_id IS NULL)),
    CHECK (kind <> 2 OR (client_id IS NOT NULL AND units IS NULL AND turn_away_reason_id IS NOT NULL)),
    CHECK (kind <> 3 OR (client_id IS NULL AND people_reached > 0 AND units > 0)),
    CHECK (value IS NOT DISTINCT FROM units * unit_value)
);
-- A client's history, newest first.
CREATE INDEX service_records_client ON records.service_records
    (tenant_id, client_id, service_date DESC, id DESC) WHERE deleted_at IS NULL;
-- Totals over a date range.
CREATE INDEX service_records_date ON records.service_records (tenant_id, service_date)
    WHERE deleted_at IS NULL;

ALTER TABLE records.service_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records.service_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records.service_records
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON records.service_records TO caseway_app;
