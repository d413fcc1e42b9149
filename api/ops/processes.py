"""Whether a process runs, as Linux's /proc tells: the embedded server's postmaster, a killed parent's leftovers."""

from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whichever process adopted it to reap it."""
    try:
        # The state is the first field after the command name, which may hold spaces and parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
