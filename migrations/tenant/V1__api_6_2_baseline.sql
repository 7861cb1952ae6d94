-- Baseline: the tenant schema that Monk API 6.2 writes (the `system` fixture,
-- src/core/sql/system.sql). Tenants at this version are recorded, never rebuilt: this
-- migration runs no statement. Later schema changes are V2 onwards.
SELECT 1;
