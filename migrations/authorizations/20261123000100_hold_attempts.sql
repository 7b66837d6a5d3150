-- A hold belongs to one attempt to store a record version: another attempt at the same version
-- is refused while it stands (only one of them can be stored), and only its own attempt gives
-- it back. `held_at` tells a hold whose attempt died from one still being stored.
--
-- A newer hold does not drop an older one that may be stored with its event on the way: the
-- older hold's units move to `earlier_units` (with the latest such version), counted until an
-- event of that version or a later one arrives, or until the worker learns it was not stored.
ALTER TABLE authorizations.draws
    ADD COLUMN held_by         uuid,
    ADD COLUMN held_at         timestamptz,
    ADD COLUMN earlier_units   numeric(18, 4) NOT NULL DEFAULT 0 CHECK (earlier_units >= 0),
    ADD COLUMN earlier_version bigint         NOT NULL DEFAULT 0;

DROP INDEX authorizations.draws_unconfirmed;
-- Unsettled holds, for the worker.
CREATE INDEX draws_unsettled ON authorizations.draws (updated_at)
    WHERE held_units > 0 OR earlier_units > 0;
