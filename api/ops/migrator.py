"""Schema migrations: the plain SQL files of migrations/, applied by yoyo under its lock, as the owner role."""

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from api.resources import resource_dir

LOCK_TIMEOUT_SECONDS = 60
# The session setting migration 0002 reads to know which role to grant to.
APP_ROLE_SETTING = "users_api.app_role"


def role_of(database_url: str) -> str:
    """The role a URL logs in as, by libpq's rules: its user, else PGUSER, else the OS user."""
    user = conninfo_to_dict(database_url).get("user") or os.environ.get("PGUSER") or getpass.getuser()
    return str(user)


def yoyo_url(database_url: str, app_role: str) -> str:
    """The same database as yoyo names it (through psycopg 3: yoyo cannot use asyncpg), telling the
    migrations which role the API connects as."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://...")
    query = dict(parse_qsl(parts.query))
    # libpq's options: backslash escapes a space or a backslash inside one value.
    escaped = app_role.replace("\\", "\\\\").replace(" ", "\\ ")
    query["options"] = f"{query.get('options', '')} -c {APP_ROLE_SETTING}={escaped}".strip()
    return parts._replace(scheme="postgresql+psycopg", query=urlencode(query)).geturl()


@contextmanager
def _backend(database_url: str, app_role: str) -> Iterator[Any]:
    backend = get_backend(yoyo_url(database_url, app_role))
    try:
        # yoyo's lock is a row in yoyo_lock: a second deploy waits here instead of migrating twice.
        with backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
            yield backend
    finally:
        backend.connection.close()


def apply(owner_url: str, app_role: str) -> list[str]:
    """Apply every pending migration, in order, as `owner_url`'s role, granting to `app_role`; return their ids."""
    with _backend(owner_url, app_role) as backend:
        pending = backend.to_apply(read_migrations(str(resource_dir("migrations"))))
        backend.apply_migrations(pending)
        return [migration.id for migration in pending]


def rollback(owner_url: str, app_role: str, count: int = 1) -> list[str]:
    """Roll back the `count` most recently applied migrations; return their ids."""
    with _backend(owner_url, app_role) as backend:
        applied = backend.to_rollback(read_migrations(str(resource_dir("migrations"))))
        chosen = applied[:count]
        backend.rollback_migrations(chosen)
        return [migration.id for migration in chosen]
