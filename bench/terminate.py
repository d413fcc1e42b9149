"""Pooled connections ended by the server, reproduced: 150 GET/s against `users-api serve` while its
backends are terminated.

`python -m bench.terminate [CHECKOUT]` starts `users-api serve` from CHECKOUT (this one by default: an
older commit checked out with `git worktree add` runs its own code) on an embedded PostgreSQL of its own
in a temporary folder, makes one user, then for 20 s sends 150 GET /users/{id} per second while
`pg_terminate_backend` ends every users-api backend every 0.3 s. Prints the count of each answer (or
client error). Everything runs on 127.0.0.1 and is stopped, by pid, at the end.
"""

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg

from api.ops.cluster import SUPERUSER, find_available_port
from bench.systems import ROOT, System

SECONDS = 20
RATE = 150  # requests per second
EVERY = 0.3  # seconds between two rounds of pg_terminate_backend
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'users-api'"


async def load(url: str, user_id: int, superuser_url: str) -> Counter[str]:
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + SECONDS
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        await psycopg.AsyncConnection.connect(superuser_url, autocommit=True) as killer,
    ):

        async def get() -> None:
            try:
                answers[str((await client.get(f"/users/{user_id}")).status_code)] += 1
            except httpx.TransportError as error:
                answers[type(error).__name__] += 1

        async def terminate() -> None:
            while time.monotonic() < deadline:
                await killer.execute(TERMINATE)
                await asyncio.sleep(EVERY)

        requests, terminating = [], asyncio.create_task(terminate())
        while time.monotonic() < deadline:
            requests.append(asyncio.create_task(get()))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*requests, terminating)
    return answers


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    os.environ.pop("DATABASE_URL", None)  # the server is an embedded one of its own
    scratch = Path(tempfile.mkdtemp(prefix="users-api-terminate-"))
    scratch.chmod(0o755)  # as root, the server's own user must reach the data folder
    port, pgport = find_available_port(), find_available_port()
    env = {"EMBEDDED_PGDATA": str(scratch / "pgdata"), "EMBEDDED_PGPORT": str(pgport), "PORT": str(port)}
    server = System(
        "users-api", [sys.executable, "-m", "api", "serve"], env | {"LOG_LEVEL": "warning"}, port,
        cwd=Path(args[0]).resolve() if args else ROOT,
    )  # fmt: skip
    server.start(scratch)
    try:
        user = httpx.post(f"{server.url}/users", json={"email": "terminate@example.com", "name": "T"}).json()
        password = (scratch / "pgdata" / "password").read_text().strip()
        superuser_url = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{pgport}/postgres"
        answers = asyncio.run(load(server.url, user["id"], superuser_url))
    finally:
        server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{server.cwd}: {dict(sorted(answers.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
