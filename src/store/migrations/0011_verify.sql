-- Version 11: the verify sweep's place, per
-- dossier, so that a restart resumes the full cycle where it was (portal::verify, store::verify).
-- A row is written each time the dossier is read back from the portal; rows of cases since joined
-- into another are removed by the sweep.
CREATE TABLE verify_marks (
    dossier_id  INTEGER PRIMARY KEY,
    code        TEXT NOT NULL,     -- the code looked up
    verified_at TEXT NOT NULL,     -- bridge clock
    divergence  TEXT,              -- JSON: what differed at the last look (core::verify), NULL: nothing
    repaired_at TEXT               -- when the last repair was queued for it (push-mode sources)
);
CREATE INDEX verify_marks_verified ON verify_marks(verified_at);
