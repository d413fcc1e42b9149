-- sqlfluff:templater:placeholder:param_style:colon_optional_quotes
-- drop_replication_slot: forget a standby's replication slot, if the primary has it; run as a superuser.
-- Parameters: psql variable slot, the slot's name.
-- Returns: a row per slot dropped (none when there was no such slot).
-- Notes: a slot keeps the WAL its standby has not received yet, up to max_slot_wal_keep_size. Run before
-- a standby of that name is made anew (its files were removed), so that the new one's base backup can
-- create the slot afresh instead of inheriting what the old one had left behind.
-- Run: psql -v ON_ERROR_STOP=1 -v slot=users_api_replica_1 -f sql/setup/drop_replication_slot.sql

SELECT pg_drop_replication_slot(slot_name) AS dropped
FROM pg_replication_slots
WHERE slot_name = :'slot';
