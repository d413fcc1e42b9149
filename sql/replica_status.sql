-- replica_status: whether a standby still is one, and how far it has replayed the primary's WAL.
-- Parameters: none.
-- Returns: one row: in_recovery (false once promoted: no longer a copy that follows the primary),
-- replayed (pg_lsn; NULL on a server that was never a standby).
-- Notes: polled on each of DATABASE_REPLICA_URLS, and again while a read waits for a Consistency-Token.
-- uses: none

SELECT /* replica_status */
    pg_is_in_recovery() AS in_recovery,
    pg_last_wal_replay_lsn() AS replayed;
