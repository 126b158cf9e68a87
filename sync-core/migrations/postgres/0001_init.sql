-- sync-core schema v1 (PostgreSQL). All times are integer milliseconds since the Unix epoch, taken from the
-- store's injectable clock (never from SQL `now()`), so lease expiry is testable without sleeping.
CREATE TABLE inbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT    NOT NULL,
    dedup_key    TEXT    NOT NULL,
    ordering_key TEXT,
    payload      BYTEA   NOT NULL,
    headers      TEXT    NOT NULL DEFAULT '{}',
    received_at  BIGINT  NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     BIGINT  NOT NULL DEFAULT 0,
    attempt_no   BIGINT  NOT NULL DEFAULT 0,
    run_after    BIGINT  NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    finished_at  BIGINT,
    UNIQUE (source, dedup_key)
);
CREATE INDEX inbox_due ON inbox (state, run_after);
CREATE INDEX inbox_order ON inbox (source, ordering_key, id);
CREATE INDEX inbox_finished ON inbox (state, finished_at);

CREATE TABLE id_map (
    system      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    local_key   TEXT    NOT NULL,
    remote_id   TEXT    NOT NULL,
    last_hash   TEXT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (system, kind, local_key),
    UNIQUE (system, kind, remote_id)
);

CREATE TABLE written_hashes (
    system      TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    written_at  BIGINT  NOT NULL,
    PRIMARY KEY (system, entity, field)
);

CREATE TABLE cursors (
    source      TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    cursor      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (source, stream)
);

CREATE TABLE step_journal (
    run_id      TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE counters (
    key         TEXT    NOT NULL,
    hit_id      TEXT    NOT NULL,
    at_ms       BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    PRIMARY KEY (key, hit_id)
);
CREATE INDEX counters_window ON counters (key, at_ms);

CREATE TABLE watermarks (
    entity      TEXT    NOT NULL PRIMARY KEY,
    last_ms     BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
