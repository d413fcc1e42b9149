"""Schema migrations: the plain SQL files of migrations/, applied by yoyo under its lock."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from yoyo import get_backend, read_migrations

from api.resources import resource_dir

LOCK_TIMEOUT_SECONDS = 60


def yoyo_url(database_url: str) -> str:
    """The same database as yoyo names it: through psycopg 3, since yoyo cannot use asyncpg."""
    scheme, rest = database_url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql+psycopg://{rest}"


@contextmanager
def _backend(database_url: str) -> Iterator[Any]:
    backend = get_backend(yoyo_url(database_url))
    try:
        # yoyo's lock is a row in yoyo_lock: a second deploy waits here instead of migrating twice.
        with backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
            yield backend
    finally:
        backend.connection.close()


def apply(database_url: str) -> list[str]:
    """Apply every pending migration, in order; return their ids."""
    with _backend(database_url) as backend:
        pending = backend.to_apply(read_migrations(str(resource_dir("migrations"))))
        backend.apply_migrations(pending)
        return [migration.id for migration in pending]


def rollback(database_url: str, count: int = 1) -> list[str]:
    """Roll back the `count` most recently applied migrations; return their ids."""
    with _backend(database_url) as backend:
        applied = backend.to_rollback(read_migrations(str(resource_dir("migrations"))))
        chosen = applied[:count]
        backend.rollback_migrations(chosen)
        return [migration.id for migration in chosen]
