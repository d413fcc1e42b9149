"""`users-api serve | migrate | seed`: the service's command line."""

import argparse
import asyncio
import logging
import logging.config
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from types import FrameType

import psycopg
from pydantic import ValidationError
from yoyo.exceptions import LockTimeout

from api.keys import IssuerMismatch, KeyFetchError, check_discovery
from api.ops import migrator
from api.ops.cluster import Databases, EmbeddedCluster, cluster_for
from api.ops.embedded import EmbeddedError
from api.ops.logging_config import logging_config
from api.ops.settings import ServiceSettings
from api.ops.standby import EmbeddedReplica, forget_replicas_beyond

log = logging.getLogger(__name__)


@contextmanager
def databases(settings: ServiceSettings, *, standbys: bool = False) -> Iterator[Databases]:
    """DATABASE_URL (and OWNER_DATABASE_URL) when set; otherwise the embedded server's, while the block runs, with
    `standbys`: and its EMBEDDED_REPLICAS, whose URLs the app's DATABASE_REPLICA_URLS then holds."""
    found = cluster_for(
        settings.database_url, settings.embedded_pgdata, settings.embedded_pgport, owner_url=settings.owner_database_url
    )
    with found as cluster, ExitStack() as started:
        if not (standbys and isinstance(cluster, EmbeddedCluster)):
            yield cluster.service()
            return
        forget_replicas_beyond(cluster, settings.embedded_replicas)
        replicas = [
            started.enter_context(EmbeddedReplica(cluster, number, apply_delay=settings.replica_apply_delay))
            for number in range(1, settings.embedded_replicas + 1)
        ]
        yield replace(cluster.service(), replica_urls=tuple(replica.service().app_url for replica in replicas))


def migrate(settings: ServiceSettings) -> None:
    with databases(settings) as found:
        _apply_migrations(found)


class Refused(Exception):
    """The service must not start as configured; the message says why and what to set, in one line."""


def serve(settings: ServiceSettings) -> None:
    refusal = settings.anonymous_refusal()
    if refusal is not None:
        raise Refused(refusal)
    if settings.auth_issuer is None:
        log.warning(
            "nothing is authenticated: anyone who reaches %s:%d may read and change every user (set AUTH_ISSUER)",
            settings.host,
            settings.port,
        )
    elif settings.auth_jwks_url is None:
        _check_discovery(settings.auth_issuer)
    with databases(settings, standbys=True) as found:
        if settings.migrate_on_serve:
            _apply_migrations(found)  # once per deploy, before any worker starts
        os.environ["DATABASE_URL"] = found.app_url  # what create_app() reads, in this process and in every worker
        if found.replica_urls:
            os.environ["DATABASE_REPLICA_URLS"] = ",".join(found.replica_urls)
        signal.signal(signal.SIGTERM, _stopped_as_asked)
        try:
            with _metrics_folder():
                _run_uvicorn(settings)
        finally:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _check_discovery(issuer: str) -> None:
    """Refuse an issuer whose discovery document names another; one that cannot be reached now is served,
    not ready until its keys are fetched (api/keys.py keeps trying)."""
    try:
        asyncio.run(check_discovery(issuer))
    except IssuerMismatch as error:
        raise Refused(f"AUTH_ISSUER: {error}") from None
    except KeyFetchError as error:
        log.warning("AUTH_ISSUER's discovery document could not be read (%s); serving, not ready until it is", error)


@contextmanager
def _metrics_folder() -> Iterator[None]:
    """A fresh, private PROMETHEUS_MULTIPROC_DIR while the server runs: each worker's figures go there.

    Fresh at every start, as prometheus_client's multiprocess mode asks (figures of an earlier run would
    be added to this one's), and removed at the end. Set before any worker imports prometheus_client.
    """
    with tempfile.TemporaryDirectory(prefix="users-api-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _run_uvicorn(settings: ServiceSettings) -> None:
    import uvicorn

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level, settings.log_format),
        access_log=False,
        proxy_headers=False,
    )


def seed(settings: ServiceSettings, count: int) -> None:
    from api.ops.seed import copy_users

    with databases(settings) as found:
        _apply_migrations(found)
        log.info("seeding %d users through COPY", count)
        rate = asyncio.run(copy_users(found.app_url, count))  # INSERT is all COPY needs: the app role's
        log.info("seeded %d users: %.0f rows/s", count, rate)


def _apply_migrations(found: Databases) -> None:
    applied = migrator.apply(found.owner_url, migrator.role_of(found.app_url))
    log.info("migrations applied: %s", ", ".join(applied) if applied else "none pending")


def _stopped_as_asked(signum: int, frame: FrameType | None) -> None:
    """Nothing: uvicorn stops on SIGTERM, then calls the handler it found. The command ends with 0.

    A service stopped as asked exits 0; with `_exit_on_sigterm` in place, `make run` ended with 143.
    """


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwinds the stack like Ctrl-C does, so the embedded server is stopped on the way out.
    raise SystemExit(128 + signum)


def configuration_problems(error: ValidationError) -> str:
    """One line: each setting refused and why, named as its environment variable is."""
    problems = []
    for found in error.errors():
        name, why = ".".join(map(str, found["loc"])).upper(), found["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {why}" if name else why)  # a rule across settings names them itself
    return "; ".join(problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="users-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="apply pending migrations, then serve HTTP (HOST, PORT, WORKERS)")
    commands.add_parser("migrate", help="apply pending migrations and exit")
    seeding = commands.add_parser("seed", help="load N synthetic users through COPY")
    seeding.add_argument("count", type=int, metavar="N")
    args = parser.parse_args(argv)

    try:
        settings = ServiceSettings()
    except ValidationError as error:
        print(f"users-api: invalid configuration: {configuration_problems(error)}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # as logging.basicConfig: a host that set up logging (pytest) keeps it
        logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "seed":
            seed(settings, args.count)
        else:
            migrate(settings)
    except (EmbeddedError, Refused) as error:
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
