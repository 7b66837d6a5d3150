-- A stored response of a form (Quick Services, a bulk recording) runs to kilobytes and is
-- compressed when written; lz4 does that several times faster than the default pglz. A server
-- built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE platform.idempotency_keys ALTER COLUMN response SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available; idempotent responses stay compressed with pglz';
END
$$;
