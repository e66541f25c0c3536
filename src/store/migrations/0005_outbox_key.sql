-- Version 5: the outbox's idempotency key becomes a unique index on (code, kind, version,
-- content_hash), which also serves look-ups by code: one index written per queued row instead of
-- two (the text key and the index by code).
CREATE TABLE outbox_v5 (
    id              INTEGER PRIMARY KEY,
    dossier_id      INTEGER NOT NULL,
    code            TEXT NOT NULL,
    kind            TEXT NOT NULL,             -- upsert | close
    version         INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    deadline        TEXT,                      -- EDF key: the dossier's due time
    enqueued_at     TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued',  -- queued | parked
    UNIQUE (code, kind, version, content_hash)       -- the idempotency key
);
INSERT OR IGNORE INTO outbox_v5 (id, dossier_id, code, kind, version, content_hash, payload, deadline, enqueued_at,
                                 attempts, next_attempt_at, last_error, state)
    SELECT id, dossier_id, code, kind, version, content_hash, payload, deadline, enqueued_at,
           attempts, next_attempt_at, last_error, state FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v5 RENAME TO outbox;
CREATE INDEX outbox_ready ON outbox(state, deadline, enqueued_at);
