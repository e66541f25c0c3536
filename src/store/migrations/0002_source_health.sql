-- Version 2: circuit-breaker state and full sweeps per source.
ALTER TABLE sources ADD COLUMN breaker TEXT NOT NULL DEFAULT 'closed';
ALTER TABLE sources ADD COLUMN breaker_until TEXT;
ALTER TABLE sources ADD COLUMN last_full_sweep_at TEXT;
