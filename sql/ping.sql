-- ping: the readiness probe; proves a pooled connection can run a statement.
-- Parameters: none.
-- Returns: one row holding 1.
-- uses: none

SELECT /* ping */ 1;
