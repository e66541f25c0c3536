-- Version 3: replacing a record's codes looks them up by record; without this index every ingested
-- record scanned the whole table.
CREATE INDEX record_codes_record ON record_codes(source, native_id);
