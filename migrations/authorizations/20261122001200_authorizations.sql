-- Service authorizations and their drawdown. The catalog's and the clients service's ids are
-- kept as they were checked (no foreign keys across services).

CREATE SCHEMA authorizations;
GRANT USAGE ON SCHEMA authorizations TO caseway_app;

CREATE TABLE authorizations.authorizations (
    tenant_id            uuid           NOT NULL,
    id                   uuid           NOT NULL,
    client_id            uuid           NOT NULL,
    service_id           uuid           NOT NULL,
    grant_id             uuid           NOT NULL,
    begin_date           date           NOT NULL,
    end_date             date           NOT NULL,
    unit_of_measure      text           NOT NULL,
    units_per_occurrence numeric(18, 4) NOT NULL CHECK (units_per_occurrence > 0),
    unit_value           numeric(18, 4) NOT NULL CHECK (unit_value >= 0),
    -- The rule in canonical form and the dates it gives within the period.
    recurrence           text           NOT NULL,
    occurrences          date[]         NOT NULL,
    authorized_units     numeric(18, 4) NOT NULL,
    authorized_value     numeric(18, 4) NOT NULL,
    reason_id            uuid,
    goal_id              uuid,
    reason               text           NOT NULL DEFAULT '',
    goals                text           NOT NULL DEFAULT '',
    -- 1 pending, 2 approved, 3 denied, 4 cancelled, 5 closed.
    status               smallint       NOT NULL CHECK (status BETWEEN 1 AND 5),
    requested_by         text           NOT NULL,
    decided_by           text,
    decision_reason      text,
    decided_at           timestamptz,
    -- The drawdown, kept with the draws under this row's lock: units counted against the
    -- authorization (per record, the greater of its hold and its delivery), and what the
    -- records' events confirmed.
    committed_units      numeric(18, 4) NOT NULL DEFAULT 0,
    delivered_units      numeric(18, 4) NOT NULL DEFAULT 0,
    delivered_value      numeric(18, 4) NOT NULL DEFAULT 0,
    version              bigint         NOT NULL DEFAULT 1,
    created_at           timestamptz    NOT NULL DEFAULT now(),
    updated_at           timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (end_date >= begin_date),
    CHECK (authorized_units = units_per_occurrence * cardinality(occurrences)),
    CHECK (authorized_value = authorized_units * unit_value)
);
-- A client's authorizations, newest first.
CREATE INDEX authorizations_client ON authorizations.authorizations
    (tenant_id, client_id, created_at DESC, id DESC);
-- The worker that closes approved authorizations whose end date has passed.
CREATE INDEX authorizations_expiring ON authorizations.authorizations (end_date)
    WHERE status = 2;

-- What each service record draws from an authorization: the units held for it while it is
-- being stored (with the record version they were held for) and the units and value its
-- latest event confirmed (with that event's record version, so a late event changes nothing).
CREATE TABLE authorizations.draws (
    tenant_id         uuid           NOT NULL,
    authorization_id  uuid           NOT NULL,
    service_record_id uuid           NOT NULL,
    service_date      date           NOT NULL,
    held_units        numeric(18, 4) NOT NULL DEFAULT 0 CHECK (held_units >= 0),
    held_version      bigint         NOT NULL DEFAULT 0,
    delivered_units   numeric(18, 4) NOT NULL DEFAULT 0 CHECK (delivered_units >= 0),
    delivered_value   numeric(18, 4) NOT NULL DEFAULT 0,
    record_version    bigint         NOT NULL DEFAULT 0,
    created_at        timestamptz    NOT NULL DEFAULT now(),
    updated_at        timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, authorization_id, service_record_id),
    FOREIGN KEY (tenant_id, authorization_id)
        REFERENCES authorizations.authorizations (tenant_id, id)
);

-- The workers read every tenant's approved authorizations (to close what has ended) and
-- unconfirmed holds (to give back those whose record never came) under the system scope;
-- everything else sees its own tenant only.
ALTER TABLE authorizations.authorizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE authorizations.authorizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON authorizations.authorizations
    USING (tenant_id = platform.current_tenant() OR platform.is_system())
    WITH CHECK (tenant_id = platform.current_tenant() OR platform.is_system());

ALTER TABLE authorizations.draws ENABLE ROW LEVEL SECURITY;
ALTER TABLE authorizations.draws FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON authorizations.draws
    USING (tenant_id = platform.current_tenant() OR platform.is_system())
    WITH CHECK (tenant_id = platform.current_tenant() OR platform.is_system());
-- Unconfirmed holds, for the worker.
CREATE INDEX draws_unconfirmed ON authorizations.draws (updated_at)
    WHERE held_units > 0;

GRANT SELECT, INSERT, UPDATE ON authorizations.authorizations TO caseway_app;
GRANT SELECT, INSERT, UPDATE ON authorizations.draws TO caseway_app;
