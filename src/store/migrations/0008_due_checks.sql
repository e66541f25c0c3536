-- Version 8: the bridge's own reckoning of each dossier's due time (core::deadline), kept beside
-- the source's `due_at` so that `status` and the deadline watch read it without recomputing.
-- Filled as each dossier is merged; `resync --all` fills a database that predates it at once.
ALTER TABLE dossiers ADD COLUMN computed_due TEXT;   -- the law's due time, moved by the pauses
ALTER TABLE dossiers ADD COLUMN portal_due TEXT;     -- what the portal judges against (pushed NgayHenTra + pauses)
ALTER TABLE dossiers ADD COLUMN watch_due TEXT;      -- portal_due while open and the clock runs, else NULL
ALTER TABLE dossiers ADD COLUMN due_flags TEXT;      -- core::deadline::Finding names, space-separated; NULL: none
-- What the watch has logged for the current watch_due: 0 nothing, 1 at risk, 2 overdue.
ALTER TABLE dossiers ADD COLUMN watch_state INTEGER NOT NULL DEFAULT 0;
CREATE INDEX dossiers_watch ON dossiers(watch_due) WHERE watch_due IS NOT NULL;
CREATE INDEX dossiers_due_flags ON dossiers(due_flags) WHERE due_flags IS NOT NULL;
