"""`users-api serve | migrate | seed`: the service's command line."""

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

import psycopg
from pydantic import ValidationError
from yoyo.exceptions import LockTimeout

from api import migrations
from api.embedded import EmbeddedError, embedded_postgres, prepare_service
from api.settings import Settings

log = logging.getLogger("users_api")


@dataclass(frozen=True, slots=True)
class Databases:
    """The service's database twice: as the app role (the API's) and as the owner (the migrations')."""

    app_url: str
    owner_url: str


@contextmanager
def databases(settings: Settings) -> Iterator[Databases]:
    """DATABASE_URL (and OWNER_DATABASE_URL) when set; otherwise the embedded server's, while the block runs."""
    if settings.database_url is not None:
        where = urlsplit(settings.database_url)
        log.info("PostgreSQL from DATABASE_URL: %s:%s%s", where.hostname, where.port or 5432, where.path)
        yield Databases(settings.database_url, settings.owner_database_url or settings.database_url)
        return
    with embedded_postgres(settings.embedded_pgdata, settings.embedded_pgport) as server:
        owner, app = prepare_service(server)
        log.info("embedded PostgreSQL: data in %s, listening on 127.0.0.1:%d", server.data_dir, server.port)
        log.info("connect with: %s", server.psql_command())
        yield Databases(server.url(role=app), server.url(role=owner))


def migrate(settings: Settings) -> None:
    with databases(settings) as found:
        _apply_migrations(found)


def serve(settings: Settings) -> None:
    import uvicorn

    with databases(settings) as found:
        if settings.migrate_on_serve:
            _apply_migrations(found)  # once per deploy, before any worker starts
        os.environ["DATABASE_URL"] = found.app_url  # what create_app() reads, in this process and in every worker
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            proxy_headers=False,
        )


def seed(settings: Settings, count: int) -> None:
    from api.seed import seed as load

    with databases(settings) as found:
        _apply_migrations(found)
        log.info("seeding %d users through COPY", count)
        rate = asyncio.run(load(found.app_url, count))  # INSERT is all COPY needs: the app role's
        log.info("seeded %d users: %.0f rows/s", count, rate)


def _apply_migrations(found: Databases) -> None:
    applied = migrations.apply(found.owner_url, migrations.role_of(found.app_url))
    log.info("migrations applied: %s", ", ".join(applied) if applied else "none pending")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwinds the stack like Ctrl-C does, so the embedded server is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="users-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="apply pending migrations, then serve HTTP (HOST, PORT, WORKERS)")
    commands.add_parser("migrate", help="apply pending migrations and exit")
    seeding = commands.add_parser("seed", help="load N synthetic users through COPY")
    seeding.add_argument("count", type=int, metavar="N")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        print(f"users-api: invalid configuration: {problems}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "seed":
            seed(settings, args.count)
        else:
            migrate(settings)
    except EmbeddedError as error:
        print(f"users-api: {error}", file=sys.stderr)
        return 2
    except (psycopg.Error, LockTimeout) as error:  # from the migrations, before anything serves
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            reason += " (migrations run as OWNER_DATABASE_URL's role, or DATABASE_URL's when it is unset)"
        print(f"users-api: migrations failed: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
