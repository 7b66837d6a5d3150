-- Screenshots attached to tickets, and support's reads of them. The image itself is in the
-- object store (the local file system or an S3-compatible store) under `object_key`; a row
-- says whose it is and whether it may leave the organization. Support sees an attachment only
-- once an administrator released it (confirmed or redacted) and only of an escalated ticket,
-- and every read of one by support is kept where the organization reads it.

CREATE TABLE ticketing.attachments (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    ticket_id    uuid        NOT NULL,
    file_name    text        NOT NULL,
    -- 1 PNG, 2 JPEG, 3 WebP.
    format       smallint    NOT NULL CHECK (format BETWEEN 1 AND 3),
    size_bytes   bigint      NOT NULL,
    width        integer     NOT NULL,
    height       integer     NOT NULL,
    sha256       bytea       NOT NULL,
    object_key   text        NOT NULL,
    uploaded_by  text        NOT NULL,
    -- 1 inside the organization, 2 confirmed, 3 redacted.
    release      smallint    NOT NULL DEFAULT 1 CHECK (release BETWEEN 1 AND 3),
    released_by  text,
    released_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticketing.tickets (tenant_id, id)
);
CREATE INDEX attachments_ticket ON ticketing.attachments (tenant_id, ticket_id, created_at, id);

CREATE TABLE ticketing.attachment_reads (
    tenant_id     uuid        NOT NULL,
    attachment_id uuid        NOT NULL,
    reader        text        NOT NULL,
    read_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, attachment_id) REFERENCES ticketing.attachments (tenant_id, id)
);
CREATE INDEX attachment_reads_attachment ON ticketing.attachment_reads (tenant_id, attachment_id, read_at);

ALTER TABLE ticketing.attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticketing.attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticketing.attachments
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
-- Support sees released attachments of the tickets it sees (escalated ones), and only those,
-- whatever tenant its transaction acts for; it never writes one.
CREATE POLICY support_desk ON ticketing.attachments FOR SELECT TO caseway_support
    USING (release > 1 AND EXISTS (SELECT FROM ticketing.tickets t
                                   WHERE t.tenant_id = attachments.tenant_id
                                     AND t.id = attachments.ticket_id));
CREATE POLICY support_released_only ON ticketing.attachments AS RESTRICTIVE TO caseway_support
    USING (release > 1 AND EXISTS (SELECT FROM ticketing.tickets t
                                   WHERE t.tenant_id = attachments.tenant_id
                                     AND t.id = attachments.ticket_id));

ALTER TABLE ticketing.attachment_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticketing.attachment_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticketing.attachment_reads
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
-- Support writes a read of an attachment it sees, for the tenant it acts for, and reads the
-- reads of the attachments it sees.
CREATE POLICY support_desk ON ticketing.attachment_reads TO caseway_support
    USING (EXISTS (SELECT FROM ticketing.attachments a
                   WHERE a.tenant_id = attachment_reads.tenant_id
                     AND a.id = attachment_reads.attachment_id))
    WITH CHECK (tenant_id = platform.current_tenant()
                AND EXISTS (SELECT FROM ticketing.attachments a
                            WHERE a.tenant_id = attachment_reads.tenant_id
                              AND a.id = attachment_reads.attachment_id));
CREATE POLICY support_released_only ON ticketing.attachment_reads AS RESTRICTIVE TO caseway_support
    USING (EXISTS (SELECT FROM ticketing.attachments a
                   WHERE a.tenant_id = attachment_reads.tenant_id
                     AND a.id = attachment_reads.attachment_id))
    WITH CHECK (tenant_id = platform.current_tenant()
                AND EXISTS (SELECT FROM ticketing.attachments a
                            WHERE a.tenant_id = attachment_reads.tenant_id
                              AND a.id = attachment_reads.attachment_id));

GRANT SELECT, INSERT, UPDATE ON ticketing.attachments TO caseway_app;
GRANT SELECT ON ticketing.attachment_reads TO caseway_app;
GRANT SELECT ON ticketing.attachments TO caseway_support;
GRANT SELECT, INSERT ON ticketing.attachment_reads TO caseway_support;
