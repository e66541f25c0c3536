-- Version 7: links an operator split apart. Linking never joins the two records again.
CREATE TABLE link_splits (
    source          TEXT NOT NULL,
    native_id       TEXT NOT NULL,
    other_source    TEXT NOT NULL,
    other_native_id TEXT NOT NULL,
    split_by        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    split_at        TEXT NOT NULL,
    PRIMARY KEY (source, native_id, other_source, other_native_id)
);
