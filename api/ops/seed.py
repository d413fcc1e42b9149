"""`users-api seed N`: N synthetic users loaded through COPY, for benchmarks and demos."""

import secrets
import time
from collections.abc import Iterator

import asyncpg

BATCH_ROWS = 100_000  # one COPY per batch: progress to report, and memory that stays flat


def synthetic_users(count: int, tag: str, start: int = 0) -> Iterator[tuple[str, str]]:
    """(email, name) rows; `tag` keeps the emails of different seed runs apart."""
    for n in range(start, start + count):
        yield f"user{n}.{tag}@example.com", f"User {n}"


async def copy_users(database_url: str, count: int) -> float:
    """Load `count` users; return rows per second."""
    tag = secrets.token_hex(4)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        for start in range(0, count, BATCH_ROWS):
            rows = synthetic_users(min(BATCH_ROWS, count - start), tag, start)
            await conn.copy_records_to_table("users", records=rows, columns=["email", "name"])
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return count / elapsed if elapsed else float("inf")
