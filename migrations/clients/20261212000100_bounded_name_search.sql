-- A name search reads a page's worth of clients for each term it matched, not every client of
-- the term. A client scores the best of its readings (see the name search migration); taken a
-- term (and a name) at a time, in descending id, the clients whose best reading is that term
-- come in the page's own order, so the first page-size of them is all the page can use. A
-- common first name alone read and scored tens of thousands of clients to keep twenty.
--
-- What a client scores, given what each matched term scores as any one name (`singles`: term
-- to score) and each matched pair as first and last name (`pairs`: 'first|last' to score);
-- NULL when none of its names matched. Simple enough to be inlined where it is called.
CREATE FUNCTION clients.name_score(
    first_key text, last_key text, preferred_key text, singles jsonb, pairs jsonb
) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN greatest(
        (singles ->> first_key)::float8,
        (singles ->> last_key)::float8,
        (singles ->> nullif(preferred_key, ''))::float8,
        (pairs ->> (first_key || '|' || last_key))::float8,
        (pairs ->> (nullif(preferred_key, '') || '|' || last_key))::float8
    );

-- The clients of a last name in id order, as the first name's index already gives them.
CREATE INDEX clients_last ON clients.clients (tenant_id, last_key, id)
    WHERE deleted_at IS NULL;
