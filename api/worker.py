"""A uvicorn worker process stops when the process that started it is gone, however that one ended."""

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stops_with_its_parent() -> Iterator[None]:
    """While the block runs, a SIGTERM to this process as soon as its parent process ends.

    With WORKERS=N uvicorn spawns N workers and nothing in it watches the parent from the workers: after
    a `kill -9` of `users-api serve` they went on serving, holding the port, until killed by hand. A
    spawned process holds a pipe whose other end only its parent holds (multiprocessing's sentinel): it
    reads as closed the moment the parent is gone, SIGKILL included. SIGTERM lets uvicorn stop the worker
    as on any other request to stop: requests in flight finish, the pool closes.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # WORKERS=1: uvicorn serves in the main process
        yield
        return
    loop = asyncio.get_running_loop()

    def parent_gone() -> None:
        loop.remove_reader(parent.sentinel)  # one signal: a second one makes uvicorn cut requests short
        os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(parent.sentinel, parent_gone)
    try:
        yield
    finally:
        loop.remove_reader(parent.sentinel)
