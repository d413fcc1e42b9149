-- sqlfluff:templater:placeholder:param_style:colon_optional_quotes
-- replication_slot_status: whether a standby's slot still holds the WAL the standby needs; run as a superuser.
-- Parameters: psql variable slot, the slot's name.
-- Returns: the slot's wal_status (reserved, extended, unreserved, or lost once max_slot_wal_keep_size was
-- passed), or no row when the primary has no such slot.
-- Notes: a standby whose slot is lost or gone cannot catch up by streaming; it must be made again from a
-- base backup.
-- Run: psql -v ON_ERROR_STOP=1 -v slot=users_api_replica_1 -At -f sql/setup/replication_slot_status.sql

SELECT wal_status
FROM pg_replication_slots
WHERE slot_name = :'slot';
