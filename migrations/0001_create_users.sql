-- Creates the users table.
-- Email is unique case-insensitively through users_email_key, a unique index on lower(email);
-- the CHECK constraints mirror the limits the API validates, so no client can store more.
-- yoyo runs the file in one transaction: SET LOCAL bounds every lock wait and statement in it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY,
    email text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_length_check CHECK (char_length(email) <= 320),
    CONSTRAINT users_name_length_check CHECK (char_length(name) BETWEEN 1 AND 200)
);

-- The table was created above, in this transaction: empty, and no one else can see it to write.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
