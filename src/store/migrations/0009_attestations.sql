-- Version 9: operators' attestations of a finish the sources do not hold (`dvc-bridge attest`).
-- Append-only: a newer attestation of a case replaces an older one at the merge, both are kept.
CREATE TABLE attestations (
    id          INTEGER PRIMARY KEY,
    dossier_id  INTEGER NOT NULL,              -- the case (moved when cases are joined)
    code        TEXT NOT NULL,                 -- the code the operator named
    attestation TEXT NOT NULL,                 -- JSON: core::attest::Attestation
    attested_by TEXT NOT NULL,
    attested_at TEXT NOT NULL
);
CREATE INDEX attestations_dossier ON attestations(dossier_id, id);
