-- Whether recorders may price a service differently from its default unit value.
ALTER TABLE catalog.services ADD COLUMN unit_value_fixed boolean NOT NULL DEFAULT false;
