-- Enrollments: a client's episodes in the catalog's programs. At most one open enrollment per
-- client and program, enforced by a unique index as well as by the domain.

CREATE TABLE clients.enrollments (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    client_id        uuid        NOT NULL,
    program_id       uuid        NOT NULL,
    entry_date       date        NOT NULL,
    exit_date        date,
    exit_destination text        NOT NULL DEFAULT '',
    version          bigint      NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients.clients (tenant_id, id),
    CHECK (exit_date IS NULL OR exit_date >= entry_date)
);
CREATE UNIQUE INDEX enrollments_one_open ON clients.enrollments (tenant_id, client_id, program_id)
    WHERE exit_date IS NULL;
CREATE INDEX enrollments_client ON clients.enrollments (tenant_id, client_id, entry_date DESC);

ALTER TABLE clients.enrollments ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.enrollments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.enrollments
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT, UPDATE ON clients.enrollments TO caseway_app;
