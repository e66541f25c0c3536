-- Version 12: codes the bridge sent to the portal and has no answer for yet. A daemon stopped
-- between a `DongBoHoSoMC` call and its answer cannot know whether the portal created the code; if
-- the code then stops being its case's live code, the bridge must close it rather than forget it
-- (store::outbox::retire). Written before the call (store::outbox::mark_sent), removed when the
-- portal's answer settles the code (acknowledged: `portal_state` holds it; a close settled).
CREATE TABLE portal_sent (
    code    TEXT PRIMARY KEY,
    sent_at TEXT NOT NULL      -- bridge clock, the first unanswered send
) WITHOUT ROWID;
