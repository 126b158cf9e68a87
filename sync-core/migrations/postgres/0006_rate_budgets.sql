-- Vendor rate budgets shared by the processes of one store (`sync_core::StoreBudget`, api-core's `RateBudget`):
-- one row per vendor key (`<namespace>:<key>`, e.g. `kommo:acme.kommo.com`, `airtable:appXXXX`). `next_at` is the
-- earliest time the next request may leave and `paused_until` the end of a shared penalty (milliseconds of the
-- store's clock; on PostgreSQL anchored to the database server's clock).
CREATE TABLE rate_budgets (
    key          TEXT   NOT NULL PRIMARY KEY,
    next_at      BIGINT NOT NULL,
    paused_until BIGINT NOT NULL
);
