"""CPU time, memory and parents of processes, read from /proc (Linux)."""

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: [0] is the state, [1] the parent's pid,
    [11] to [14] the CPU ticks of the process (user, system) and of its reaped children (proc(5))."""
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int | None:
    """The pid of `pid`'s parent, if `pid` runs on this machine."""
    try:
        return int(stat_fields(pid)[1])
    except FileNotFoundError:
        return None


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(child) for child in text]
    return kids


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            queue += _children(current)
        except FileNotFoundError:
            continue
        found.append(current)
    return found


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    """User + system CPU of `pid` and its live descendants; also of reaped children if asked.

    PostgreSQL's postmaster reaps every backend that exits, so its cutime/cstime keep the CPU of
    connections that came and went during a run (the ORM's pool opens and closes many).
    """
    total = 0
    for process in descendants(pid):
        try:
            fields = stat_fields(process)
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if with_reaped_children and process == pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICKS


def peak_rss_mib(pid: int) -> float:
    """The largest peak resident set (VmHWM) among `pid` and its descendants, in MiB."""
    peak = 0
    for process in descendants(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024
