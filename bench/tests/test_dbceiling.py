"""The database ceilings run the very files of sql/: through asyncpg, and through pgbench."""

from pathlib import Path

import psycopg
import pytest

from api.ops.embedded import find_binaries
from api.queries import SQL
from bench import dbceiling

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("workload", dbceiling.WORKLOADS)
async def test_the_asyncpg_ceiling_runs_the_query_files(
    database_url: str, postgresql: psycopg.Connection, workload: str
) -> None:
    postgresql.execute(
        "INSERT INTO users (email, name) SELECT 'u' || n || '@example.com', 'U' FROM generate_series(1, 1200) n"
    )
    postgresql.commit()

    measured = await dbceiling.drive_asyncpg(database_url, workload, 1200, "t", 2, warmup=0.1, seconds=0.3)

    assert measured.requests > 10
    assert 0 < measured.p50_ms <= measured.p99_ms


def test_pgbench_runs_the_same_statements(postgresql: psycopg.Connection, tmp_path: Path) -> None:
    postgresql.execute(
        "INSERT INTO users (email, name) SELECT 'p' || n || '@example.com', 'P' FROM generate_series(1, 1200) n"
    )
    postgresql.commit()
    info = postgresql.info
    server = dbceiling.Server(info.host, info.port, info.user, info.password or None, info.dbname)
    pgbench = dbceiling.find_pgbench(find_binaries())
    assert pgbench is not None

    scripts = dbceiling.pgbench_scripts(tmp_path)
    command = dbceiling.pgbench_command(pgbench, scripts, "mix", 1200, 2, 1, server)
    measured = dbceiling.run_pgbench(command, server)

    assert "-M" in command and "prepared" in command
    assert scripts["get"].read_text().endswith(SQL.get_user.replace("$1", ":id"))
    assert measured.requests > 10
    created = postgresql.execute("SELECT count(*) FROM users WHERE email LIKE 'pgbench.%'").fetchone()
    assert created is not None and created[0] > 0, "the mix creates users too"
