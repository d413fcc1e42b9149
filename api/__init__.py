"""users-api: a users service on PostgreSQL in raw SQL."""
