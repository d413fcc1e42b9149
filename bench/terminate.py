"""Issue 11's reproduction: 150 GET/s against `users-api serve` while every users-api backend is terminated.

`python -m bench.terminate [CHECKOUT]` starts `users-api serve` from CHECKOUT (this one by default: an
older commit checked out with `git worktree add` runs its own code) on an embedded PostgreSQL of its own
in a temporary folder, makes one user, then for 20 s sends 150 GET /users/{id} per second while
`pg_terminate_backend` ends every users-api backend every 0.3 s. Prints the count of each answer (or
client error). Everything runs on 127.0.0.1 and is stopped, by pid, at the end.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg

from api.ops.cluster import SUPERUSER, find_available_port

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
    checkout = Path(args[0] if args else Path(__file__).resolve().parent.parent)
    scratch = Path(tempfile.mkdtemp(prefix="users-api-terminate-"))
    scratch.chmod(0o755)  # as root, the server's own user must reach the data folder
    port, pgport = find_available_port(), find_available_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"} | {
        "EMBEDDED_PGDATA": str(scratch / "pgdata"), "EMBEDDED_PGPORT": str(pgport), "PORT": str(port),
        "LOG_LEVEL": "warning",
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with (scratch / "serve.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "api", "serve"], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            user = httpx.post(f"{url}/users", json={"email": "terminate@example.com", "name": "T"}).json()
            password = (scratch / "pgdata" / "password").read_text().strip()
            superuser_url = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{pgport}/postgres"
            answers = asyncio.run(load(url, user["id"], superuser_url))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{checkout}: {dict(sorted(answers.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
