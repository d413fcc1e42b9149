-- current_wal_lsn: the primary's WAL insert position, read after a write has committed: the
-- Consistency-Token of POST, PATCH and DELETE while DATABASE_REPLICA_URLS is set.
-- Parameters: none.
-- Returns: one row: lsn (pg_lsn), at or after the end of every commit record written so far.
-- Notes: run on the primary, in a statement of its own after the write's autocommit: a standby that has
-- replayed this far has replayed the write (what a Consistency-Token carries). An LSN read inside the
-- write's own statement would come before its commit record. Also polled to measure the standbys' lag.
-- uses: none

SELECT /* current_wal_lsn */ pg_current_wal_insert_lsn() AS lsn;
