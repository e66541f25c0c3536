-- dvc-bridge schema, version 1. Append-only: never edit a migration that has shipped; add a new file.
-- Times are RFC 3339 UTC strings (they sort as text); hashes are lowercase hex.

CREATE TABLE sources (
    name              TEXT PRIMARY KEY,
    adapter           TEXT NOT NULL,
    kind              TEXT NOT NULL,              -- city | ministry
    portal_mode       TEXT NOT NULL,              -- push | verify | off
    last_poll_at      TEXT,                       -- last poll started (bridge clock)
    last_ok_at        TEXT,                       -- last poll that completed
    last_error        TEXT,
    last_error_at     TEXT,
    polls             INTEGER NOT NULL DEFAULT 0,
    poll_errors       INTEGER NOT NULL DEFAULT 0,
    consecutive_errors INTEGER NOT NULL DEFAULT 0
);

-- The incremental cursor: (updated_at, native_id) of the last record covered, compared with >=.
CREATE TABLE cursors (
    source       TEXT PRIMARY KEY REFERENCES sources(name),
    updated_at   TEXT NOT NULL,
    native_id    TEXT NOT NULL,
    committed_at TEXT NOT NULL
);

CREATE TABLE dossiers (
    id            INTEGER PRIMARY KEY,
    portal_code   TEXT NOT NULL,               -- the live code on the portal for this case
    status        INTEGER,
    due_at        TEXT,
    received_at   TEXT,
    version       INTEGER NOT NULL DEFAULT 0,  -- bumped on every canonical change
    content_hash  TEXT,                        -- hash of the portal object last decided
    canonical     TEXT,                        -- JSON: core::merge::Canonical
    conflict      TEXT,                        -- set while a regression waits for an operator
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX dossiers_portal_code ON dossiers(portal_code);

CREATE TABLE source_records (
    source       TEXT NOT NULL REFERENCES sources(name),
    native_id    TEXT NOT NULL,
    code         TEXT NOT NULL,
    ref_codes    TEXT NOT NULL DEFAULT '[]',   -- JSON array
    procedure    TEXT NOT NULL,
    status       INTEGER NOT NULL,
    received_at  TEXT,
    updated_at   TEXT NOT NULL,                -- the source's updated time
    raw_hash     TEXT NOT NULL,                -- hash of the raw payload: unchanged records are skipped
    raw          TEXT NOT NULL,                -- the payload as received
    mapped       TEXT NOT NULL,                -- JSON: core::record::SourceRecord
    dossier_id   INTEGER REFERENCES dossiers(id),
    link_rule    TEXT,
    first_seen_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    PRIMARY KEY (source, native_id)
);
CREATE INDEX source_records_code ON source_records(code);
CREATE INDEX source_records_dossier ON source_records(dossier_id);

-- Every code a record is known by or points at, for linking.
CREATE TABLE record_codes (
    code      TEXT NOT NULL,
    source    TEXT NOT NULL,
    native_id TEXT NOT NULL,
    PRIMARY KEY (code, source, native_id)
);

-- The members of each case, and the rule that linked them (for explain).
CREATE VIEW dossier_members AS
    SELECT dossier_id, source, native_id, code, link_rule AS rule FROM source_records WHERE dossier_id IS NOT NULL;

CREATE TABLE quarantine (
    source      TEXT NOT NULL REFERENCES sources(name),
    native_id   TEXT NOT NULL,                 -- '' when not even the id could be read
    raw_hash    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    seen        INTEGER NOT NULL DEFAULT 1,
    resolved_at TEXT,
    PRIMARY KEY (source, native_id, raw_hash)
);

-- What the portal last acknowledged, per code.
CREATE TABLE portal_state (
    code         TEXT PRIMARY KEY,
    dossier_id   INTEGER,
    version      INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    live         INTEGER NOT NULL,             -- 0 once closed as a duplicate
    payload      TEXT NOT NULL,
    acked_at     TEXT NOT NULL
);

-- Work for the portal. A row leaves only when the portal acknowledged it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    dossier_id      INTEGER NOT NULL,
    code            TEXT NOT NULL,
    kind            TEXT NOT NULL,             -- upsert | close
    version         INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,
    idem_key        TEXT NOT NULL UNIQUE,      -- code:version:hash
    payload         TEXT NOT NULL,
    deadline        TEXT,                      -- EDF key: the dossier's due time
    enqueued_at     TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued'  -- queued | parked
);
CREATE INDEX outbox_ready ON outbox(state, deadline, enqueued_at);
CREATE INDEX outbox_code ON outbox(code);

-- Processing steps for CapNhatTienDoHoSoMC, sent after the dossier's create was acknowledged.
CREATE TABLE progress (
    code        TEXT NOT NULL,
    step_key    TEXT NOT NULL,
    payload     TEXT NOT NULL,
    at          TEXT NOT NULL,
    enqueued_at TEXT NOT NULL,
    sent_at     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error  TEXT,
    PRIMARY KEY (code, step_key)
);
CREATE INDEX progress_unsent ON progress(sent_at, at);

CREATE TABLE resync_requests (
    id           INTEGER PRIMARY KEY,
    scope        TEXT NOT NULL,                -- JSON
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',  -- pending | running | done | failed
    started_at   TEXT,
    finished_at  TEXT,
    result       TEXT
);

-- Append-only, hash-chained: hash = sha256(prev_hash || the entry's canonical text).
CREATE TABLE sync_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,                   -- bridge clock
    level     TEXT NOT NULL,                   -- info | warn | error
    kind      TEXT NOT NULL,
    source    TEXT,
    dossier   TEXT,                            -- dossier code
    actor     TEXT NOT NULL,                   -- daemon, or an operator's name
    message   TEXT NOT NULL,                   -- never personal data in clear
    details   TEXT,                            -- JSON
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX sync_log_dossier ON sync_log(dossier, seq);
CREATE INDEX sync_log_kind ON sync_log(kind, seq);
