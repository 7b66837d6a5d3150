-- A stored response of a form (Quick Services, a bulk recording) runs to kilobytes and is
-- compressed when written; lz4 does that several times faster than the default pglz. Column
-- compression needs PostgreSQL 14, and a server built without lz4 refuses it: both keep pglz.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE platform.idempotency_keys ALTER COLUMN response SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available; idempotent responses stay compressed with pglz';
END
$$;
