-- Name search that indexes can serve under row-level security.
--
-- PostgreSQL evaluates a query's own conditions after a row-level security policy unless every
-- function they call is LEAKPROOF. pg_trgm's `%` and even lower() are not, so for the application
-- role a trigram GIN index on clients.clients is never used and a name search reads every row
-- of the tenant. Name search therefore goes through plain equality, which is leakproof:
--
-- * each client carries normalised keys of its first, last and preferred names;
-- * a per-tenant vocabulary of those keys is kept as rows of (trigram, term) and of
--   (deletion variant, term): a query phrase finds similar terms by trigram overlap (pg_trgm's
--   similarity, counted with a btree) and terms one edit away (a dropped, added, changed or
--   swapped letter, which trigrams miss in short names) by shared deletion variants;
-- * clients are then found by exact keys.
--
-- Terms are added by a trigger and never removed: a stale term only costs a lookup that finds
-- nobody.

CREATE FUNCTION clients.name_key(name text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN btrim(regexp_replace(lower(name), '[^[:alnum:]]+', ' ', 'g'));

-- The term and every string made by dropping one of its letters (terms of three or more).
CREATE FUNCTION clients.name_variants(term text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT term
        UNION
        SELECT left(term, i - 1) || substr(term, i + 1)
          FROM generate_series(1, length(term)) AS i
         WHERE length(term) >= 3
    );

ALTER TABLE clients.clients
    ADD COLUMN first_key text GENERATED ALWAYS AS (clients.name_key(first_name)) STORED,
    ADD COLUMN last_key text GENERATED ALWAYS AS (clients.name_key(last_name)) STORED,
    ADD COLUMN preferred_key text GENERATED ALWAYS AS (clients.name_key(preferred_name)) STORED;

DROP INDEX clients.clients_search_name;
ALTER TABLE clients.clients DROP COLUMN search_name;

CREATE INDEX clients_last_first ON clients.clients (tenant_id, last_key, first_key, id)
    WHERE deleted_at IS NULL;
CREATE INDEX clients_first ON clients.clients (tenant_id, first_key, id)
    WHERE deleted_at IS NULL;
CREATE INDEX clients_preferred_last ON clients.clients (tenant_id, preferred_key, last_key, id)
    WHERE deleted_at IS NULL AND preferred_key <> '';

CREATE TABLE clients.name_term_grams (
    tenant_id uuid     NOT NULL,
    gram      text     NOT NULL,
    term      text     NOT NULL,
    -- How many distinct trigrams the term has, for the similarity ratio.
    grams     smallint NOT NULL,
    PRIMARY KEY (tenant_id, gram, term) INCLUDE (grams)
);

CREATE TABLE clients.name_term_variants (
    tenant_id uuid NOT NULL,
    variant   text NOT NULL,
    term      text NOT NULL,
    PRIMARY KEY (tenant_id, variant, term)
);

-- Adds the terms the tenant's vocabulary lacks.
CREATE FUNCTION clients.add_name_terms(tenant uuid, terms text[]) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    INSERT INTO clients.name_term_grams (tenant_id, gram, term, grams)
    SELECT tenant, g, t, cardinality(show_trgm(t))
      FROM (SELECT DISTINCT t FROM unnest(terms) AS t WHERE t <> '') AS new_terms,
           unnest(show_trgm(t)) AS g
     WHERE NOT EXISTS (SELECT 1 FROM clients.name_term_variants k
                        WHERE k.tenant_id = tenant AND k.variant = t AND k.term = t)
    ON CONFLICT DO NOTHING;
    INSERT INTO clients.name_term_variants (tenant_id, variant, term)
    SELECT tenant, v, t
      FROM (SELECT DISTINCT t FROM unnest(terms) AS t WHERE t <> '') AS new_terms,
           unnest(clients.name_variants(t)) AS v
     WHERE NOT EXISTS (SELECT 1 FROM clients.name_term_variants k
                        WHERE k.tenant_id = tenant AND k.variant = t AND k.term = t)
    ON CONFLICT DO NOTHING;
END;

CREATE FUNCTION clients.keep_name_terms() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM clients.add_name_terms(NEW.tenant_id, ARRAY[NEW.first_key, NEW.last_key, NEW.preferred_key]);
    RETURN NULL;
END
$$;

CREATE TRIGGER keep_name_terms
    AFTER INSERT OR UPDATE OF first_name, last_name, preferred_name ON clients.clients
    FOR EACH ROW EXECUTE FUNCTION clients.keep_name_terms();

ALTER TABLE clients.name_term_grams ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_grams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.name_term_grams
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

ALTER TABLE clients.name_term_variants ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_variants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.name_term_variants
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());

GRANT SELECT, INSERT ON clients.name_term_grams, clients.name_term_variants TO caseway_app;

-- The vocabulary of clients stored before this migration (the owner, with the policies lifted
-- for the length of this transaction).
ALTER TABLE clients.clients NO FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_grams NO FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_variants NO FORCE ROW LEVEL SECURITY;
SELECT clients.add_name_terms(tenant_id, array_agg(DISTINCT k))
  FROM clients.clients, unnest(ARRAY[first_key, last_key, preferred_key]) AS k
 GROUP BY tenant_id;
ALTER TABLE clients.clients FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_grams FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_variants FORCE ROW LEVEL SECURITY;
