-- Tickets of the help desk inside the product, and their notes. A ticket is its
-- organization's (tenant_isolation, as every table); once escalated, the hosting provider's
-- support desk sees and works it too, under its own role (the support role migration): its
-- policies show it escalated tickets of every tenant and their notes, and nothing else.
-- Internal notes are support's alone: the services' role, which every tenant's transaction
-- runs as, neither reads nor writes one.

CREATE SCHEMA ticketing;
GRANT USAGE ON SCHEMA ticketing TO caseway_app, caseway_support;

CREATE TABLE ticketing.tickets (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    -- 1 issue, 2 question, 3 suggestion.
    kind                 smallint    NOT NULL CHECK (kind BETWEEN 1 AND 3),
    title                text        NOT NULL,
    description          text        NOT NULL,
    -- {area, rpc, request_id, trace_id, client_application, client_version}
    context              jsonb       NOT NULL,
    -- {name, email, phone, preferred}
    contact              jsonb       NOT NULL,
    -- 1 submitted, 2 waiting on user, 3 escalated, 4 in progress, 5 waiting on customer,
    -- 6 resolved.
    status               smallint    NOT NULL CHECK (status BETWEEN 1 AND 6),
    submitted_by         text        NOT NULL,
    -- 1 low .. 4 critical, set when escalated.
    severity             smallint    CHECK (severity BETWEEN 1 AND 4),
    -- Set at triage: 1 low .. 3 high; 1 low .. 4 urgent; the tier, 1 to 3.
    complexity           smallint    CHECK (complexity BETWEEN 1 AND 3),
    priority             smallint    CHECK (priority BETWEEN 1 AND 4),
    tier                 smallint    CHECK (tier BETWEEN 1 AND 3),
    tier_override_reason text,
    resolution           text,
    resolved_by          text,
    -- Whether support resolved it last: a reopening returns it to support's work.
    resolved_by_support  boolean     NOT NULL DEFAULT false,
    escalated_at         timestamptz,
    resolved_at          timestamptz,
    version              bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- The organization's queue, a submitter's own tickets, and the support queue.
CREATE INDEX tickets_organization ON ticketing.tickets (tenant_id, created_at DESC, id DESC);
CREATE INDEX tickets_submitter ON ticketing.tickets (tenant_id, submitted_by, created_at DESC, id DESC);
CREATE INDEX tickets_support ON ticketing.tickets
    (coalesce(tier, 0), (-coalesce(priority, 0)), escalated_at, id) WHERE escalated_at IS NOT NULL;

CREATE TABLE ticketing.notes (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    ticket_id  uuid        NOT NULL,
    -- 1 public, 2 internal (support only).
    visibility smallint    NOT NULL CHECK (visibility IN (1, 2)),
    body       text        NOT NULL,
    author     text        NOT NULL,
    by_support boolean     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticketing.tickets (tenant_id, id)
);
CREATE INDEX notes_ticket ON ticketing.notes (tenant_id, ticket_id, created_at, id);

ALTER TABLE ticketing.tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticketing.tickets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticketing.tickets
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
-- Support sees escalated tickets of every tenant, and only those, whatever tenant its
-- transaction acts for.
CREATE POLICY support_desk ON ticketing.tickets TO caseway_support
    USING (escalated_at IS NOT NULL)
    WITH CHECK (escalated_at IS NOT NULL);
CREATE POLICY support_escalated_only ON ticketing.tickets AS RESTRICTIVE TO caseway_support
    USING (escalated_at IS NOT NULL)
    WITH CHECK (escalated_at IS NOT NULL);

ALTER TABLE ticketing.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticketing.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticketing.notes
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
-- Support's notes are those of the tickets it sees (the tickets' policies decide which).
CREATE POLICY support_desk ON ticketing.notes TO caseway_support
    USING (EXISTS (SELECT FROM ticketing.tickets t
                   WHERE t.tenant_id = notes.tenant_id AND t.id = notes.ticket_id))
    WITH CHECK (EXISTS (SELECT FROM ticketing.tickets t
                        WHERE t.tenant_id = notes.tenant_id AND t.id = notes.ticket_id));
CREATE POLICY support_escalated_only ON ticketing.notes AS RESTRICTIVE TO caseway_support
    USING (EXISTS (SELECT FROM ticketing.tickets t
                   WHERE t.tenant_id = notes.tenant_id AND t.id = notes.ticket_id))
    WITH CHECK (EXISTS (SELECT FROM ticketing.tickets t
                        WHERE t.tenant_id = notes.tenant_id AND t.id = notes.ticket_id));
-- A tenant's transactions read and write public notes only.
CREATE POLICY public_notes_only ON ticketing.notes AS RESTRICTIVE TO caseway_app
    USING (visibility = 1)
    WITH CHECK (visibility = 1);

GRANT SELECT, INSERT, UPDATE ON ticketing.tickets TO caseway_app;
GRANT SELECT, INSERT ON ticketing.notes TO caseway_app;
GRANT SELECT, UPDATE ON ticketing.tickets TO caseway_support;
GRANT SELECT, INSERT ON ticketing.notes TO caseway_support;
