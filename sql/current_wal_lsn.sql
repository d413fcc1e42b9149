-- current_wal_lsn: the primary's WAL positions, read after a write has committed: the
-- Consistency-Token of POST, PATCH and DELETE while DATABASE_REPLICA_URLS is set; polled for the standbys' lag.
-- Parameters: none.
-- Returns: one row: lsn (pg_lsn), at or after the end of every commit record written so far; flushed (pg_lsn),
-- the end of the WAL flushed to disk, as far as a standby can have received it.
-- Notes: run on the primary, in a statement of its own after the write's autocommit: a standby that has
-- replayed up to lsn has replayed the write. A position read inside the write's own statement would come
-- before its commit record. With synchronous_commit off, a commit may not be flushed when it returns, so lsn
-- is then the insert position; otherwise the flushed one, which is a record's end: the insert position may lie
-- past a page's header, which a standby with nothing more to replay never reaches.
-- uses: none

SELECT /* current_wal_lsn */
    CASE
        WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn()
        ELSE pg_current_wal_flush_lsn()
    END AS lsn,
    pg_current_wal_flush_lsn() AS flushed;
