-- A check in two statements, each outside a transaction (platform::db::TenantStatements): the
-- client's facts with the tenant's services, then the check stored. Each function enters the
-- tenant (transaction-local, so for its statement only) and then reads or writes under the
-- tables' policies, as the services' role (SECURITY INVOKER). A check took four round trips
-- (BEGIN with the tenant, the read, the insert, COMMIT); it takes two, or one when the replica
-- holds the client's facts.

-- What is known of a client (of its deliveries, those of the services coded `codes` from
-- `since`; every one when null) and the live services of `service_ids` (all when null), all
-- seen at one moment: the function is STABLE, so its queries share the statement's snapshot.
CREATE FUNCTION eligibility.read_facts(
    tenant uuid, client uuid, service_ids uuid[], codes text[], since date
) RETURNS TABLE (
    client_facts jsonb, assessments jsonb, barriers jsonb, enrollments jsonb,
    deliveries jsonb, services jsonb
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    RETURN QUERY SELECT
        (SELECT jsonb_build_object('birth_date', c.birth_date, 'veteran', c.veteran,
            'deleted', c.deleted) FROM eligibility.clients c WHERE c.id = client),
        coalesce((SELECT jsonb_agg(jsonb_build_array(a.id, a.type_code, a.assessment_date,
            a.answers)) FROM eligibility.assessments a WHERE a.client_id = client), '[]'),
        coalesce((SELECT jsonb_agg(jsonb_build_array(b.id, b.type_code, b.status,
            b.identified_date, b.resolved_date)) FROM eligibility.barriers b
            WHERE b.client_id = client), '[]'),
        coalesce((SELECT jsonb_agg(jsonb_build_array(e.id, coalesce(p.code, ''), e.entry_date,
            e.exit_date)) FROM eligibility.enrollments e LEFT JOIN eligibility.programs p
            ON p.tenant_id = e.tenant_id AND p.id = e.program_id
            WHERE e.client_id = client), '[]'),
        coalesce((SELECT jsonb_agg(jsonb_build_array(d.id, coalesce(s.code, ''),
            d.service_date, d.units::text, d.value::text)) FROM eligibility.deliveries d
            LEFT JOIN eligibility.services s ON s.tenant_id = d.tenant_id AND s.id = d.service_id
            WHERE d.client_id = client AND NOT d.deleted
              AND (codes IS NULL OR s.code = ANY(codes))
              AND (since IS NULL OR d.service_date >= since)), '[]'),
        coalesce((SELECT jsonb_agg(jsonb_build_array(s.id, s.code, s.organization_ids))
            FROM eligibility.services s WHERE NOT s.deleted
            AND (service_ids IS NULL OR s.id = ANY(service_ids))), '[]');
END
$$;

REVOKE ALL ON FUNCTION eligibility.read_facts(uuid, uuid, uuid[], text[], date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eligibility.read_facts(uuid, uuid, uuid[], text[], date)
    TO caseway_app;

-- Stores a check with the snapshot of facts its decisions were taken on (the snapshot once
-- per digest), unless the same check (`check_digest`) is stored already; answers the stored
-- check's id, decider and time either way. A check stored at the same moment by another
-- statement is waited for, then read by a statement of its own, which sees it committed.
CREATE FUNCTION eligibility.store_check(
    tenant uuid, snapshot_digest bytea, client uuid, snapshot jsonb, new_id uuid, on_date date,
    decided_services uuid[], decided_rules uuid[], decided_versions integer[],
    decided_outcomes smallint[], criteria_results jsonb, decider text, decided timestamptz,
    check_digest bytea
) RETURNS TABLE (stored_id uuid, stored_by text, stored_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    INSERT INTO eligibility.fact_snapshots (tenant_id, digest, client_id, facts)
    VALUES (tenant, snapshot_digest, client, snapshot)
    ON CONFLICT (tenant_id, digest) DO NOTHING;
    RETURN QUERY INSERT INTO eligibility.checks AS c (tenant_id, id, client_id, as_of,
        facts_digest, service_ids, rule_ids, rule_versions, outcomes, results, decided_by,
        decided_at, digest)
    VALUES (tenant, new_id, client, on_date, snapshot_digest, decided_services, decided_rules,
        decided_versions, decided_outcomes, criteria_results, decider, decided, check_digest)
    ON CONFLICT (tenant_id, digest) DO NOTHING
    RETURNING c.id, c.decided_by, c.decided_at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT c.id, c.decided_by, c.decided_at FROM eligibility.checks c
            WHERE c.tenant_id = tenant AND c.digest = check_digest;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION eligibility.store_check(uuid, bytea, uuid, jsonb, uuid, date, uuid[],
    uuid[], integer[], smallint[], jsonb, text, timestamptz, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eligibility.store_check(uuid, bytea, uuid, jsonb, uuid, date, uuid[],
    uuid[], integer[], smallint[], jsonb, text, timestamptz, bytea) TO caseway_app;
