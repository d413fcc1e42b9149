-- Drops the users table with its constraints and users_email_key; every user is lost.

DROP TABLE users;
