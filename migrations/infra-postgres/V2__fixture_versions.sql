-- The version of each deployed fixture (monkctl's addition; the API ignores columns it does not
-- know). NULL for rows written before this column existed or by the API.
ALTER TABLE tenant_fixtures ADD COLUMN IF NOT EXISTS version text;
