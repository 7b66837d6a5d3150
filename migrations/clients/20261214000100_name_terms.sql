-- Similar terms of a name search found through a trigram index instead of counted row by row.
--
-- A phrase's similar terms were counted from (trigram, term) rows: every row of every trigram
-- the phrase shares with the vocabulary, grouped per term. When a tenant's names share their
-- syllables (as coined names and many real ones do), one phrase met 10,000 to 20,000 such rows
-- and the count took 20 to 35 ms of a search. pg_trgm's GIN operator class does that count
-- inside the index, but PostgreSQL uses an index for `%` only where no row-level security
-- policy must be applied before it (the operator is not LEAKPROOF).
--
-- So the tenant's terms are kept one row each in clients.name_terms, with a GIN index of
-- (tenant, trigrams), and read by clients.similar_name_terms: a SECURITY DEFINER function
-- owned by caseway_system (whose policy on the table is `true`, so the index serves it) that
-- reads only the terms of the caller's tenant, as the transaction sets it, and nothing when
-- none is set. It returns terms, never clients: the clients a term names are read under the
-- caller's own policies.

-- No client is added or renamed from here until this migration commits (reads go on): a term
-- added meanwhile by the previous add_name_terms, which knows no name_terms, would be missed by
-- the copy below.
LOCK TABLE clients.clients IN SHARE MODE;

CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE clients.name_terms (
    tenant_id uuid     NOT NULL,
    term      text     NOT NULL,
    -- How many distinct trigrams the term has (pg_trgm's count), for the similarity ratio.
    grams     smallint NOT NULL,
    PRIMARY KEY (tenant_id, term)
);

ALTER TABLE clients.name_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients.name_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients.name_terms
    USING (tenant_id = platform.current_tenant())
    WITH CHECK (tenant_id = platform.current_tenant());
GRANT SELECT, INSERT ON clients.name_terms TO caseway_app;

-- CREATE: the owner hands caseway_system a function of this schema (below).
GRANT USAGE, CREATE ON SCHEMA clients TO caseway_system;
GRANT SELECT ON clients.name_terms TO caseway_system;
CREATE POLICY system_role ON clients.name_terms TO caseway_system USING (true);

-- The terms of clients stored before this migration (the owner, with the policies lifted for
-- the length of this transaction): every term has itself among its variants.
ALTER TABLE clients.name_terms NO FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_variants NO FORCE ROW LEVEL SECURITY;
INSERT INTO clients.name_terms (tenant_id, term, grams)
SELECT tenant_id, term, cardinality(show_trgm(term))
  FROM clients.name_term_variants
 WHERE variant = term;
ALTER TABLE clients.name_terms FORCE ROW LEVEL SECURITY;
ALTER TABLE clients.name_term_variants FORCE ROW LEVEL SECURITY;

-- Built once the terms are in (a tenth of the time of adding them one by one to the index).
-- New terms are rare once a tenant's vocabulary has grown, and a pending list would be read by
-- every search until vacuumed: entries go straight into the index.
CREATE INDEX name_terms_trigrams ON clients.name_terms
    USING gin (tenant_id, term gin_trgm_ops) WITH (fastupdate = off);

-- Adds the terms the tenant's vocabulary lacks, with the one-letter deletions of each term it
-- added (a term another transaction added first is left to it), and its (trigram, term) rows,
-- which the previous version reads while an upgrade rolls out (a later release drops them).
CREATE OR REPLACE FUNCTION clients.add_name_terms(tenant uuid, terms text[]) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    WITH added AS (
        INSERT INTO clients.name_terms (tenant_id, term, grams)
        SELECT tenant, t, cardinality(show_trgm(t))
          FROM (SELECT DISTINCT t FROM unnest(terms) AS t WHERE t <> '') AS new_terms
         WHERE NOT EXISTS (SELECT 1 FROM clients.name_terms k
                            WHERE k.tenant_id = tenant AND k.term = t)
        ON CONFLICT DO NOTHING
        RETURNING term, grams
    ), grams AS (
        INSERT INTO clients.name_term_grams (tenant_id, gram, term, grams)
        SELECT tenant, g, a.term, a.grams FROM added AS a, unnest(show_trgm(a.term)) AS g
        ON CONFLICT DO NOTHING
    )
    INSERT INTO clients.name_term_variants (tenant_id, variant, term)
    SELECT tenant, v, a.term
      FROM added AS a, unnest(clients.name_variants(a.term)) AS v
    ON CONFLICT DO NOTHING;
END;

-- The `best` terms of the caller's tenant most similar to each phrase, at least 0.3 similar by
-- pg_trgm's similarity (shared trigrams over all trigrams of the two), with that score, the
-- closest first and then by term. pg_trgm computes the ratio in single precision, which orders
-- the terms as the exact ratio does (ratios of counts this small never round to one value
-- unless equal); the score returned is the exact ratio in double precision, from the shared
-- count the single precision one implies.
--
-- The body is bound to pg_trgm's functions and operator when this migration runs, wherever
-- the extension lives; the fixed search path leaves nothing to look up by name at run time.
CREATE FUNCTION clients.similar_name_terms(phrases text[], best integer)
RETURNS TABLE (phrase text, term text, score float8)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET pg_trgm.similarity_threshold = 0.3
BEGIN ATOMIC
    SELECT q.p, s.term, s.shared / (q.n + s.grams - s.shared)
      FROM (SELECT DISTINCT p, cardinality(show_trgm(p))::float8 AS n
              FROM unnest(phrases) AS p WHERE p <> '') AS q
     CROSS JOIN LATERAL (
        SELECT b.term, b.grams,
               round(b.similarity * (q.n + b.grams) / (1 + b.similarity)) AS shared
          FROM (SELECT t.term, t.grams, similarity(t.term, q.p) AS similarity
                  FROM clients.name_terms t
                 WHERE t.tenant_id = platform.current_tenant() AND t.term % q.p
                 ORDER BY 3 DESC, t.term
                 LIMIT best) AS b
     ) AS s;
END;
ALTER FUNCTION clients.similar_name_terms(text[], integer) OWNER TO caseway_system;
REVOKE ALL ON FUNCTION clients.similar_name_terms(text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clients.similar_name_terms(text[], integer) TO caseway_app;
