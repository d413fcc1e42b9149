"""A py-spy profile folded into the tables `make bench-profile` writes."""

from pathlib import Path

from bench.profile import summarise


def test_a_profile_is_folded_into_own_and_total_time(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("main;serve;handle 6\nmain;serve;encode 3\nmain;idle 1\n")

    summary = summarise(raw)

    assert summary.startswith("10 samples")
    assert " 60.0%  handle" in summary
    assert " 90.0%  serve" in summary
