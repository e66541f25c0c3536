-- Version 4: a record's codes are replaced through the codes it had (kept in source_records), so
-- the index by record is no longer read; its random-order inserts cost a page write per new record.
DROP INDEX record_codes_record;
