"""`make bench-auth`: what authentication costs a get-one, in CPU, request by request.

Three builds of users-api's app in one process, on one database: anonymous (no AUTH_ISSUER);
authenticated, each request with the same token, as a client sends its token until it expires (the
verified tokens remembered by their SHA-256: a hash per request); and authenticated, each request
with a token never seen before (a signature checked every time: what the remembering saves). The
tokens are RS256 on 2048-bit RSA, from a stand-in identity provider in the same process
(bench/identity.py). As `make bench-observability` does: the builds' requests alternate one by one,
time.process_time() around each request, RUNS fresh processes with the order rotating. Writes
bench/results/auth-<timestamp>.md.
"""

import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from api.app import create_app
from api.settings import Settings
from bench import levers, paired
from bench.identity import AUDIENCE, identity_provider

RUNS = 6  # each of the 3 orders twice
REQUESTS = 3000  # per build and run, after WARMUP each
WARMUP = 300
BUILDS = ("anonymous", "authenticated", "a new token each time")


async def child(url: str, order: list[str]) -> dict[str, float]:
    """Mean CPU µs per get-one of each build, their requests interleaved in `order`."""
    with identity_provider() as provider:
        fresh = [provider.token() for _ in range(WARMUP + REQUESTS)]  # made before any request is timed
        same = provider.token(lifetime=3600)
        apps = {}
        for build in order:
            issuer = None if build == "anonymous" else provider.issuer
            audience = None if build == "anonymous" else AUDIENCE
            settings = Settings(
                _env_file=None, database_url=url, pool_max_size=2, auth_issuer=issuer, auth_audience=audience
            )
            apps[build] = create_app(settings)
        tokens: dict[str, list[str | None]] = {
            "anonymous": [None] * len(fresh),
            "authenticated": [same] * len(fresh),
            "a new token each time": [*fresh],
        }
        cpu: dict[str, list[float]] = {build: [] for build in BUILDS}
        async with AsyncExitStack() as stack:
            states = await paired.serving(stack, apps)
            for build, app in apps.items():
                await ready(app, states[build])
            for n in range(WARMUP + REQUESTS):
                for build, app in apps.items():
                    token = tokens[build][n]
                    started = time.process_time()
                    await levers.call(app, "GET", f"/users/{1 + n % 900}", states[build], token=token)
                    if n >= WARMUP:
                        cpu[build].append(time.process_time() - started)
    return {build: statistics.mean(samples) * 1e6 for build, samples in cpu.items()}


async def ready(app: levers.App, state: dict[str, Any]) -> None:
    """Wait (10 s at most) until /ready is 200: with authentication, the issuer's keys are fetched."""
    for _ in range(1000):
        if await levers.call(app, "GET", "/ready", state, ok=(200, 503)) == 200:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the app was not ready within 10 s")


def main() -> int:
    if paired.is_child():
        return paired.child_main(child)
    started = datetime.now(UTC)
    runs = paired.in_fresh_processes("bench.auth", BUILDS, RUNS)
    anonymous, same, fresh = BUILDS
    out = paired.write_results(
        "auth", started, "What authentication costs a get-one",
        f"{RUNS} processes, each building users-api's app three ways and calling them in turn, one "
        f"GET /users/{{id}} each, {REQUESTS} times after {WARMUP}, in an order that rotates from run to run, ASGI "
        "in-process on the embedded PostgreSQL (1,000 users), tokens RS256 on 2048-bit RSA. Mean CPU µs of this "
        "process per request (time.process_time(); PostgreSQL's CPU not counted).",
        ["anonymous", "authenticated, the same token", "a new token each time", "the same token over anonymous",
         "a new token over anonymous"],
        lambda r: [f"{r[anonymous]:.1f}", f"{r[same]:.1f}", f"{r[fresh]:.1f}",
                   f"{r[same] - r[anonymous]:+.1f} ({r[same] / r[anonymous] - 1:+.1%})",
                   f"{r[fresh] - r[anonymous]:+.1f} ({r[fresh] / r[anonymous] - 1:+.1%})"],
        runs,
    )  # fmt: skip
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
