-- Version 10: pruning the sync log keeps it verifiable. The entries older than the retention are
-- deleted and the last of them is remembered here: the chain is then verified from this anchor
-- (the first entry left must name its hash) instead of from the genesis hash. One row.
CREATE TABLE sync_log_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,               -- the last pruned entry
    hash      TEXT NOT NULL,                  -- its hash
    at        TEXT NOT NULL,                  -- its time
    pruned    INTEGER NOT NULL,               -- entries pruned so far, in all
    pruned_at TEXT NOT NULL
);
