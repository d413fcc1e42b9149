"""The programs outside Python the harness needs: installed with apt-get as root, else one line saying how."""

import os
import sys
from pathlib import Path

import pytest

from bench import wrk

FAKE_APT_GET = """#!{python}
# apt-get as on a new machine: `install` fails until `update` has fetched the package lists.
import sys
from pathlib import Path

here = Path(sys.argv[0]).parent
with (here / "apt-get.log").open("a") as log:
    print(*sys.argv[1:], file=log)
if sys.argv[1] == "update":
    (here / "updated").touch()
elif not ((here / "updated").exists() and {installs}):
    sys.exit(100)
else:
    wrk = here / "wrk"
    wrk.write_text({wrk!r})
    wrk.chmod(0o755)
"""
FAKE_WRK = "#!/bin/sh\necho 'wrk 4.2.0 [epoll] Copyright (C) 2012 Will Glozer'\n"


def fake_apt_get(tmp_path: Path, *, installs: bool) -> Path:
    """An apt-get of the test's own, alone on PATH, so that nothing is installed on the machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET.format(python=sys.executable, installs=installs, wrk=FAKE_WRK))
    apt_get.chmod(0o755)
    return apt_get


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.mark.usefixtures("as_root")
def test_as_root_the_harness_installs_wrk_with_apt_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apt_get = fake_apt_get(tmp_path, installs=True)
    monkeypatch.setenv("PATH", str(apt_get.parent))

    found = wrk.ensure_wrk()

    assert found == str(apt_get.parent / "wrk")
    log = (apt_get.parent / "apt-get.log").read_text().splitlines()
    assert log == ["install -y -q wrk", "update -q", "install -y -q wrk"], "a retry after fetching the lists"


@pytest.mark.usefixtures("as_root")
def test_when_apt_get_cannot_install_wrk_the_harness_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import run

    monkeypatch.setenv("PATH", str(fake_apt_get(tmp_path, installs=False).parent))

    assert run.main(["--quick"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("bench: wrk") and "apt-get install wrk" in last


def test_without_wrk_or_root_the_harness_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import run

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(fake_apt_get(tmp_path, installs=True).parent))

    assert run.main(["--quick"]) == 2
    message = capsys.readouterr().err
    assert "apt-get install wrk" in message and message.count("\n") == 1
    assert not (tmp_path / "bin" / "apt-get.log").exists(), "only root installs"
