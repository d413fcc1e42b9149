"""Processes read from /proc: alive or not (a zombie is not), and whose child."""

import os
import subprocess
import sys
import time

from api.ops.processes import alive, parent_of, stat_fields


def test_this_process_is_alive_and_its_parent_known() -> None:
    assert alive(os.getpid())
    assert parent_of(os.getpid()) == os.getppid()
    assert stat_fields(os.getpid())[0] in "RS"


def test_a_zombie_is_not_alive_and_a_reaped_process_not_found() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while stat_fields(child.pid)[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)  # exited, not yet reaped: a zombie

    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid) and parent_of(child.pid) is None
