"""`make bench`'s database: made afresh on the server it is given, or on an embedded one of its own."""

import subprocess
from pathlib import Path

import psycopg
import pytest

from api.ops.processes import alive


@pytest.mark.slow
def test_the_bench_database_is_made_on_a_fresh_embedded_server(
    scratch_pgdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import run

    monkeypatch.delenv("DATABASE_URL", raising=False)
    with run.database(scratch_pgdata) as db, psycopg.connect(db.url) as conn:
        found = conn.execute("SELECT current_database()").fetchone()
        postmaster_running = db.postmaster_pid is not None and alive(db.postmaster_pid)

    assert found == (run.BENCH_DATABASE,)
    assert postmaster_running, "the server's CPU is read from its postmaster"


def test_an_earlier_commit_is_checked_out_for_the_block_and_removed_after(tmp_path: Path) -> None:
    from bench import run

    with run.checkout("HEAD", tmp_path / "against") as folder:
        assert folder is not None
        assert (folder / "api" / "app.py").is_file()
    listed = subprocess.run(
        ["git", "-C", str(run.ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    )

    assert not (tmp_path / "against").exists()
    assert str(tmp_path) not in listed.stdout


def test_an_earlier_commit_is_measured_beside_a_subset_only(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import run

    with pytest.raises(SystemExit):
        run.parse_args(["--against", "HEAD"])
    chosen = run.parse_args(["--against", "HEAD", "--systems", "users-api,http-ceiling"])

    assert "name the others to measure beside it with --systems" in capsys.readouterr().err
    assert (chosen.against, chosen.systems) == ("HEAD", ("users-api", "http-ceiling"))


def test_a_commit_that_is_not_one_is_refused_in_gits_words(tmp_path: Path) -> None:
    from bench import run

    with (
        pytest.raises(RuntimeError, match="invalid reference: no-such-commit"),
        run.checkout("no-such-commit", tmp_path),
    ):
        pass
