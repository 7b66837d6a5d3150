-- GetAuthorizationUtilization in one statement (platform::db::TenantRead; the clients
-- migration `client_read` says how such a read keeps to its tenant). Both functions are
-- STABLE, so called in one statement they read one snapshot: a drawdown committed meanwhile
-- shows in both or in neither.

-- An authorization by id.
CREATE FUNCTION authorizations.read_authorization(tenant uuid, authorization_id uuid)
RETURNS SETOF authorizations.authorizations
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    RETURN QUERY SELECT * FROM authorizations.authorizations a
        WHERE a.id = read_authorization.authorization_id;
END
$$;

-- What was delivered against an authorization: per service date, by date, the units and how
-- many records; and the records in all.
CREATE FUNCTION authorizations.read_deliveries(tenant uuid, authorization_id uuid)
RETURNS TABLE (delivery_dates date[], delivery_units numeric[], delivery_records bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    RETURN QUERY SELECT coalesce(array_agg(d.service_date ORDER BY d.service_date), '{}'),
            coalesce(array_agg(d.units ORDER BY d.service_date), '{}'),
            coalesce(sum(d.records), 0)::bigint
        FROM (SELECT w.service_date, sum(w.delivered_units) AS units, count(*) AS records
              FROM authorizations.draws w
              WHERE w.authorization_id = read_deliveries.authorization_id
                AND w.delivered_units > 0
              GROUP BY w.service_date) d;
END
$$;

REVOKE ALL ON FUNCTION authorizations.read_authorization(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION authorizations.read_deliveries(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authorizations.read_authorization(uuid, uuid) TO caseway_app;
GRANT EXECUTE ON FUNCTION authorizations.read_deliveries(uuid, uuid) TO caseway_app;
