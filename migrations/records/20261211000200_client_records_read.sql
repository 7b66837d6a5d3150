-- A page of a client's records in one statement (platform::db::TenantRead; the clients
-- migration `client_read` says how such a read keeps to its tenant). Newest first, after the
-- (service_date, id) of the last page, without the hidden services; a null filter matches
-- every record.
CREATE FUNCTION records.read_client_records(
    tenant uuid, client uuid, start_date date, end_date date, service uuid, service_group uuid,
    grant_id uuid, program uuid, enrollment uuid, record_kind smallint, after_date date,
    after_id uuid, page_limit bigint, hidden uuid[]
) RETURNS SETOF records.service_records
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    -- Planned for the filters given: a generic plan of the optional filters reads every
    -- record of the client.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    RETURN QUERY SELECT * FROM records.service_records r
        WHERE r.client_id = client AND r.deleted_at IS NULL
        AND (start_date IS NULL OR r.service_date >= start_date)
        AND (end_date IS NULL OR r.service_date <= end_date)
        AND (service IS NULL OR r.service_id = service)
        AND (service_group IS NULL OR r.service_group_id = service_group)
        AND (read_client_records.grant_id IS NULL OR r.grant_id = read_client_records.grant_id)
        AND (program IS NULL OR r.program_id = program)
        AND (enrollment IS NULL OR r.enrollment_id = enrollment)
        AND (record_kind IS NULL OR r.kind = record_kind)
        AND (after_date IS NULL OR (r.service_date, r.id) < (after_date, after_id))
        AND NOT (r.service_id = ANY (hidden))
        ORDER BY r.service_date DESC, r.id DESC
        LIMIT page_limit;
END
$$;

REVOKE ALL ON FUNCTION records.read_client_records(
    uuid, uuid, date, date, uuid, uuid, uuid, uuid, uuid, smallint, date, uuid, bigint, uuid[]
) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION records.read_client_records(
    uuid, uuid, date, date, uuid, uuid, uuid, uuid, uuid, smallint, date, uuid, bigint, uuid[]
) TO caseway_app;
