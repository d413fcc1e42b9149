"""Processes read from /proc: alive or not (a zombie is not)."""

import os
import subprocess
import sys
import time

from api.ops.processes import alive


def test_this_process_is_alive() -> None:
    assert alive(os.getpid())


def test_a_zombie_is_not_alive_nor_a_reaped_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.05)  # exited, not yet reaped: a zombie (WNOWAIT leaves it so)

    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid)
