-- Version 6: records are found by code through record_codes (which holds every code a record is
-- known by); the index on source_records(code) was a second copy, written for every record.
DROP INDEX source_records_code;
