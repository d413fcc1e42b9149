"""The programs the harness runs that Python's packages do not bring: found on PATH, or installed as root."""

import os
import shutil
import subprocess
import sys

WHAT = {
    "wrk": "wrk, the load generator",
    "valgrind": "valgrind, whose callgrind counts instructions",
}


def install_hint(program: str) -> str:
    """One line: what is missing and how to install it."""
    return (
        f"{WHAT[program]}, is not installed: `sudo apt-get install {program}` (Debian, Ubuntu), "
        f"`brew install {program}` (macOS), or build it from its sources"
    )


def ensure(program: str, package: str) -> str | None:
    """`program`'s path, installed first with apt-get when it is missing and this process is root; else None."""
    found = shutil.which(program)
    if found is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print(f"bench: {program} is missing; installing {package} with apt-get", file=sys.stderr, flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    # A new machine's package lists may be empty: the install is retried after fetching them.
    for commands in ([install], [["apt-get", "update", "-q"], install]):
        if all(subprocess.run(command, env=env, check=False).returncode == 0 for command in commands):  # noqa: S603
            return shutil.which(program)
    return None
