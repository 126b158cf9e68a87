-- Echo markers of writes in flight (the convergence rule: a marker that says "the target holds V" is recorded in
-- `written_hashes` only after the write is confirmed, with its step's journal entry). While the write runs, its
-- values are listed here under the attempt that makes it, so that the target's webhook echo arriving before the
-- write returns is still recognised. A row counts only while that attempt is still running (joined with the
-- inbox on id and attempt_no): a failed, retried or reclaimed attempt's rows are inert at once, and the
-- committing step deletes its own.
CREATE TABLE pending_writes (
    system      TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    inbox_id    BIGINT  NOT NULL,
    attempt_no  BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (system, entity, field, inbox_id, attempt_no)
);
CREATE INDEX pending_writes_attempt ON pending_writes (inbox_id, attempt_no);
