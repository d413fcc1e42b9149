"""CPU time, memory and parents of processes, read from /proc."""

import os
import subprocess
import sys
import time

from bench import procstat


def test_cpu_of_a_process_tree_is_read_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        before = procstat.cpu_seconds(os.getpid())
        time.sleep(0.5)
        after = procstat.cpu_seconds(os.getpid())
        assert child.pid in procstat.descendants(os.getpid())
    finally:
        child.kill()
        child.wait()

    assert after - before >= 0.1, "the busy child's CPU counts for its parent's tree"
    assert procstat.peak_rss_mib(os.getpid()) > 10


def test_a_parent_is_read_from_proc_and_a_reaped_process_has_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert procstat.parent_of(child.pid) == os.getpid()
    child.wait()

    assert procstat.parent_of(os.getpid()) == os.getppid()
    assert procstat.parent_of(child.pid) is None
