-- Instance-wide settings that operators change at run time (for example which
-- model serves when a request names none). One row per key; values are JSON text
-- so a setting can grow structure without a migration.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    -- Unix milliseconds; kept as an integer so SQLite and Postgres agree exactly.
    updated_at BIGINT NOT NULL
);
