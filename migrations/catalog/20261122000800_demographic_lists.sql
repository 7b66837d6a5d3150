-- Demographic code lists (race, ethnicity, gender) that clients' demographics take their codes
-- from.
ALTER TABLE catalog.code_values DROP CONSTRAINT code_values_code_list_check;
ALTER TABLE catalog.code_values ADD CONSTRAINT code_values_code_list_check
    CHECK (code_list IN ('reason', 'goal', 'referral_plan', 'barrier_type', 'turn_away_reason',
                         'race', 'ethnicity', 'gender'));
