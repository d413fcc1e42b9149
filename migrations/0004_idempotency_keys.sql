-- Creates idempotency_keys: what POST /users answered to a request with an Idempotency-Key, kept for
-- 24 hours so that a retry with the same key gets the same answer instead of creating a second user.
-- The key's request is kept as a SHA-256 of its email and name, to tell a retry from another request
-- sent with the same key; the answer as the JSON body sent, byte for byte, with the user's id and
-- version (its Location and ETag). No foreign key to users: the answer stands if the user is deleted.
-- idempotency_keys_created_at_idx serves the removal of expired keys, a few on each keyed POST
-- (sql/create_user_once.sql): no job to schedule.
-- Grants the API's role (the session setting users_api.app_role, as in 0002) SELECT, INSERT, DELETE:
-- keys are written once and removed, never updated.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE idempotency_keys (
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    user_id bigint NOT NULL,
    version bigint NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (idempotency_key),
    CONSTRAINT idempotency_keys_key_length_check CHECK (char_length(idempotency_key) BETWEEN 1 AND 255)
);

-- The table was created above, in this transaction: empty, and no one else can see it to write.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

DO $$
DECLARE
    app_role text := nullif(current_setting('users_api.app_role', TRUE), '');
BEGIN
    IF app_role IS NULL THEN
        RAISE EXCEPTION 'users_api.app_role is not set: name the role the API connects as'
        USING HINT = 'PGOPTIONS=''-c users_api.app_role=<role>'' yoyo apply ...';
    END IF;
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON TABLE idempotency_keys TO %I', app_role);
END
$$;
