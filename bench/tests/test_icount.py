"""The instruction counts (make bench-icount) run every app they name, each answering 200 or 201."""

import logging
from collections.abc import Iterator

import psycopg
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """The test process's logging as it was, after code that sets up the service's own (icount's children)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    switches = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")
    saved = {name: getattr(logging, name) for name in switches}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in saved.items():
        setattr(logging, name, value)


@pytest.mark.usefixtures("logging_kept")
async def test_the_instruction_counts_run_every_app_they_name(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import icount

    monkeypatch.setattr(icount, "WARMUP", 0)
    monkeypatch.setenv("DATABASE_URL", database_url)  # restored after the test
    jobs = [("users-api", "create")] + [job for job in icount.WHOLE_JOBS if job != ("users-api", "create")]
    jobs += [side for _, *sides in icount.LEVERS + icount.COSTS for side in sides]

    for app_name, request_name in jobs:  # each request's status is checked: 200 or 201
        await icount.child(app_name, request_name, 2, database_url)

    with psycopg.connect(database_url) as conn:
        created = conn.execute("SELECT count(*) FROM users").fetchone()
    assert created == (4,), "users-api and raw-minimal created two users each"
