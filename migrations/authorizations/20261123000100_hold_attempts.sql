-- A hold belongs to one attempt to store a record version: another attempt at the same version
-- is refused while it stands (only one of them can be stored), and only its own attempt gives
-- it back. `held_at` tells a hold whose attempt died from one still being stored.
ALTER TABLE authorizations.draws
    ADD COLUMN held_by uuid,
    ADD COLUMN held_at timestamptz;
