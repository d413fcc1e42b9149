"""The owner and app roles and the service's database, made by the DBA's own scripts in sql/setup/.

The embedded server and the test suite run those scripts with psql, as a DBA would by hand, so
that what docs/dba.md tells a DBA to run is what every test runs against.
"""

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.resources import resource_dir

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


class ProvisionError(RuntimeError):
    """A setup script failed; the message holds psql's own words."""


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    password: str = field(repr=False)


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677); it accepts it in place of one.

    The plain text then never travels to the server, its logs or a command line. ASCII only:
    PostgreSQL normalises other passwords with SASLprep first, which this does not reproduce.
    """
    if not password.isascii():
        raise ValueError("only ASCII passwords are turned into SCRAM verifiers here")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def create_roles(psql: Path, admin_url: str, owner: Role, app: Role) -> None:
    """Run sql/setup/create_roles.sql as `admin_url`'s user (a superuser, or one with CREATEROLE)."""
    _run_script(
        psql,
        admin_url,
        "create_roles.sql",
        single_transaction=True,  # both roles or neither: a retry after a failure starts clean
        owner_role=owner.name,
        owner_password=scram_verifier(owner.password),
        app_role=app.name,
        app_password=scram_verifier(app.password),
    )


def create_database(psql: Path, admin_url: str, database: str, owner: Role, app: Role) -> None:
    """Run sql/setup/create_database.sql as `admin_url`'s user (one that may create databases)."""
    _run_script(psql, admin_url, "create_database.sql", database=database, owner_role=owner.name, app_role=app.name)


def create_replication_role(psql: Path, admin_url: str, role: Role) -> None:
    """Run sql/setup/create_replication_role.sql as `admin_url`'s user (a superuser): what standbys stream as."""
    _run_script(
        psql,
        admin_url,
        "create_replication_role.sql",
        replication_role=role.name,
        replication_password=scram_verifier(role.password),
    )


def drop_replication_slot(psql: Path, admin_url: str, slot: str) -> None:
    """Run sql/setup/drop_replication_slot.sql as `admin_url`'s user (a superuser): the slot gone, if it was there."""
    _run_script(psql, admin_url, "drop_replication_slot.sql", slot=slot)


def replication_slot_status(psql: Path, admin_url: str, slot: str) -> str:
    """Run sql/setup/replication_slot_status.sql as `admin_url`'s user: the slot's `wal_status`, "" if none."""
    return _run_script(psql, admin_url, "replication_slot_status.sql", tuples_only=True, slot=slot).strip()


def find_psql(bin_dir: Path | None = None) -> Path:
    """psql from `bin_dir` (the embedded wheel's), else from PATH."""
    if bin_dir is not None and (bin_dir / "psql").is_file():
        return bin_dir / "psql"
    found = shutil.which("psql")
    if found is None:
        raise ProvisionError("psql is needed to run sql/setup/ and none was found: install the embedded extra")
    return Path(found)


def _run_script(
    psql: Path,
    admin_url: str,
    script: str,
    *,
    single_transaction: bool = False,
    tuples_only: bool = False,
    **variables: str,
) -> str:
    """Run sql/setup/`script` with psql; what it printed (with `tuples_only`, the rows' values alone)."""
    # The password goes through the environment, not the command line, where any local user could read it.
    info = conninfo_to_dict(admin_url)
    password = info.pop("password", None)
    info.setdefault("dbname", "postgres")
    env = {"PGAPPNAME": "users-api setup"} | ({} if password is None else {"PGPASSWORD": str(password)})
    settings = [f"--variable={name}={value}" for name, value in variables.items()]
    if single_transaction:
        settings.append("--single-transaction")
    if tuples_only:
        settings += ["--tuples-only", "--no-align"]
    done = subprocess.run(  # noqa: S603 - psql, a script of sql/setup/, variables quoted by psql itself
        [str(psql), "--no-psqlrc", "--quiet", "--variable=ON_ERROR_STOP=1", *settings,
         f"--dbname={make_conninfo('', **info)}", "--file", str(resource_dir("sql") / "setup" / script)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ProvisionError(f"sql/setup/{script} failed: {done.stderr.strip()}")
    return done.stdout
