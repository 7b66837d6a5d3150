-- Reads of one statement (platform::db::TenantRead): the function enters the tenant
-- (transaction-local, so for this statement only) and then reads under the table's policy.
-- One round trip where BEGIN with the tenant, the query and COMMIT take three. It sees no
-- more than a transaction of that tenant would: the services' role, forced row-level
-- security, and the caller's tenant from the verified token.

-- A live client by id (GetClient without the whole SSN).
CREATE FUNCTION clients.read_client(tenant uuid, client uuid) RETURNS SETOF clients.clients
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    RETURN QUERY SELECT * FROM clients.clients c WHERE c.id = client AND c.deleted_at IS NULL;
END
$$;

REVOKE ALL ON FUNCTION clients.read_client(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clients.read_client(uuid, uuid) TO caseway_app;

-- Live clients by birth date, SSN blind index and last four digits (SearchClients without a
-- name), newest id first, below `before_id` for the next page; a null filter matches every
-- client.
CREATE FUNCTION clients.read_clients_by(
    tenant uuid, born date, hash bytea, last4 text, before_id uuid, page_limit bigint
) RETURNS SETOF clients.clients
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    -- Planned for the filters given: a generic plan of the optional filters reads every
    -- client of the tenant.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    RETURN QUERY SELECT * FROM clients.clients c
        WHERE c.deleted_at IS NULL
        AND (born IS NULL OR c.birth_date = born)
        AND (hash IS NULL OR c.ssn_hash = hash)
        AND (last4 IS NULL OR c.ssn_last4 = last4)
        AND (before_id IS NULL OR c.id < before_id)
        ORDER BY c.id DESC
        LIMIT page_limit;
END
$$;

REVOKE ALL ON FUNCTION clients.read_clients_by(uuid, date, bytea, text, uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clients.read_clients_by(uuid, date, bytea, text, uuid, bigint)
    TO caseway_app;
