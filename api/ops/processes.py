"""Processes as Linux's /proc tells of them: the one place that reads /proc/<pid>/stat."""

from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: [0] is the state, [1] the parent's pid,
    [11] and [12] the user and system CPU ticks (proc(5), counted from the state)."""
    # The command name may hold spaces and parentheses; the fields after the last ')' do not.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whichever process adopted it to reap it."""
    try:
        return stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def parent_of(pid: int) -> int | None:
    """The pid of `pid`'s parent, if `pid` runs on this machine."""
    try:
        return int(stat_fields(pid)[1])
    except FileNotFoundError:
        return None
