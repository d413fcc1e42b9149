"""How a uvicorn worker process conducts itself while it serves: it stops when the process that started it is
gone, however that one ended, and its garbage collector leaves alone what the start made."""

import asyncio
import gc
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


_collecting_rarely = 0  # blocks of `collects_rarely` running in this process (tests run apps side by side)
_threshold_before: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def collects_rarely(young_threshold: int) -> Iterator[None]:
    """While the block runs: what exists at its start frozen out of the collector's passes, and the young
    generation collected every `young_threshold` net allocations instead of CPython's default (700 in 3.11
    to 3.13; measured on 3.11, whose collector has three generations, where 3.14's is incremental).

    Under load the objects of the requests in flight (64 of them under `make bench`) outlive each young
    collection, so that every few hundred requests they reached the oldest generation and set off a full
    collection, which walked the app's ~100,000 objects from its start: 36 full collections of ~34 ms in 11 s
    of get-ones. Frozen, those objects are skipped; with the higher threshold, what is in flight rarely
    fills the young generation (docs/levers.md, "garbage collected rarely"). Garbage in cycles waits longer
    to be freed, within one young generation of objects. 0: Python's own settings, nothing frozen.

    Blocks side by side in one process (tests run apps so) share the first one's settings; the last to end
    gives Python its own back, and unfreezes all. The event loop's thread only.
    """
    global _collecting_rarely, _threshold_before
    if young_threshold <= 0:
        yield
        return
    if _collecting_rarely == 0:
        _threshold_before = gc.get_threshold()
        gc.collect()  # the start's garbage freed, not frozen
        gc.freeze()
        gc.set_threshold(young_threshold, *_threshold_before[1:])
    _collecting_rarely += 1
    try:
        yield
    finally:
        _collecting_rarely -= 1
        if _collecting_rarely == 0:
            gc.set_threshold(*_threshold_before)
            gc.unfreeze()
