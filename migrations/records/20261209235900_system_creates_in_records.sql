-- The day totals migration (next) hands its functions to caseway_system, which PostgreSQL
-- allows a migrating role that is not a superuser only when the new owner may create in the
-- schema, as the other schemas' system migrations grant. Numbered before it so that a new
-- database gets the grant first; a database that has the day totals already gets it after,
-- where it changes nothing.
GRANT USAGE, CREATE ON SCHEMA records TO caseway_system;
