-- delete_user: remove one user by id, if its version is one of those given (If-Match).
-- Parameters: $1 id (bigint), $2 versions (bigint[]: the delete happens only at one of these; NULL
-- for any).
-- Returns: one row when the user exists: the deleted id, NULL when its version was not one of $2
-- (or it was deleted meanwhile); no row when the id does not exist.
-- Notes: the version is compared in the DELETE itself, as update_user does.
-- uses: users_pkey

WITH /* delete_user */ deleted AS (
    DELETE FROM users
    WHERE
        id = $1
        AND ($2::bigint[] IS NULL OR version = any($2::bigint[]))
    RETURNING id
)

SELECT (SELECT deleted.id FROM deleted) AS deleted_id
FROM users
-- the user as this statement found it, before the delete: whether it exists
WHERE users.id = $1;
