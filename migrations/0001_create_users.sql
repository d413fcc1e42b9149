-- Creates the users table.
-- Email is unique case-insensitively through users_email_key, a unique index on lower(email);
-- the CHECK constraints mirror the limits the API validates, so no client can store more.

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

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
